/**
 * GraphiQL at the GraphQL path, in headless Chromium with every request to
 * another host blocked and a Content-Security-Policy that allows scripts and
 * workers from the gateway's own origin only: the editor loads, a typed
 * query shows its result, and a subscription shows the change a mutation
 * makes. Chromium is the system's (/usr/bin/chromium, or CHROMIUM_PATH).
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gql, startTestGateway, type TestGateway } from './helpers/gateway.js';
import { startLibraryStack, type LibraryStack } from './helpers/library-stack.js';

const chromiumPath = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const chromiumArgs = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
/** how long the page may take (the bundle is large, and a loaded 2-core machine runs other suites too) */
const uiTimeout = 60_000;
/** scripts, workers and connections from the page's own origin only; monaco adds style elements */
const csp = "default-src 'self'; script-src 'self'; worker-src 'self'; connect-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:";

let stack: LibraryStack;
let userDataDir: string | undefined;
let browser: BrowserContext | undefined;
/** requests to any host but the gateway's, all blocked */
const elsewhere: string[] = [];
const pageErrors: string[] = [];

beforeAll(async () => {
  if (!existsSync(chromiumPath)) throw new Error(`Chromium is not installed at ${chromiumPath}; install it (apt-get install -y chromium) or set CHROMIUM_PATH`);
  stack = await startLibraryStack();
  userDataDir = await mkdtemp(join(tmpdir(), 'resgraph-graphiql-'));
  browser = await chromium.launchPersistentContext(userDataDir, { executablePath: chromiumPath, headless: true, args: chromiumArgs, viewport: { width: 1400, height: 900 } });
  const gatewayHost = new URL(stack.gw.url).host;
  await browser.route('**/*', async (route) => {
    const url = new URL(route.request().url());
    if (url.host !== gatewayHost) {
      elsewhere.push(url.href);
      return route.abort('blockedbyclient');
    }
    if (route.request().resourceType() !== 'document') return route.continue();
    // the page, with a strict policy for scripts and workers
    const response = await route.fetch();
    return route.fulfill({ response, headers: { ...response.headers(), 'content-security-policy': csp } });
  });
}, 120_000);

afterAll(async () => {
  await browser?.close().catch(() => undefined);
  await stack?.close();
  if (userDataDir) await rm(userDataDir, { recursive: true, force: true });
}, 60_000);

async function openGraphiQL(): Promise<Page> {
  const page = await browser!.newPage();
  page.on('pageerror', (e) => pageErrors.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') pageErrors.push(`console error: ${m.text()}`);
  });
  await page.goto(stack.gw.url);
  await page.locator('.graphiql-query-editor .monaco-editor').waitFor({ timeout: uiTimeout });
  return page;
}

/** Replaces the query editor's text (inserted, not typed key by key: monaco would close brackets itself). */
async function typeQuery(page: Page, text: string): Promise<void> {
  await page.locator('.graphiql-query-editor .monaco-editor').click();
  await page.keyboard.press('ControlOrMeta+A');
  await page.keyboard.press('Delete');
  await page.keyboard.insertText(text);
}

const response = (page: Page) => page.locator('.graphiql-response');

describe('GraphiQL with no internet', { timeout: 180_000 }, () => {
  it('loads from the gateway alone and shows the result of a typed query', async () => {
    const page = await openGraphiQL();
    await typeQuery(page, '{ book(id: "3") { title author { name } } }');
    await page.locator('.graphiql-execute-button').click();
    await response(page).getByText('Frank Herbert').waitFor({ timeout: uiTimeout });
    // monaco lays out spaces as no-break spaces
    const shown = JSON.parse((await response(page).innerText()).replace(/\u00a0/g, ' '));
    expect(shown).toEqual({ data: { book: { title: 'Dune', author: { name: 'Frank Herbert' } } } });
    expect(elsewhere).toEqual([]);
    expect(pageErrors).toEqual([]);
    await page.close();
  });

  it('shows the update a mutation makes to a subscription', async () => {
    const page = await openGraphiQL();
    await typeQuery(page, 'subscription { book(id: "4") { title } }');
    await page.locator('.graphiql-execute-button').click();
    await response(page).getByText('Kindred').first().waitFor({ timeout: uiTimeout });
    const r = await gql(stack.gw.url, 'mutation { setBookTitle(id: "4", title: "Kindred, revised") }');
    expect(r.errors).toBeUndefined();
    await response(page).getByText("Kindred, revised").waitFor({ timeout: uiTimeout });
    expect(elsewhere).toEqual([]);
    expect(pageErrors).toEqual([]);
    await page.close();
  });
});

describe('--graphiql off', () => {
  it('serves no GraphiQL page nor its assets', async () => {
    let gw: TestGateway | undefined;
    try {
      gw = await startTestGateway(stack.nats.url, 'type Query { x: Int }', { graphiql: false });
      const page = await fetch(gw.url, { headers: { accept: 'text/html' } });
      expect(page.headers.get('content-type') ?? '').not.toMatch(/text\/html/);
      expect((await fetch(`${gw.url}/graphiql/graphiql.js`)).status).toBe(404);
    } finally {
      await gw?.close();
    }
  });
});
