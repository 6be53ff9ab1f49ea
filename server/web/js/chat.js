// The chat pane: the selected channel's messages (newest at the bottom, older pages on
// request), a field to write in, unread counts for the other channels this page hears from.
// It owns the pane's state; the page tells it what arrives and it asks the page to send.
// Every piece of a message goes on the page as text (`textContent`), never as markup: a
// message is data. Line breaks show as line breaks (CSS `white-space: pre-wrap`).

import { el } from './view.js';

const PAGE = 50;

/** Whether `text` mentions `name` (as a whole word, case-insensitive; `@name` too). */
export function mentions(text, name) {
  if (!name) return false;
  const t = text.toLocaleLowerCase();
  const n = name.toLocaleLowerCase();
  let at = t.indexOf(n);
  while (at >= 0) {
    const before = at === 0 ? '' : t[at - 1];
    const after = t[at + n.length] || '';
    if (!/[\p{L}\p{N}_]/u.test(before) && !/[\p{L}\p{N}_]/u.test(after)) return true;
    at = t.indexOf(n, at + 1);
  }
  return false;
}

/** `HH:MM` of a Unix-ms time in the reader's zone (the full date in the tooltip). */
export function clock(ms) {
  const d = new Date(ms);
  return `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}`;
}

export class ChatPane {
  /**
   * @param {{send(msg:object):boolean, me():{id:string,name:string}|null,
   *          channelName(id:number):string, onUnread(counts:Map<number,number>):void}} io
   * @param {{pane:HTMLElement, title:HTMLElement, log:HTMLElement, older:HTMLElement,
   *          form:HTMLFormElement, input:HTMLTextAreaElement, error:HTMLElement}} dom
   */
  constructor(io, dom) {
    this.io = io;
    this.dom = dom;
    this.channel = null;
    this.messages = [];
    this.more = false;
    this.waitingOlder = false;
    this.unread = new Map();
    dom.form.addEventListener('submit', (e) => {
      e.preventDefault();
      this.submit();
    });
    dom.input.addEventListener('keydown', (e) => {
      // Enter sends; Shift+Enter is a new line (as in every chat).
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        this.submit();
      }
    });
    dom.older.addEventListener('click', () => this.loadOlder());
  }

  /** Show `channel`'s chat (follow it live, load its newest page). */
  open(channel) {
    if (channel === this.channel) return;
    this.channel = channel;
    this.messages = [];
    this.more = false;
    this.unread.delete(channel);
    this.io.onUnread(this.unread);
    this.dom.title.textContent = `Chat — ${this.io.channelName(channel)}`;
    this.dom.error.textContent = '';
    this.render();
    this.resync();
  }

  /** Signed out: nothing shown, nothing counted. */
  reset() {
    this.channel = null;
    this.messages = [];
    this.more = false;
    this.unread.clear();
    this.dom.title.textContent = 'Chat';
    this.dom.error.textContent = '';
    this.render();
  }

  /** (Re)connected, or a channel opened: follow it and load its newest page. */
  resync() {
    if (this.channel === null) return;
    this.io.send({ type: 'watch', channel: this.channel });
    this.io.send({ type: 'history', channel: this.channel, limit: PAGE });
  }

  loadOlder() {
    if (this.channel === null || !this.more || this.waitingOlder || !this.messages.length) return;
    this.waitingOlder = true;
    this.io.send({
      type: 'history', channel: this.channel, before: this.messages[0].id, limit: PAGE,
    });
  }

  submit() {
    const text = this.dom.input.value;
    if (!text.trim() || this.channel === null) return;
    if (this.io.send({ type: 'say', channel: this.channel, text })) {
      this.dom.input.value = '';
      this.dom.error.textContent = '';
    } else {
      this.dom.error.textContent = 'Not connected: the message was not sent.';
    }
  }

  /** A live message. */
  message(m) {
    if (m.channel !== this.channel) {
      this.unread.set(m.channel, (this.unread.get(m.channel) || 0) + 1);
      this.io.onUnread(this.unread);
      return;
    }
    if (this.messages.some((x) => x.id === m.id)) return;
    this.messages.push(m);
    this.messages.sort((a, b) => a.id - b.id);
    this.render('live');
  }

  /** A page of history. */
  history(msg) {
    if (msg.channel !== this.channel) return;
    const older = this.waitingOlder;
    this.waitingOlder = false;
    const known = new Set(this.messages.map((m) => m.id));
    const fresh = msg.messages.filter((m) => !known.has(m.id));
    this.messages = [...fresh, ...this.messages].sort((a, b) => a.id - b.id);
    // The oldest page decides whether there is more; a refresh of the newest keeps it.
    if (older || this.messages.length <= msg.messages.length) this.more = msg.more;
    this.render(older ? 'older' : 'bottom');
  }

  /** A refusal of what we sent (shown under the field). */
  refused(text) {
    this.dom.error.textContent = text;
  }

  /** `scroll`: 'bottom' (show the newest), 'older' (a page came in above: keep the view),
   *  'live' (follow the newest only if the reader was already there). */
  render(scroll = 'bottom') {
    const log = this.dom.log;
    const nearBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
    const fromBottom = log.scrollHeight - log.scrollTop;
    const me = this.io.me();
    log.replaceChildren(...this.messages.map((m) => {
      const mine = me && m.user === me.id;
      const mention = !mine && me && mentions(m.text, me.name);
      return el('li', {
        class: 'message', 'data-id': m.id, 'data-user': m.user,
        'data-mention': String(!!mention), 'data-mine': String(!!mine),
      },
      el('time', { dateTime: new Date(m.time).toISOString(), title: new Date(m.time).toLocaleString() },
        clock(m.time)),
      el('span', { class: 'author' }, m.name),
      el('span', { class: 'text' }, m.text));
    }));
    this.dom.older.hidden = !this.more;
    if (scroll === 'older') log.scrollTop = log.scrollHeight - fromBottom;
    else if (scroll === 'bottom' || nearBottom) log.scrollTop = log.scrollHeight;
  }
}
