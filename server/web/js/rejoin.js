// Waiting for the lost connection's seat (the terminal engine's rule, src/engine/rejoin.rs).
// After the server is lost and the new session is not a resumed one, the page joins its
// wanted channel again. The server may refuse that join as `already_in_channel` or
// `already_in_voice` because the *lost* connection still holds the user's seat: a `kill -9`ed
// cluster instance holds its seats until its lease lapses, a half-open connection until the
// server drops it. That refusal is not the user's answer, so the join is asked again — at
// once when presence shows our own user leaving (the stale seat was released), otherwise every
// SEAT_RETRY_MS — until SEAT_PATIENCE_MS have passed since the first refusal; then the refusal
// is final.
//
// Pure: the times are arguments. Must never read a clock, send anything, touch the page or
// decide on a join the user asked for (those refusals are final at once: main.js makes a
// SeatWait only for a rejoin after a lost connection).

/** How often a refused rejoin is asked again when no presence says the seat was released. */
export const SEAT_RETRY_MS = 2000;

/**
 * How long after the first refusal a rejoin keeps asking before the refusal is final: a
 * killed cluster instance's seats are released within `lease_ms + renew_ms` (20 s by
 * default), a silent connection's on one server after 20 s; 40 s covers both with room.
 */
export const SEAT_PATIENCE_MS = 40000;

/** The refusal reasons that mean "seated elsewhere", perhaps by the lost connection. */
export const SEATED_ELSEWHERE = new Set(['already_in_channel', 'already_in_voice']);

/** What a refusal of the rejoin means now. */
export const Refusal = Object.freeze({
  /** The first: tell the user we are waiting for the old seat, and ask again later. */
  FIRST_WAIT: 'first_wait',
  /** Another while waiting: ask again later, say nothing new. */
  STILL_WAITING: 'still_waiting',
  /** Past SEAT_PATIENCE_MS: the refusal is final. */
  GIVE_UP: 'give_up',
});

/** The words the VoiceBar shows while waiting (the engine's `seat_still_held` notice). */
export function waitWords(channelName) {
  return `rejoining ${channelName}: the seat of the lost connection is still held; ` +
    'asking again until the server releases it';
}

/** A rejoin of `channel` after a lost connection, and its wait for the old seat. */
export class SeatWait {
  constructor(channel) {
    this.channel = channel;
    /** When the server first refused the rejoin (ms; null: not refused yet). */
    this.refusedSince = null;
    /** When to ask again (ms; null: a join is on its way, or none refused yet). */
    this.nextAsk = null;
  }

  /** The server refused the rejoin at `now` (ms) as seated elsewhere. */
  onRefused(now) {
    if (this.refusedSince === null) {
      this.refusedSince = now;
      this.nextAsk = now + SEAT_RETRY_MS;
      return Refusal.FIRST_WAIT;
    }
    if (now - this.refusedSince >= SEAT_PATIENCE_MS) {
      this.nextAsk = null;
      return Refusal.GIVE_UP;
    }
    this.nextAsk = now + SEAT_RETRY_MS;
    return Refusal.STILL_WAITING;
  }

  /**
   * Presence showed our own user leave a channel: whether to ask again at once (only once
   * refused: before that, the first rejoin is still on its way).
   */
  onOwnLeave() {
    if (this.refusedSince === null) return false;
    this.nextAsk = null;
    return true;
  }

  /** Whether it is time to ask again at `now`; if so, the timer is spent until the answer. */
  due(now) {
    if (this.nextAsk !== null && this.nextAsk <= now) {
      this.nextAsk = null;
      return true;
    }
    return false;
  }

  /** Whether the server has refused the rejoin at least once (we are waiting for the seat). */
  get refused() {
    return this.refusedSince !== null;
  }
}
