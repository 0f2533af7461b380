/**
 * The library, live: the book list comes from one subscription, so a change
 * made in this tab, another tab or anywhere else shows up everywhere without
 * a reload. The forms send the mutations; their result needs no handling
 * beyond errors, because the subscription brings the new state.
 */
import './style.css';
import { client, connectionListeners, gatewayUrl, type ConnectionState } from './client.js';
import type { LiveBooksSubscription } from './gql/graphql.js';
import { AddBook, LiveBooks, SetBookTitle } from './operations.js';

type Book = LiveBooksSubscription['books'][number];

function element<T extends HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`the page has no #${id}`);
  return el as T;
}

const list = element<HTMLUListElement>('books');
const count = element<HTMLSpanElement>('count');
const status = element<HTMLSpanElement>('status');
const message = element<HTMLParagraphElement>('message');
const editForm = element<HTMLFormElement>('edit-form');
const editBook = element<HTMLSelectElement>('edit-book');
const editTitle = element<HTMLInputElement>('edit-title');
const addForm = element<HTMLFormElement>('add-form');
const addTitle = element<HTMLInputElement>('add-title');
const addAuthor = element<HTMLSelectElement>('add-author');

element<HTMLElement>('gateway').textContent = gatewayUrl.href;

/** The last segment of a resource ID: `library.book.3` → `3`, what the mutations take. */
const idOf = (rid: string) => rid.slice(rid.lastIndexOf('.') + 1);

// --- connection state ----------------------------------------------------------

const stateText: Record<ConnectionState, string> = { connecting: 'connecting…', live: 'live', offline: 'offline, reconnecting…' };
connectionListeners.add((state) => {
  status.textContent = stateText[state];
  status.className = `status ${state}`;
});

// --- the list ------------------------------------------------------------------

/** Titles as last shown, to highlight what changed. */
let shown = new Map<string, string>();

function render(books: readonly Book[]): void {
  const items = books.map((book) => {
    const li = document.createElement('li');
    li.dataset.id = book.id;
    const title = document.createElement('span');
    title.className = 'title';
    title.textContent = book.title;
    const author = document.createElement('span');
    author.className = 'author';
    author.textContent = book.author.name;
    li.append(title, author);
    if (book.tags.length > 0) {
      const tags = document.createElement('span');
      tags.className = 'tags';
      for (const tag of book.tags) {
        const t = document.createElement('span');
        t.className = 'tag';
        t.textContent = tag;
        tags.append(t);
      }
      li.append(tags);
    }
    if (shown.size > 0 && shown.get(book.id) !== book.title) li.classList.add('changed');
    li.addEventListener('click', () => {
      editBook.value = book.id;
      editTitle.value = book.title;
      editTitle.focus();
    });
    return li;
  });
  list.replaceChildren(...items);
  count.textContent = `${books.length} book${books.length === 1 ? '' : 's'}`;
  shown = new Map(books.map((b) => [b.id, b.title]));

  fillSelect(editBook, books.map((b) => [b.id, b.title]));
  const authors = new Map(books.map((b) => [b.author.id, b.author.name]));
  fillSelect(addAuthor, [...authors]);
}

/** Replaces a select's options, keeping the current choice when it is still there. */
function fillSelect(select: HTMLSelectElement, options: [value: string, label: string][]): void {
  const current = select.value;
  select.replaceChildren(
    ...options.map(([value, label]) => {
      const o = document.createElement('option');
      o.value = value;
      o.textContent = label;
      return o;
    }),
  );
  if (options.some(([value]) => value === current)) select.value = current;
}

function say(text: string, kind: 'ok' | 'error' = 'ok'): void {
  message.textContent = text;
  message.className = kind;
}

client.subscription(LiveBooks, {}).subscribe((result) => {
  if (result.error) say(result.error.message, 'error');
  if (result.data) render(result.data.books);
});

// --- the forms -----------------------------------------------------------------

editBook.addEventListener('change', () => {
  editTitle.value = shown.get(editBook.value) ?? '';
});

editForm.addEventListener('submit', async (event) => {
  event.preventDefault();
  const rid = editBook.value;
  if (!rid) return;
  const result = await client.mutation(SetBookTitle, { id: idOf(rid), title: editTitle.value }).toPromise();
  if (result.error) return say(result.error.graphQLErrors[0]?.message ?? result.error.message, 'error');
  say('Title saved.');
});

addForm.addEventListener('submit', async (event) => {
  event.preventDefault();
  const result = await client
    .mutation(AddBook, { input: { title: addTitle.value, authorId: idOf(addAuthor.value) } })
    .toPromise();
  if (result.error) return say(result.error.graphQLErrors[0]?.message ?? result.error.message, 'error');
  say(`Added “${result.data?.addBook?.title ?? addTitle.value}”.`);
  addTitle.value = '';
});
