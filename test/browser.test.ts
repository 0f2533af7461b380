/**
 * The web example (examples/web) in a real browser: headless Chromium opens
 * the page in two tabs; a title edited in one shows up in the other, and so
 * does a book added there, without a reload. The gateway runs as `npm start`
 * runs it, accepting only the page's trusted documents (--persisted-documents
 * with its codegen manifest, --persisted-only).
 *
 * The page is built with Vite's JS API into a temporary folder and served by
 * `vite preview`, on an origin the gateway allows; the gateway, the example
 * service and nats-server are this file's own. Chromium is the system's
 * (helpers/chromium.ts).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Page } from 'playwright-core';
import { build, preview, type PreviewServer } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium, type Chromium } from './helpers/chromium.js';
import { startLibraryStack, type LibraryStack } from './helpers/library-stack.js';
import { freePort } from './helpers/nats-server.js';

const webRoot = fileURLToPath(new URL('../examples/web', import.meta.url));
const manifest = fileURLToPath(new URL('../examples/web/src/gql/persisted-documents.json', import.meta.url));
/** how long the page may take to show something (a loaded 2-core machine runs other suites too) */
const uiTimeout = 20_000;

let stack: LibraryStack | undefined;
let outDir: string | undefined;
let web: PreviewServer | undefined;
let chromium: Chromium | undefined;
let pageUrl: string;
/** console errors and uncaught exceptions of every page */
const pageErrors: string[] = [];

beforeAll(async () => {
  // the page is served from an origin of its own, which the gateway must allow (closed by default);
  // it sends only its trusted documents, so the gateway runs as npm start runs it
  const webPort = await freePort();
  stack = await startLibraryStack({ allowOrigin: `http://127.0.0.1:${webPort}`, persistedDocuments: manifest, persistedOnly: true });

  outDir = await mkdtemp(join(tmpdir(), 'resgraph-web-'));
  await build({ root: webRoot, configFile: false, logLevel: 'warn', build: { outDir, emptyOutDir: true } });
  web = await preview({
    root: webRoot,
    configFile: false,
    logLevel: 'warn',
    build: { outDir },
    preview: { host: '127.0.0.1', port: webPort, strictPort: true, open: false },
  });
  const origin = web.resolvedUrls?.local[0];
  if (!origin) throw new Error('vite preview reported no URL');
  pageUrl = `${origin}?gateway=${encodeURIComponent(stack.gw.url)}`;

  chromium = await launchChromium();
}, 180_000);

afterAll(async () => {
  // every step runs even if one before it fails; the first failure is reported
  const steps: (() => Promise<void> | undefined)[] = [
    () => chromium?.close(),
    () => web?.close(),
    () => stack?.close(),
    () => (outDir ? rm(outDir, { recursive: true, force: true }) : undefined),
  ];
  const failures: unknown[] = [];
  for (const step of steps) await Promise.resolve().then(step).catch((e: unknown) => failures.push(e));
  if (failures.length > 0) throw failures[0];
}, 60_000);

async function openPage(): Promise<Page> {
  const page = await chromium!.browser.newPage();
  page.on('pageerror', (e) => pageErrors.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') pageErrors.push(`console error: ${m.text()}`);
  });
  await page.goto(pageUrl);
  // the subscription's first result has arrived: every book of the example is listed
  await page.locator('#books li').nth(4).waitFor({ timeout: uiTimeout });
  await page.locator('#status.live').waitFor({ timeout: uiTimeout });
  return page;
}

const title = (page: Page, rid: string) => page.locator(`#books li[data-id="${rid}"] .title`);

describe('the web example in Chromium', { timeout: 90_000 }, () => {
  it('lists the books with their authors', async () => {
    const page = await openPage();
    expect(await title(page, 'library.book.3').textContent()).toBe('Dune');
    expect(await page.locator('#books li[data-id="library.book.3"] .author').textContent()).toBe('Frank Herbert');
    expect(await page.locator('#count').textContent()).toBe('5 books');
    if (process.env.RESGRAPH_SCREENSHOT) await page.screenshot({ path: process.env.RESGRAPH_SCREENSHOT, fullPage: true });
    await page.close();
    expect(pageErrors).toEqual([]);
  });

  it('a title edited in one tab changes in the other without a reload', async () => {
    const [a, b] = [await openPage(), await openPage()];
    let loads = 0;
    b.on('load', () => loads++);

    await a.selectOption('#edit-book', 'library.book.1');
    await a.fill('#edit-title', 'A Wizard of Earthsea (edited in tab A)');
    await a.click('#edit-form button[type="submit"]');

    await b.locator('#books li[data-id="library.book.1"] .title', { hasText: 'edited in tab A' }).waitFor({ timeout: uiTimeout });
    expect(await title(b, 'library.book.1').textContent()).toBe('A Wizard of Earthsea (edited in tab A)');
    await a.locator('#message.ok', { hasText: 'Title saved.' }).waitFor({ timeout: uiTimeout });
    expect(await title(a, 'library.book.1').textContent()).toBe('A Wizard of Earthsea (edited in tab A)');

    // and back the other way: a book added in tab B appears in tab A
    await b.fill('#add-title', 'The Dispossessed');
    await b.selectOption('#add-author', 'library.author.1');
    await b.click('#add-form button[type="submit"]');
    await a.locator('#books li .title', { hasText: 'The Dispossessed' }).waitFor({ timeout: uiTimeout });
    expect(await a.locator('#count').textContent()).toBe('6 books');
    const added = a.locator('#books li', { hasText: 'The Dispossessed' });
    expect(await added.locator('.author').textContent()).toBe('Ursula K. Le Guin');

    expect(loads).toBe(0);
    await Promise.all([a.close(), b.close()]);
    expect(pageErrors).toEqual([]);
  });

  it('talks to a gateway that accepts nothing but its trusted documents', async () => {
    const page = await openPage();
    // the same request the page would make, with a document of its own instead of a hash
    const refused = await page.evaluate(async (url) => {
      const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query: '{ books { title } }' }) });
      return (await res.json()) as { errors?: { extensions?: { code?: string } }[] };
    }, stack!.gw.url);
    expect(refused.errors?.map((e) => e.extensions?.code)).toEqual(['system.untrustedDocument']);
    await page.close();
  });

  it('shows the service’s error when a title is refused', async () => {
    const page = await openPage();
    await page.selectOption('#edit-book', 'library.book.2');
    await page.fill('#edit-title', '   ');
    await page.click('#edit-form button[type="submit"]');
    await page.locator('#message.error').waitFor({ timeout: uiTimeout });
    expect(await page.locator('#message').textContent()).toBe('A title must be a non-empty string');
    expect(await title(page, 'library.book.2').textContent()).toBe('The Left Hand of Darkness');
    await page.close();
  });
});
