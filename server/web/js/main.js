// The web client: signs in, shows the voice channels and who sits in them, joins / leaves /
// switches, runs the call, and shows the selected channel's chat (`chat.js`). It owns the page's state (`app`) and wires the parts:
// `Signaling` (the WebSocket), `VoiceRoom` (the peer connections), `Mic` (the microphone and
// the talk rules), the VoiceBar (`bar.js`) and the lists (`view.js`). The rules follow the
// terminal client's session (src/engine/session.rs): the channel the user wants is asked for
// again after a reconnect, a refused join says why, every peer down too long is "no route",
// and a rejoin refused because the lost connection's seat is still held waits for it
// (`rejoin.js`).

import { Signaling } from './signaling.js';
import { VoiceRoom, DOWN_LIMIT_MS } from './room.js';
import { Mic } from './talk.js';
import * as bar from './bar.js';
import { renderChannels, renderPeer } from './view.js';
import { ChatPane } from './chat.js';
import { SeatWait, Refusal, SEATED_ELSEWHERE, waitWords } from './rejoin.js';

const $ = (id) => document.getElementById(id);
const TOKEN_KEY = 'cromulent.token';
const NAME_KEY = 'cromulent.name';
const SESSION_KEY = 'cromulent.session';
const MODE_KEY = 'cromulent.talk-mode';

const app = {
  me: null, // {id, name} from the welcome
  hello: null, // what we sign in with: {name} or {token}
  channels: [], // the presence snapshot, kept current by presence diffs
  seat: null, // the channel the server says we sit in
  wanted: null, // the channel the user asked for (kept across reconnects)
  online: false,
  voice: { phase: 'idle', channelName: null },
  peers: new Map(), // user -> what the peers list shows
  sentFlags: '',
  resume: null, // the session's resume token
  iceTimer: 0,
  audioCtx: null,
  // A channel was wanted when the server was lost: the next new session's join of it is a
  // rejoin, which may find the lost connection's seat still held.
  lostWhileWanted: false,
  seatWait: null, // that rejoin's SeatWait, until a seat, a leave or a join elsewhere
  seatTimer: 0,
};

// --- storage (a private window or a locked-down browser may refuse it) ------------------

function stored(area, key) {
  try { return area.getItem(key); } catch { return null; }
}
function store(area, key, value) {
  try {
    if (value == null) area.removeItem(key);
    else area.setItem(key, value);
  } catch { /* not remembered, still works */ }
}

/** What a reload of this tab takes back: the sign-in, the session, the channel. */
function remember() {
  if (!app.hello) return;
  store(sessionStorage, SESSION_KEY,
    JSON.stringify({ hello: app.hello, resume: app.resume, wanted: app.wanted }));
}

// --- the parts --------------------------------------------------------------------------

function audioContext() {
  if (!app.audioCtx) {
    try { app.audioCtx = new AudioContext(); } catch { return null; }
  }
  if (app.audioCtx.state === 'suspended') app.audioCtx.resume().catch(() => {});
  return app.audioCtx;
}

const signaling = new Signaling({
  onMessage: (msg) => receive(msg),
  onLost: (why) => lost(why),
  onFatal: (err) => fatal(err),
  onResumeToken: (token) => {
    app.resume = token;
    remember();
  },
});

const room = new VoiceRoom({
  send: (to, signal) => signaling.send({ type: 'signal', to, signal }),
  onPeer: (user, patch) => peerChanged(user, patch),
  audioBox: $('remote-audio'),
  audioContext,
  onPlayBlocked: () => {
    $('sound-note').hidden = false;
  },
});

/** The browser held sound back until the user acts on the page (autoplay policy). */
function unblockSound() {
  if ($('sound-note').hidden) return;
  $('sound-note').hidden = true;
  audioContext();
  for (const a of $('remote-audio').querySelectorAll('audio')) {
    a.play().catch(() => { $('sound-note').hidden = false; });
  }
}

const chat = new ChatPane({
  send: (msg) => signaling.send(msg),
  me: () => app.me,
  channelName: (id) => channelName(id),
  onUnread: () => draw(),
}, {
  pane: $('chat-pane'),
  title: $('chat-title'),
  log: $('chat-log'),
  older: $('chat-older'),
  form: $('chat-form'),
  input: $('chat-input'),
  error: $('chat-error'),
});

const mic = new Mic({
  onTrack: (track, stream) => room.setTrack(track, stream),
  onLive: () => { drawTalk(); sendFlags(); },
  onLevel: (level) => { $('mic-level').value = Math.min(1, level * 4); },
  onProblem: (text) => { $('mic-note').textContent = text; },
  audioContext,
});

// --- signing in ---------------------------------------------------------------------------

function connect(hello, resume) {
  app.hello = hello;
  document.body.dataset.phase = 'connecting';
  $('sign-out').hidden = false;
  serverStatus('Connecting to the server…');
  signaling.start(hello, resume);
}

function signOut() {
  if (app.seat !== null) signaling.send({ type: 'leave' });
  signaling.stop();
  room.closeAll();
  mic.close();
  chat.reset();
  store(localStorage, TOKEN_KEY, null);
  store(sessionStorage, SESSION_KEY, null);
  endSeatWait();
  Object.assign(app, { me: null, seat: null, wanted: null, online: false, channels: [],
    lostWhileWanted: false });
  delete document.body.dataset.self;
  setVoice({ phase: 'idle' });
  document.body.dataset.phase = 'signin';
  $('sign-out').hidden = true;
  $('token-note').hidden = true;
  $('signin-form').hidden = false;
  serverStatus('');
  draw();
}

function serverStatus(text) {
  $('server-status').textContent = text;
}

// --- what the server says -----------------------------------------------------------------

function receive(msg) {
  switch (msg.type) {
    case 'welcome': welcome(msg); break;
    case 'presence': presence(msg.changes || []); break;
    case 'joined': joined(msg); break;
    case 'left': left(msg); break;
    case 'ice_servers': room.freshIce(msg.ice); scheduleIceRefresh(msg.ice); break;
    case 'signal': room.signal(msg.from, msg.signal); break;
    case 'message': chat.message(msg.message); break;
    case 'history': chat.history(msg); break;
    case 'error': serverError(msg); break;
    default:
  }
}

function welcome(msg) {
  app.me = msg.user;
  app.online = true;
  app.channels = msg.channels || [];
  app.sentFlags = '';
  document.body.dataset.self = msg.user.id;
  document.body.dataset.phase = 'online';
  $('signin-error').textContent = '';
  store(localStorage, NAME_KEY, msg.user.name);
  serverStatus(`Signed in as ${msg.user.name}`);
  const lostWhileWanted = app.lostWhileWanted;
  app.lostWhileWanted = false;
  if (!msg.resumed) {
    // A fresh session: the seat we had (if any) is gone; ask for the wanted channel again.
    // After a lost connection that join may meet the lost connection's seat: wait for it.
    if (app.seat !== null) room.closeAll();
    app.seat = null;
    if (app.wanted !== null) {
      if (lostWhileWanted) startSeatWait(app.wanted);
      sendJoin(app.wanted);
    } else if (app.voice.phase === 'disconnected' && app.voice.reason === 'server_gone') {
      setVoice({ phase: 'idle' });
    }
  } else if (app.seat === null && app.wanted !== null) {
    // Resumed without a seat to give back (this tab was reloaded and gave its seat up, or the
    // user chose a channel while disconnected): ask for it.
    sendJoin(app.wanted);
  }
  // A resumed session that had a seat gets `joined` (or `already_in_voice`) next.
  sendFlags();
  // The chat on screen: followed again, and what was missed while away fetched.
  if (chat.channel === null || !app.channels.some((c) => c.id === chat.channel)) {
    chat.channel = null;
    const first = app.wanted ?? (app.channels[0] && app.channels[0].id);
    if (first != null) chat.open(first);
  } else {
    chat.resync();
  }
  draw();
}

function presence(changes) {
  let ownLeave = false;
  for (const c of changes) {
    const ch = app.channels.find((x) => x.id === c.channel);
    if (!ch || !c.member) continue;
    const i = ch.members.findIndex((m) => m.user === c.member.user);
    if (c.op === 'leave') {
      if (i >= 0) ch.members.splice(i, 1);
    } else if (c.op === 'join') {
      if (i >= 0) ch.members[i] = c.member;
      else ch.members.push(c.member);
    } else if (c.op === 'update' && i >= 0) {
      ch.members[i] = c.member; // flags change in place: the order is the server's
    }
    if (app.seat === c.channel && app.me && c.member.user !== app.me.id) {
      if (c.op === 'leave') room.gone(c.member.user);
      else room.present(c.member);
    }
    if (c.op === 'leave' && app.me && c.member.user === app.me.id) ownLeave = true;
  }
  // A seat of ours was released: perhaps the lost connection's we are waiting for.
  if (ownLeave && app.seat === null && app.seatWait && app.seatWait.onOwnLeave()) {
    clearTimeout(app.seatTimer);
    signaling.send({ type: 'join', channel: app.seatWait.channel });
  }
  draw();
}

function joined(msg) {
  endSeatWait();
  app.seat = msg.channel;
  app.wanted = msg.channel;
  mic.ensure(); // a resumed seat (after a reload) gets its microphone back too
  room.enter(app.me.id, msg.ice, msg.peers || []);
  scheduleIceRefresh(msg.ice);
  setVoice({ phase: 'connected', channelName: channelName(msg.channel) });
  sendFlags();
  remember();
  chat.open(msg.channel); // the channel you sit in is the one you talk in
  draw();
}

function left(msg) {
  if (app.seat === msg.channel) {
    app.seat = null;
    room.closeAll();
  }
  if (msg.reason !== 'switched' && app.wanted === null) {
    mic.close();
    setVoice({ phase: 'idle' });
  }
  remember();
  draw();
}

function serverError(msg) {
  if (SEATED_ELSEWHERE.has(msg.reason) && app.seat === null && waitForOldSeat()) return;
  switch (msg.reason) {
    case 'already_in_channel':
    case 'already_in_voice':
    case 'not_found':
      // A join refused, or a resumed seat taken meanwhile: the user must choose.
      app.wanted = null;
      if (app.seat === null) room.closeAll();
      setVoice({
        phase: 'disconnected', channelName: app.voice.channelName, reason: msg.reason,
        message: msg.reason === 'already_in_voice' && msg.channel != null
          ? `in ${channelName(msg.channel)} from another session` : '',
      });
      draw();
      break;
    case 'cluster_unavailable':
      // Cluster mode without its shared state. A join not carried out says so in the bar,
      // instead of "Connecting…" for ever; the channel stays wanted, so it is asked again
      // after a reconnect, or the user asks again. Anything else (a chat line, a leave) is
      // said in the chat pane.
      if (msg.channel != null && msg.channel === app.wanted && app.seat !== msg.channel) {
        setVoice({
          phase: 'disconnected', channelName: app.voice.channelName, reason: msg.reason,
          message: '',
        });
        draw();
      } else {
        chat.refused(bar.reasonWords(msg.reason, msg.message));
      }
      break;
    case 'resume_expired':
      break; // the welcome (resumed: false) already started over
    case 'text_too_long':
    case 'invalid_text':
    case 'history_unavailable':
      chat.refused(bar.reasonWords(msg.reason, msg.message));
      break;
    default:
      console.warn('cromulent: server error', msg.reason, msg.message);
  }
}

function lost(why) {
  app.online = false;
  if (app.wanted !== null) app.lostWhileWanted = true;
  endSeatWait(); // the next session's welcome starts a new one, if needed
  serverStatus(`Lost the server — reconnecting in ${Math.ceil(why.retryInMs / 1000)} s…`);
  if (app.wanted !== null || app.seat !== null) {
    setVoice({
      phase: 'disconnected', channelName: app.voice.channelName, reason: why.reason,
      message: why.reason === 'server_gone' ? '' : why.message,
    });
  }
  draw();
}

function fatal(err) {
  app.online = false;
  endSeatWait();
  room.closeAll();
  mic.close();
  app.seat = null;
  app.wanted = null;
  store(sessionStorage, SESSION_KEY, null);
  setVoice({ phase: 'disconnected', reason: err.reason, message: '' });
  const words = bar.reasonWords(err.reason, err.message);
  serverStatus(`Signed out — ${words}`);
  if (['invalid_name', 'name_taken', 'invalid_token', 'token_expired'].includes(err.reason)) {
    if (err.reason === 'invalid_token' || err.reason === 'token_expired') {
      store(localStorage, TOKEN_KEY, null);
    }
    document.body.dataset.phase = 'signin';
    $('token-note').hidden = true;
    $('signin-form').hidden = false;
    $('signin-error').textContent = words;
  }
  draw();
}

// --- voice --------------------------------------------------------------------------------

function channelName(id) {
  const ch = app.channels.find((c) => c.id === id);
  return ch ? ch.name : `channel ${id}`;
}

function sendJoin(id) {
  app.wanted = id;
  setVoice({ phase: 'connecting', channelName: channelName(id) });
  signaling.send({ type: 'join', channel: id });
}

function join(id) {
  if (app.seat === id) return;
  // The user chose: a refusal of this join is theirs to see at once.
  if (app.seatWait && app.seatWait.channel !== id) endSeatWait();
  if (!app.online) app.lostWhileWanted = false;
  audioContext(); // within the click: the browser lets sound start
  mic.ensure(); // in parallel with the join: the track joins the calls when it is ready
  if (app.online) sendJoin(id);
  else app.wanted = id;
  draw();
}

function leave() {
  endSeatWait();
  app.lostWhileWanted = false;
  app.wanted = null;
  remember();
  if (app.seat !== null) signaling.send({ type: 'leave' });
  else {
    room.closeAll();
    mic.close();
    setVoice({ phase: 'idle' });
  }
  draw();
}

// --- the rejoin's wait for the lost connection's seat (rules in rejoin.js) -----------------

function startSeatWait(channel) {
  endSeatWait();
  app.seatWait = new SeatWait(channel);
}

function endSeatWait() {
  clearTimeout(app.seatTimer);
  app.seatTimer = 0;
  app.seatWait = null;
}

/**
 * The rejoin was refused as seated elsewhere: wait for the lost connection's seat (saying so
 * the first time) and return true, or return false when there is no such rejoin or the
 * patience has run out (the refusal is then final, as for any join).
 */
function waitForOldSeat() {
  const wait = app.seatWait;
  if (!wait) return false;
  switch (wait.onRefused(Date.now())) {
    case Refusal.FIRST_WAIT:
      showSeatWait(wait);
      scheduleSeatAsk();
      return true;
    case Refusal.STILL_WAITING:
      // Said once; again only if the bar was redrawn meanwhile (the user clicked Join on the
      // same channel: that join joined the wait).
      if (app.voice.reason !== 'seat_still_held') showSeatWait(wait);
      scheduleSeatAsk();
      return true;
    default:
      endSeatWait();
      return false;
  }
}

/** The VoiceBar while waiting: still connecting, and why, in words. */
function showSeatWait(wait) {
  const name = channelName(wait.channel);
  setVoice({ phase: 'connecting', channelName: name, reason: 'seat_still_held',
    message: waitWords(name) });
  draw();
}

/** Ask for the waited-for seat again when the wait's timer is due. */
function scheduleSeatAsk() {
  clearTimeout(app.seatTimer);
  const wait = app.seatWait;
  if (!wait || wait.nextAsk === null) return;
  app.seatTimer = setTimeout(() => {
    if (app.seatWait !== wait) return;
    if (wait.due(Date.now())) signaling.send({ type: 'join', channel: wait.channel });
    else scheduleSeatAsk(); // a timer may fire a millisecond early
  }, Math.max(0, wait.nextAsk - Date.now()));
}

function setVoice(voice) {
  app.voice = { channelName: null, ...voice };
  bar.render($('voicebar'), $('voicebar-text'), app.voice);
}

function sendFlags() {
  const flags = { type: 'voice_state', muted: mic.muted, deafened: mic.deafened, talking: mic.live };
  const key = JSON.stringify(flags);
  if (key !== app.sentFlags && signaling.send(flags)) app.sentFlags = key;
}

function scheduleIceRefresh(ice) {
  clearTimeout(app.iceTimer);
  if (!ice || ice.expires_at == null) return;
  // As the engine does: a quarter of the lifetime early, at least 5 s, at most 5 min.
  const now = Date.now() / 1000;
  const lifetime = Math.max(0, ice.expires_at - now);
  const margin = Math.min(300, Math.max(5, lifetime / 4));
  const delay = Math.max(1, lifetime - margin) * 1000;
  app.iceTimer = setTimeout(() => signaling.send({ type: 'refresh_ice' }), delay);
}

/** Every peer down for the limit (and at least one peer): no route; back when one returns. */
function checkRoute() {
  if (app.seat === null) return;
  const now = Date.now();
  const peers = [...app.peers.values()];
  const down = peers.length > 0 &&
    peers.every((p) => p.state !== 'connected' && p.downSince && now - p.downSince >= DOWN_LIMIT_MS);
  if (down && app.voice.phase === 'connected') {
    setVoice({ phase: 'disconnected', channelName: channelName(app.seat), reason: 'no_route',
      message: room.ice.servers.some((s) => s.urls.some((u) => u.startsWith('turn')))
        ? 'direct and relayed paths failed' : 'no TURN server configured' });
  } else if (!down && app.voice.phase === 'disconnected' && app.voice.reason === 'no_route') {
    setVoice({ phase: 'connected', channelName: channelName(app.seat) });
  }
}

function peerChanged(user, patch) {
  if (patch === null) app.peers.delete(user);
  else app.peers.set(user, { ...(app.peers.get(user) || {}), ...patch });
  const empty = renderPeer($('peers'), user, app.peers.get(user) || null);
  $('peers-empty').hidden = !empty;
}

// --- drawing ------------------------------------------------------------------------------

function draw() {
  renderChannels($('channels'), app.channels, {
    me: app.me && app.me.id, seat: app.seat, inVoice: app.seat !== null, onJoin: join,
    selected: chat.channel, unread: chat.unread, onOpen: openChat,
  });
  $('leave').disabled = app.seat === null && app.wanted === null;
  drawTalk();
}

function drawTalk() {
  const talk = $('talk');
  talk.disabled = app.seat === null;
  talk.setAttribute('aria-pressed', String(mic.live));
  talk.textContent = mic.live ? 'Talking' : 'Hold to talk';
  const mute = $('mute');
  mute.setAttribute('aria-pressed', String(mic.muted));
  mute.textContent = mic.muted ? 'Unmute' : 'Mute';
  const deafen = $('deafen');
  deafen.setAttribute('aria-pressed', String(mic.deafened));
  deafen.textContent = mic.deafened ? 'Undeafen' : 'Deafen';
}

function openChat(id) {
  chat.open(id);
  draw();
}

// --- controls -----------------------------------------------------------------------------

function toggleMute() { mic.setMuted(!mic.muted); drawTalk(); sendFlags(); }
function toggleDeafen() {
  mic.setDeafened(!mic.deafened);
  room.setDeafened(mic.deafened);
  drawTalk();
  sendFlags();
}

/** Keys typed into a field or a list are the field's, not shortcuts. */
function typing(target) {
  return target instanceof HTMLElement &&
    (target.isContentEditable || ['INPUT', 'SELECT', 'TEXTAREA'].includes(target.tagName));
}

function wireControls() {
  for (const ev of ['pointerdown', 'keydown']) document.addEventListener(ev, unblockSound, true);
  $('signin-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const name = $('name').value.trim();
    if (!name) return;
    connect({ name }, null);
  });
  $('sign-out').addEventListener('click', signOut);
  $('leave').addEventListener('click', leave);
  $('mute').addEventListener('click', toggleMute);
  $('deafen').addEventListener('click', toggleDeafen);

  const mode = $('talk-mode');
  const saved = stored(localStorage, MODE_KEY);
  if (saved && [...mode.options].some((o) => o.value === saved)) mode.value = saved;
  mic.setMode(mode.value);
  mode.addEventListener('change', () => {
    mic.setMode(mode.value);
    store(localStorage, MODE_KEY, mode.value);
    drawTalk();
    sendFlags();
  });

  // The talk button: held with a pointer, or with Space/Enter while it has focus.
  const talk = $('talk');
  talk.addEventListener('pointerdown', (e) => {
    talk.setPointerCapture(e.pointerId);
    mic.setHeld(true);
  });
  for (const ev of ['pointerup', 'pointercancel', 'lostpointercapture']) {
    talk.addEventListener(ev, () => mic.setHeld(false));
  }
  talk.addEventListener('keydown', (e) => {
    if (e.key === ' ' || e.key === 'Enter') {
      e.preventDefault();
      e.stopPropagation();
      if (!e.repeat) mic.setHeld(true);
    }
  });
  talk.addEventListener('keyup', (e) => {
    if (e.key === ' ' || e.key === 'Enter') {
      e.preventDefault();
      e.stopPropagation();
      mic.setHeld(false);
    }
  });
  talk.addEventListener('click', (e) => e.preventDefault());
  talk.addEventListener('contextmenu', (e) => e.preventDefault());

  // Page-wide keys (not while typing, not with modifiers): Space held talks, M, D, L.
  document.addEventListener('keydown', (e) => {
    if (typing(e.target) || e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.key === ' ' && app.seat !== null) {
      // A button with focus would also be clicked by Space: the key is push-to-talk here.
      e.preventDefault();
      if (!e.repeat) mic.setHeld(true);
      return;
    }
    if (e.repeat) return;
    const key = e.key.toLowerCase();
    if (key === '/') {
      e.preventDefault();
      $('chat-input').focus();
    } else if (key === 'm') toggleMute();
    else if (key === 'd') toggleDeafen();
    else if (key === 'l' && (app.seat !== null || app.wanted !== null)) leave();
  });
  $('chat-input').addEventListener('keydown', (e) => {
    if (e.key === 'Escape') e.target.blur();
  });
  document.addEventListener('keyup', (e) => {
    if (e.key === ' ') {
      if (!typing(e.target)) e.preventDefault();
      mic.setHeld(false);
    }
  });
  // A key released while the page had no focus is never reported: let go on focus loss.
  window.addEventListener('blur', () => mic.setHeld(false));
  document.addEventListener('visibilitychange', () => {
    if (document.hidden) mic.setHeld(false);
  });

  $('relay-only').addEventListener('change', (e) => { room.relayOnly = e.target.checked; });
  for (const [id, key] of [['echo-cancellation', 'echoCancellation'],
    ['noise-suppression', 'noiseSuppression'], ['auto-gain', 'autoGainControl']]) {
    $(id).addEventListener('change', (e) => {
      mic.processing[key] = e.target.checked;
      mic.reopen();
    });
  }
  $('mic').addEventListener('change', (e) => { mic.deviceId = e.target.value; mic.reopen(); });
  $('speaker').addEventListener('change', (e) => room.setSink(e.target.value));
  if (navigator.mediaDevices) {
    navigator.mediaDevices.addEventListener('devicechange', listDevices);
  }
  $('settings').addEventListener('toggle', listDevices);
}

/** Fill the microphone and speaker lists (names appear once the microphone is allowed). */
async function listDevices() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.enumerateDevices) return;
  let devices;
  try { devices = await navigator.mediaDevices.enumerateDevices(); } catch { return; }
  const fill = (select, kind, current) => {
    const options = [new Option('System default', '')];
    let n = 0;
    for (const d of devices) {
      if (d.kind !== kind || !d.deviceId || d.deviceId === 'default') continue;
      n += 1;
      options.push(new Option(d.label || `${kind === 'audioinput' ? 'Microphone' : 'Speaker'} ${n}`,
        d.deviceId));
    }
    select.replaceChildren(...options);
    select.value = options.some((o) => o.value === current) ? current : '';
  };
  fill($('mic'), 'audioinput', mic.deviceId);
  const speaker = $('speaker');
  if (typeof HTMLMediaElement.prototype.setSinkId === 'function') {
    fill(speaker, 'audiooutput', room.sinkId);
  } else {
    speaker.replaceChildren(new Option('System default (this browser cannot choose)', ''));
    speaker.disabled = true;
  }
}

// --- start --------------------------------------------------------------------------------

function start() {
  wireControls();
  setVoice({ phase: 'idle' });
  setInterval(() => { room.tick(); checkRoute(); }, 1000);
  setInterval(() => room.levels(), 100);

  // A sign-in link carries its token in the fragment (never sent to a server): keep it, and
  // take it out of the address bar.
  const fragment = new URLSearchParams(location.hash.slice(1));
  const linkToken = fragment.get('token');
  if (linkToken) {
    store(localStorage, TOKEN_KEY, linkToken);
    history.replaceState(null, '', location.pathname + location.search);
  }
  // Closing the tab (or reloading it) gives the seat up at once, so no one waits out the
  // resume grace for a page that is gone; a reload asks for the channel again.
  window.addEventListener('pagehide', () => {
    if (app.seat !== null) {
      remember();
      signaling.send({ type: 'leave' });
    }
  });
  // A reload takes its session back, and its channel.
  let session = null;
  try { session = JSON.parse(stored(sessionStorage, SESSION_KEY) || 'null'); } catch { /* none */ }
  const token = stored(localStorage, TOKEN_KEY);
  const hello = session && session.hello;
  const restore = () => {
    if (Number.isInteger(session.wanted)) app.wanted = session.wanted;
    return session.resume;
  };
  if (token) {
    $('signin-form').hidden = true;
    $('token-note').hidden = false;
    connect({ token }, hello && hello.token === token ? restore() : null);
  } else if (hello && hello.name) {
    connect({ name: hello.name }, restore());
  } else {
    const name = stored(localStorage, NAME_KEY);
    if (name) $('name').value = name;
  }
  draw();
}

start();
