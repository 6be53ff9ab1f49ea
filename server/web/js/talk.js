// The microphone and the talk rules. The rules are the terminal client's
// (src/engine/talk.rs), as pure functions here:
// - mute always wins: a muted microphone is never live, whatever the mode or the talk key;
// - unmuting never opens the microphone by itself in push-to-talk mode;
// - deafened users are not heard either; undeafening restores the previous mute state;
// - open mic is live unless muted; push-to-talk while the key or button is held; voice
//   activity while speech is detected (or the talk button is held).
// `Mic` owns the MediaStream: it opens the device with the browser's own echo cancellation,
// noise suppression and gain control (each on by default), switches devices, measures the
// level on a clone of the track (so the meter and the detector work while the sent track is
// disabled), and enables the sent track exactly while the user is heard.

/** The terminal client's voice-activity threshold (src/audio/level.rs): -45 dBFS RMS. */
export const VOICE_THRESHOLD = 10 ** (-45 / 20);
/** How long the detector stays active after the level drops (15 frames of 20 ms). */
export const VOICE_HANGOVER_MS = 300;
const LEVEL_INTERVAL_MS = 40;

/** Is the user heard now? */
export function isLive({ mode, muted, deafened, held, voice, hasMic }) {
  if (!hasMic || muted || deafened) return false;
  if (held) return true;
  if (mode === 'open') return true;
  if (mode === 'vad') return voice;
  return false;
}

/** Energy threshold with hangover: active from a loud window until `hangoverMs` of quiet. */
export class VoiceDetector {
  constructor(threshold = VOICE_THRESHOLD, hangoverMs = VOICE_HANGOVER_MS) {
    this.threshold = threshold;
    this.hangoverMs = hangoverMs;
    this.until = -Infinity;
  }

  /** Feed the level of the window ending at `now` (ms); whether voice is active. */
  update(level, now) {
    if (level >= this.threshold) this.until = now + this.hangoverMs;
    return now < this.until;
  }
}

/** getUserMedia constraints for a device id ('' = the default) and processing switches. */
export function constraints(deviceId, processing) {
  const audio = {
    echoCancellation: processing.echoCancellation,
    noiseSuppression: processing.noiseSuppression,
    autoGainControl: processing.autoGainControl,
    channelCount: 1,
  };
  if (deviceId) audio.deviceId = { exact: deviceId };
  return { audio, video: false };
}

export class Mic {
  /**
   * @param {{onTrack(track:MediaStreamTrack|null, stream:MediaStream|null):void,
   *          onLive(live:boolean):void, onLevel(level:number):void,
   *          onProblem(text:string):void, audioContext():AudioContext|null}} io
   */
  constructor(io) {
    this.io = io;
    this.mode = 'vad';
    this.muted = false;
    this.deafened = false;
    this.held = false;
    this.voice = false;
    this.live = false;
    this.deviceId = '';
    this.processing = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };
    this.stream = null;
    this.track = null;
    this.probe = null;
    this.analyser = null;
    this.source = null;
    this.detector = new VoiceDetector();
    this.buf = new Float32Array(1024);
    this.timer = 0;
    this.opening = null;
  }

  /** Open the microphone if it is not open (a second call waits for the first). */
  ensure() {
    if (this.track && this.track.readyState === 'live') return Promise.resolve(true);
    if (!this.opening) this.opening = this.open().finally(() => { this.opening = null; });
    return this.opening;
  }

  async open() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      this.io.onProblem('no microphone: this page needs HTTPS (or localhost) for one');
      return false;
    }
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia(constraints(this.deviceId, this.processing));
    } catch (err) {
      const denied = err && (err.name === 'NotAllowedError' || err.name === 'SecurityError');
      this.io.onProblem(denied ? 'no microphone: permission refused, listening only'
        : 'no microphone found, listening only');
      return false;
    }
    this.attach(stream);
    this.io.onProblem('');
    return true;
  }

  attach(stream) {
    this.release();
    this.stream = stream;
    this.track = stream.getAudioTracks()[0] || null;
    if (this.track) {
      this.track.onended = () => {
        if (this.track && this.track.readyState === 'ended') {
          this.io.onProblem('the microphone went away');
          this.release();
          this.io.onTrack(null, null);
          this.update();
        }
      };
      this.probe = this.track.clone();
      this.probe.enabled = true;
      const ctx = this.io.audioContext();
      if (ctx) {
        this.source = ctx.createMediaStreamSource(new MediaStream([this.probe]));
        this.analyser = ctx.createAnalyser();
        this.analyser.fftSize = 1024;
        this.source.connect(this.analyser);
      }
    }
    if (!this.timer) this.timer = setInterval(() => this.measure(), LEVEL_INTERVAL_MS);
    this.update(); // the track is enabled only if we are to be heard, before anyone gets it
    this.io.onTrack(this.track, this.stream);
  }

  release() {
    if (this.source) this.source.disconnect();
    this.source = this.analyser = null;
    if (this.probe) this.probe.stop();
    this.probe = null;
    if (this.stream) for (const t of this.stream.getTracks()) t.stop();
    this.stream = this.track = null;
  }

  /** Stop the microphone (we left voice). */
  close() {
    this.release();
    clearInterval(this.timer);
    this.timer = 0;
    this.voice = false;
    this.io.onLevel(0);
    this.io.onTrack(null, null);
    this.update();
  }

  /** Re-open with another device or other processing; the new track replaces the old one. */
  async reopen() {
    if (!this.stream) return;
    this.release();
    await this.open();
  }

  measure() {
    if (!this.analyser) return;
    this.analyser.getFloatTimeDomainData(this.buf);
    let sum = 0;
    for (let i = 0; i < this.buf.length; i++) sum += this.buf[i] * this.buf[i];
    const level = Math.sqrt(sum / this.buf.length);
    this.io.onLevel(this.muted || this.deafened ? 0 : level);
    const voice = this.detector.update(level, performance.now());
    if (voice !== this.voice) {
      this.voice = voice;
      this.update();
    }
  }

  setMode(mode) { this.mode = mode; this.held = false; this.update(); }
  setMuted(on) { this.muted = on; this.update(); }
  setDeafened(on) { this.deafened = on; this.update(); }
  setHeld(on) { if (this.held !== on) { this.held = on; this.update(); } }

  /** Recompute whether we are heard; enable the sent track to match; report a change. */
  update() {
    const live = isLive({
      mode: this.mode, muted: this.muted, deafened: this.deafened, held: this.held,
      voice: this.voice, hasMic: !!this.track,
    });
    this.apply(live);
    if (live !== this.live) {
      this.live = live;
      this.io.onLive(live);
    }
  }

  apply(live = this.live) {
    if (this.track) this.track.enabled = live;
  }
}
