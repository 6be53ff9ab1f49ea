// The signaling WebSocket: hello/welcome, the application-level heartbeat, reconnect with
// backoff and resume. It owns the socket and nothing else: every server message is handed
// to `onMessage`, losses to `onLost`, the end of the road to `onFatal`.

/** Reasons after which reconnecting cannot help: the user must act. */
export const FINAL = new Set([
  'session_replaced', 'invalid_token', 'token_expired', 'name_taken', 'invalid_name',
  'unsupported_protocol',
]);

/** Reasons the server marks fatal (a close follows them). */
const CLOSING = new Set([...FINAL, 'not_authenticated', 'slow_consumer', 'server_full',
  'server_shutdown']);

const FIRST_DELAY_MS = 250;
const MAX_DELAY_MS = 5000;
/** Until a welcome tells us the server's heartbeat. */
const DEFAULT_TIMEOUT_MS = 20000;

export function socketUrl(loc = location) {
  return (loc.protocol === 'https:' ? 'wss://' : 'ws://') + loc.host + '/';
}

export class Signaling {
  /**
   * @param {{onMessage(msg:object):void, onLost(why:{reason:string,message:string,retryInMs:number}):void,
   *          onFatal(err:{reason:string,message:string}):void, onResumeToken(token:string):void}} handlers
   */
  constructor(handlers) {
    this.h = handlers;
    this.ws = null;
    this.hello = null;
    this.resume = null;
    this.attempt = 0;
    this.stopped = true;
    this.welcomed = false;
    this.pingId = 0;
    this.timeoutMs = DEFAULT_TIMEOUT_MS;
    this.pingMs = 5000;
    this.lastHeard = 0;
    this.lastPing = 0;
    this.closingError = null;
    this.retryTimer = 0;
    this.watch = 0;
  }

  /** Connect with `hello` fields {name?, token?}; `resume` is a previous session's token. */
  start(hello, resume) {
    this.hello = hello;
    this.resume = resume || null;
    this.stopped = false;
    this.attempt = 0;
    clearTimeout(this.retryTimer);
    if (!this.watch) this.watch = setInterval(() => this.heartbeat(), 1000);
    this.open();
  }

  /** Close for good (no reconnect). */
  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    clearInterval(this.watch);
    this.watch = 0;
    const ws = this.ws;
    this.ws = null;
    if (ws) ws.close(1000);
  }

  get online() {
    return this.welcomed && !!this.ws && this.ws.readyState === WebSocket.OPEN;
  }

  /** Send a message once welcomed; false when there is no live session to carry it. */
  send(msg) {
    if (!this.online) return false;
    this.ws.send(JSON.stringify(msg));
    return true;
  }

  open() {
    const ws = new WebSocket(socketUrl());
    this.ws = ws;
    this.welcomed = false;
    this.closingError = null;
    this.timeoutMs = DEFAULT_TIMEOUT_MS;
    this.lastHeard = Date.now();
    ws.onopen = () => {
      if (ws !== this.ws) return;
      this.lastHeard = Date.now();
      const hello = { type: 'hello', protocol: 1 };
      if (this.hello.name) hello.name = this.hello.name;
      if (this.hello.token) hello.token = this.hello.token;
      if (this.resume) hello.resume = this.resume;
      ws.send(JSON.stringify(hello));
    };
    ws.onmessage = (e) => {
      if (ws !== this.ws) return;
      this.lastHeard = Date.now();
      let msg;
      try {
        msg = JSON.parse(e.data);
      } catch {
        return;
      }
      if (msg && typeof msg.type === 'string') this.receive(msg);
    };
    ws.onclose = (e) => {
      if (ws === this.ws) this.lost(e.reason || '');
    };
    ws.onerror = () => {}; // a close event follows
  }

  receive(msg) {
    if (msg.type === 'welcome') {
      this.welcomed = true;
      this.attempt = 0;
      this.pingMs = Math.max(1000, msg.heartbeat.ping_interval_ms);
      this.timeoutMs = Math.max(2000, msg.heartbeat.timeout_ms);
      this.resume = msg.session.resume_token;
      this.lastPing = Date.now();
      this.h.onResumeToken(this.resume);
    } else if (msg.type === 'error' && CLOSING.has(msg.reason)) {
      this.closingError = { reason: msg.reason, message: msg.message || '' };
    } else if (msg.type === 'pong') {
      return;
    }
    this.h.onMessage(msg);
  }

  /** Every second: ping when due, and give up on a server silent for its timeout. */
  heartbeat() {
    const ws = this.ws;
    if (!ws) return;
    const now = Date.now();
    if (now - this.lastHeard > this.timeoutMs) {
      this.ws = null;
      ws.onopen = ws.onmessage = ws.onclose = null;
      ws.close();
      this.lost('');
      return;
    }
    if (this.online && now - this.lastPing >= this.pingMs) {
      this.lastPing = now;
      ws.send(JSON.stringify({ type: 'ping', id: ++this.pingId }));
    }
  }

  lost(closeReason) {
    this.ws = null;
    this.welcomed = false;
    let err = this.closingError;
    if (!err && FINAL.has(closeReason)) err = { reason: closeReason, message: '' };
    if (err && FINAL.has(err.reason)) {
      this.stop();
      this.h.onFatal(err);
      return;
    }
    if (this.stopped) return;
    const base = Math.min(MAX_DELAY_MS, FIRST_DELAY_MS * 2 ** this.attempt);
    const delay = Math.round(base * (0.5 + Math.random() * 0.5));
    this.attempt += 1;
    this.h.onLost({
      reason: err ? err.reason : 'server_gone',
      message: err ? err.message : '',
      retryInMs: delay,
    });
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      if (!this.stopped) this.open();
    }, delay);
  }
}
