// The VoiceBar: what the voice connection is doing, in colour and in words. Pure: `describe`
// turns the page's voice state into the bar's state, reason and text; `render` writes them.
// The words match the terminal client's status line (src/engine/error.rs).

/** Why a join or a session ended, in words a person can act on. */
const REASONS = {
  already_in_channel: 'already in this channel from another session',
  already_in_voice: 'already in voice elsewhere',
  not_found: 'no such channel',
  server_gone: 'server unreachable',
  server_shutdown: 'the server is restarting',
  slow_consumer: 'connection too slow',
  server_full: 'the server is full',
  session_replaced: 'this session was opened elsewhere',
  invalid_token: 'your sign-in link is not valid here',
  token_expired: 'your sign-in link has expired',
  invalid_name: 'that name cannot be used',
  name_taken: 'that name is taken',
  unsupported_protocol: 'this page is too old for the server; reload it',
  no_route: 'no route to peers',
  no_microphone: 'no microphone',
  text_too_long: 'that message is too long',
  invalid_text: 'that message cannot be sent',
  history_unavailable: 'the chat history cannot be read now',
  cluster_unavailable: 'the server cannot do that right now; try again',
};

export function reasonWords(reason, message) {
  const words = REASONS[reason] || reason.replace(/_/g, ' ');
  return message ? `${words}: ${message}` : words;
}

/**
 * @param {{phase:'idle'|'connecting'|'connected'|'disconnected', channelName:string|null,
 *          reason?:string, message?:string, retryInMs?:number}} voice
 * @returns {{state:string, reason:string, text:string}}
 */
export function describe(voice) {
  const where = voice.channelName || '';
  switch (voice.phase) {
    case 'connecting': {
      // A rejoin waiting for the lost connection's seat says so (`rejoin.js`'s words).
      let text = where ? `Connecting… ${where}` : 'Connecting…';
      if (voice.message) text += ` — ${voice.message}`;
      return { state: 'connecting', reason: voice.reason || '', text };
    }
    case 'connected':
      return { state: 'connected', reason: '', text: `Connected — ${where}` };
    case 'disconnected': {
      let text = `Disconnected — ${reasonWords(voice.reason || 'server_gone', voice.message)}`;
      if (voice.retryInMs != null) text += ` (retrying in ${Math.ceil(voice.retryInMs / 1000)} s)`;
      return { state: 'disconnected', reason: voice.reason || '', text };
    }
    default:
      return { state: 'idle', reason: '', text: 'Not in a voice channel' };
  }
}

/** Write the bar (only what changed, so screen readers announce changes once). */
export function render(barEl, textEl, voice) {
  const d = describe(voice);
  if (barEl.dataset.state !== d.state) barEl.dataset.state = d.state;
  if (barEl.dataset.reason !== d.reason) barEl.dataset.reason = d.reason;
  if (textEl.textContent !== d.text) textEl.textContent = d.text;
}
