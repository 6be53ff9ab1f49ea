// Drawing the channel list and the peers of our call. Every name and every piece of text that
// came from the server or a peer goes in as text (`textContent`), never as markup. Lists are
// updated in place, keyed by channel id and user id, so a control that has focus keeps it.

/** An element with attributes and children (strings become text nodes). */
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v == null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k.startsWith('data-')) e.setAttribute(k, String(v));
    else if (k in e) e[k] = v;
    else e.setAttribute(k, String(v));
  }
  for (const c of children) if (c != null) e.append(c);
  return e;
}

/** The marks shown after a member's name, in words (readable without colour). */
export function memberMarks(m) {
  const marks = [];
  if (m.talking) marks.push('talking');
  if (m.muted) marks.push('muted');
  if (m.deafened) marks.push('deafened');
  return marks.join(', ');
}

/**
 * Draw the channels with their members and a join button each.
 * @param {HTMLElement} ul
 * @param {{id:number,name:string,members:object[]}[]} channels
 * @param {{me:string|null, seat:number|null, inVoice:boolean, selected:number|null,
 *          unread:Map<number,number>, onJoin(id:number):void, onOpen(id:number):void}} ctx
 *   (`onJoin` and `onOpen` are bound once, when a channel's item is made)
 */
export function renderChannels(ul, channels, ctx) {
  const keep = new Set();
  let before = ul.firstChild;
  for (const ch of channels) {
    const key = String(ch.id);
    keep.add(key);
    let li = ul.querySelector(`:scope > li.channel[data-channel-id="${CSS.escape(key)}"]`);
    if (!li) {
      const button = el('button', { type: 'button', class: 'join' });
      button.addEventListener('click', () => ctx.onJoin(Number(li.dataset.channelId)));
      const open = el('button', { type: 'button', class: 'open name' });
      open.addEventListener('click', () => ctx.onOpen(Number(li.dataset.channelId)));
      li = el('li', { class: 'channel', 'data-channel-id': key },
        el('div', { class: 'head' }, open, el('span', { class: 'unread', hidden: true }), button),
        el('ul', { class: 'members' }));
    }
    if (li !== before) ul.insertBefore(li, before);
    before = li.nextSibling;
    const mine = ctx.seat === ch.id;
    li.dataset.mine = String(mine);
    const name = li.querySelector('.name');
    if (name.textContent !== ch.name) name.textContent = ch.name;
    name.setAttribute('aria-label', `Open the chat of ${ch.name}`);
    li.dataset.selected = String(ctx.selected === ch.id);
    const unread = ctx.unread.get(ch.id) || 0;
    const badge = li.querySelector('.unread');
    badge.hidden = unread === 0;
    badge.textContent = unread ? String(unread) : '';
    badge.title = unread ? `${unread} unread` : '';
    const button = li.querySelector('button.join');
    const label = mine ? 'Joined' : ctx.inVoice ? 'Switch here' : 'Join';
    if (button.textContent !== label) button.textContent = label;
    button.disabled = mine;
    button.setAttribute('aria-label', `${label} ${ch.name}`);
    const members = li.querySelector('ul.members');
    members.replaceChildren(...ch.members.map((m) => {
      const marks = memberMarks(m);
      return el('li', {
        class: 'member', 'data-user': m.user, 'data-talking': String(!!m.talking),
        'data-muted': String(!!m.muted), 'data-deafened': String(!!m.deafened),
      },
      el('span', { class: 'who' }, m.user === ctx.me ? `${m.name} (you)` : m.name),
      marks ? el('span', { class: 'marks' }, `— ${marks}`) : null);
    }));
  }
  for (const li of [...ul.children]) if (!keep.has(li.dataset.channelId)) li.remove();
}

const STATE_WORDS = {
  connecting: 'connecting…',
  connected: 'connected',
  disconnected: 'interrupted, reconnecting…',
  failed: 'failed, retrying…',
};

/** What a peer's statistics line says. */
export function peerStats(p) {
  const parts = [];
  if (p.path) parts.push(p.path);
  if (typeof p.rtt === 'number') parts.push(`${p.rtt} ms`);
  if (typeof p.loss === 'number') parts.push(`${(p.loss * 100).toFixed(p.loss < 0.1 ? 1 : 0)} % loss`);
  return parts.join(' · ');
}

/** Draw one peer (add it when new); `null` removes it. Returns whether the list is empty. */
export function renderPeer(ul, user, p) {
  let li = ul.querySelector(`:scope > li.peer[data-user="${CSS.escape(user)}"]`);
  if (!p) {
    if (li) li.remove();
    return ul.children.length === 0;
  }
  if (!li) {
    li = el('li', { class: 'peer', 'data-user': user },
      el('span', { class: 'who' }), el('span', { class: 'state' }), el('span', { class: 'stats' }));
    ul.append(li);
  }
  li.dataset.state = p.state || 'connecting';
  li.dataset.path = p.path || '';
  li.dataset.speaking = String(!!p.speaking);
  const who = li.querySelector('.who');
  if (who.textContent !== (p.name || user)) who.textContent = p.name || user;
  const words = STATE_WORDS[li.dataset.state] || li.dataset.state;
  li.querySelector('.state').textContent = words;
  li.querySelector('.stats').textContent = peerStats(p);
  return false;
}
