// The VoiceRoom: one RTCPeerConnection per peer of our channel (a full mesh), with the same
// rules as the terminal engine (src/engine/session.rs, calls.rs):
// - of two user ids the one that sorts first byte-wise makes every offer;
// - connection numbers come from one counter per page, starting at 1, taken for every
//   connection built as offerer; answers echo the offer's number; an offerer drops answers
//   to a connection it replaced; an answerer replaces its connection on a new number;
// - a failed connection: the offerer restarts ICE, and builds a new connection when that
//   fails too (or when the TURN credentials changed since it was built);
// - renewed TURN credentials rebuild every relayed connection (the answerer asks with
//   `renew`); a peer whose `instance` changes is called anew.
// The room reports what the page shows of each peer through `onPeer(user, patch)`.

const DISCONNECTED_GRACE_MS = 2000;
const RESTART_INTERVAL_MS = 3000;
const ANSWER_WAIT_MS = 10000;
/** Not connected this long: shown as failed (restarts go on). */
export const DOWN_LIMIT_MS = 10000;
/** An answerer whose connection stays down this long asks the offerer for a new one. */
const RENEW_WAIT_MS = 15000;
const SPEAKING_LEVEL = 0.01;
const SPEAKING_HANGOVER_MS = 300;

const utf8 = new TextEncoder();

/** a < b comparing the UTF-8 bytes (what the server and the engine compare). */
export function bytewiseLess(a, b) {
  const x = utf8.encode(a);
  const y = utf8.encode(b);
  const n = Math.min(x.length, y.length);
  for (let i = 0; i < n; i++) {
    if (x[i] !== y[i]) return x[i] < y[i];
  }
  return x.length < y.length;
}

/** One counter per page: every connection this page builds as offerer takes a number. */
let nextConnection = 1;

/** RMS of an analyser's current window. */
export function rmsOf(analyser, buf) {
  analyser.getFloatTimeDomainData(buf);
  let sum = 0;
  for (let i = 0; i < buf.length; i++) sum += buf[i] * buf[i];
  return Math.sqrt(sum / buf.length);
}

export class VoiceRoom {
  /**
   * @param {{send(to:string, signal:object):void, onPeer(user:string, patch:object|null):void,
   *          audioBox:HTMLElement, audioContext():AudioContext|null,
   *          onPlayBlocked?():void}} io
   */
  constructor(io) {
    this.io = io;
    this.me = null;
    this.ice = { servers: [], expires_at: null };
    this.iceEpoch = 0;
    this.peers = new Map();
    this.track = null;
    this.stream = null;
    this.deafened = false;
    this.sinkId = '';
    this.relayOnly = false;
    this.levelBuf = new Float32Array(1024);
  }

  weOffer(user) {
    return bytewiseLess(this.me, user);
  }

  /** We sit in a channel (joined): its ICE servers and the peers already there. */
  enter(me, ice, members) {
    this.closeAll();
    this.me = me;
    this.setIce(ice);
    for (const m of members) this.present(m);
  }

  setIce(ice) {
    const next = ice || { servers: [], expires_at: null };
    if (JSON.stringify(next.servers) !== JSON.stringify(this.ice.servers)) this.iceEpoch += 1;
    this.ice = next;
  }

  /** A member is (now) in our channel: call it, or call anew if its instance changed. */
  present(member) {
    if (!this.me || member.user === this.me) return;
    const old = this.peers.get(member.user);
    if (old && old.instance === member.instance) {
      old.name = member.name;
      this.io.onPeer(member.user, { name: member.name });
      return;
    }
    if (old) this.closeLink(old);
    const now = Date.now();
    const peer = {
      user: member.user,
      name: member.name,
      instance: member.instance,
      offerer: this.weOffer(member.user),
      link: null,
      remoteConn: null,
      state: 'connecting',
      downSince: now,
      lastRestart: 0,
      offerPending: 0,
      restarted: false,
      lastRenew: now,
      relayed: false,
      audio: old ? old.audio : null,
      source: null,
      analyser: null,
      speakingUntil: 0,
      speaking: false,
    };
    this.peers.set(member.user, peer);
    this.io.onPeer(peer.user, {
      name: peer.name, state: 'connecting', path: '', rtt: null, loss: null, speaking: false,
      downSince: now,
    });
    this.build(peer);
    if (peer.offerer) this.offer(peer, false);
  }

  /** A member left our channel. */
  gone(user) {
    const peer = this.peers.get(user);
    if (!peer) return;
    this.closeLink(peer);
    this.dropAudio(peer);
    this.peers.delete(user);
    this.io.onPeer(user, null);
  }

  /** We left the channel (or lost the server): close every call. */
  closeAll() {
    for (const user of [...this.peers.keys()]) this.gone(user);
  }

  // --- connections ----------------------------------------------------------------------

  /** A new RTCPeerConnection for `peer`, replacing its current one. */
  build(peer) {
    this.closeLink(peer);
    const pc = new RTCPeerConnection({
      iceServers: this.ice.servers.map((s) => {
        const server = { urls: s.urls };
        if (s.username != null) server.username = s.username;
        if (s.credential != null) server.credential = s.credential;
        return server;
      }),
      iceTransportPolicy: this.relayOnly ? 'relay' : 'all',
      bundlePolicy: 'max-bundle',
    });
    const link = {
      pc,
      gen: peer.offerer ? nextConnection++ : 0,
      epoch: this.iceEpoch,
      chain: Promise.resolve(),
      remoteQueue: [],
      held: [],
      described: false,
    };
    peer.link = link;
    peer.relayed = false;
    if (peer.offerer) {
      const init = { direction: 'sendrecv' };
      if (this.stream) init.streams = [this.stream];
      const t = pc.addTransceiver('audio', init);
      if (this.track) t.sender.replaceTrack(this.track).catch(() => {});
    }
    pc.onicecandidate = (e) => {
      if (peer.link !== link || !e.candidate || !e.candidate.candidate) return;
      const c = e.candidate;
      const sig = { kind: 'candidate', candidate: c.candidate };
      if (c.sdpMid != null) sig.sdp_mid = c.sdpMid;
      if (c.sdpMLineIndex != null) sig.sdp_mline_index = c.sdpMLineIndex;
      if (c.usernameFragment != null) sig.username_fragment = c.usernameFragment;
      if (link.described) this.io.send(peer.user, sig);
      else link.held.push(sig);
    };
    pc.onconnectionstatechange = () => {
      if (peer.link === link) this.onState(peer, pc.connectionState);
    };
    pc.ontrack = (e) => {
      if (peer.link !== link) return;
      this.playRemote(peer, e.streams[0] || new MediaStream([e.track]));
    };
    this.setState(peer, 'connecting');
    return link;
  }

  closeLink(peer) {
    const link = peer.link;
    peer.link = null;
    if (link) {
      link.pc.onicecandidate = link.pc.onconnectionstatechange = link.pc.ontrack = null;
      link.pc.close();
    }
  }

  /** Run `step` after every earlier signaling step of this connection. */
  queue(link, step) {
    link.chain = link.chain.then(step).catch((err) => {
      console.warn('cromulent: peer connection step failed', err);
    });
    return link.chain;
  }

  /** The description went out: candidates gathered meanwhile may follow. */
  release(peer, link) {
    link.described = true;
    const held = link.held;
    link.held = [];
    for (const sig of held) this.io.send(peer.user, sig);
  }

  async flushRemote(link) {
    const queued = link.remoteQueue;
    link.remoteQueue = [];
    for (const c of queued) await link.pc.addIceCandidate(c).catch(() => {});
  }

  /** As offerer: make (and send) an offer on the current connection. */
  offer(peer, restart) {
    const link = peer.link;
    if (!link) return;
    peer.offerPending = Date.now();
    this.queue(link, async () => {
      if (peer.link !== link) return;
      link.described = false;
      const offer = await link.pc.createOffer(restart ? { iceRestart: true } : {});
      if (peer.link !== link) return;
      await link.pc.setLocalDescription(offer);
      if (peer.link !== link) return;
      this.io.send(peer.user, { kind: 'offer', sdp: link.pc.localDescription.sdp, connection: link.gen });
      this.release(peer, link);
    });
  }

  /** As offerer: replace the whole connection (new number) and offer on it. */
  renewConnection(peer) {
    peer.lastRestart = Date.now();
    peer.restarted = false;
    this.build(peer);
    this.offer(peer, false);
  }

  /** Signaling from a peer of our channel. */
  signal(from, sig) {
    const peer = this.peers.get(from);
    if (!peer || !sig) return;
    switch (sig.kind) {
      case 'offer':
        if (peer.offerer) return; // offers never cross: we make them
        this.onOffer(peer, sig);
        break;
      case 'answer':
        if (peer.offerer) this.onAnswer(peer, sig);
        break;
      case 'candidate':
        this.onCandidate(peer, sig);
        break;
      case 'renew':
        if (peer.offerer) this.renewConnection(peer);
        break;
      default:
    }
  }

  onOffer(peer, sig) {
    const connection = sig.connection || 0;
    if (!peer.link || (peer.remoteConn !== null && connection !== peer.remoteConn)) {
      // The offerer built a new connection: so do we.
      this.build(peer);
    }
    peer.remoteConn = connection;
    const link = peer.link;
    this.queue(link, async () => {
      if (peer.link !== link) return;
      const pc = link.pc;
      await pc.setRemoteDescription({ type: 'offer', sdp: sig.sdp });
      for (const t of pc.getTransceivers()) {
        if (t.receiver.track && t.receiver.track.kind === 'audio' && !t.stopped) {
          t.direction = 'sendrecv';
          if (this.track && t.sender.track !== this.track) await t.sender.replaceTrack(this.track);
          if (this.stream && t.sender.setStreams) t.sender.setStreams(this.stream);
        }
      }
      await this.flushRemote(link);
      link.described = false;
      const answer = await pc.createAnswer();
      if (peer.link !== link) return;
      await pc.setLocalDescription(answer);
      if (peer.link !== link) return;
      this.io.send(peer.user, { kind: 'answer', sdp: pc.localDescription.sdp, connection });
      this.release(peer, link);
    });
  }

  onAnswer(peer, sig) {
    const link = peer.link;
    if (!link || (sig.connection || 0) !== link.gen) return; // to a replaced connection
    this.queue(link, async () => {
      if (peer.link !== link || link.pc.signalingState !== 'have-local-offer') return;
      await link.pc.setRemoteDescription({ type: 'answer', sdp: sig.sdp });
      peer.offerPending = 0;
      await this.flushRemote(link);
    });
  }

  onCandidate(peer, sig) {
    const link = peer.link;
    if (!link || !sig.candidate) return;
    const init = { candidate: sig.candidate };
    if (sig.sdp_mid != null) init.sdpMid = sig.sdp_mid;
    if (sig.sdp_mline_index != null) init.sdpMLineIndex = sig.sdp_mline_index;
    if (sig.sdp_mid == null && sig.sdp_mline_index == null) init.sdpMLineIndex = 0;
    if (sig.username_fragment != null) init.usernameFragment = sig.username_fragment;
    this.queue(link, async () => {
      if (peer.link !== link) return;
      if (!link.pc.remoteDescription) link.remoteQueue.push(init);
      else await link.pc.addIceCandidate(init).catch(() => {});
    });
  }

  // --- health ---------------------------------------------------------------------------

  onState(peer, pcState) {
    const state = { new: 'connecting', connecting: 'connecting', connected: 'connected',
      disconnected: 'disconnected', failed: 'failed' }[pcState];
    if (!state) return;
    this.setState(peer, state);
    if (state === 'connected') {
      peer.restarted = false;
      this.readStats(peer);
    }
    if (state === 'failed' && peer.offerer) this.recover(peer);
  }

  setState(peer, state) {
    if (peer.state === state && state !== 'connecting') return;
    peer.state = state;
    if (state === 'connected') peer.downSince = 0;
    else if (!peer.downSince) peer.downSince = Date.now();
    this.io.onPeer(peer.user, {
      state, downSince: peer.downSince, ...(state === 'connected' ? {} : { rtt: null }),
    });
  }

  /** As offerer, a connection that failed (or hangs disconnected): ICE restart, then anew. */
  recover(peer) {
    const now = Date.now();
    if (peer.offerPending || now - peer.lastRestart < RESTART_INTERVAL_MS) return;
    if (peer.restarted || !peer.link || peer.link.epoch !== this.iceEpoch) {
      // An ICE restart cannot change TURN credentials, and one already failed.
      this.renewConnection(peer);
      return;
    }
    peer.restarted = true;
    peer.lastRestart = now;
    this.offer(peer, true);
  }

  /** Fresh ICE servers (renewed TURN credentials): rebuild every relayed connection. */
  freshIce(ice) {
    this.setIce(ice);
    for (const peer of this.peers.values()) {
      if (!peer.relayed) continue;
      if (peer.offerer) this.renewConnection(peer);
      else this.io.send(peer.user, { kind: 'renew' });
    }
  }

  /** Once a second: timers of every call, and its statistics. */
  tick() {
    const now = Date.now();
    for (const peer of this.peers.values()) {
      if (peer.offerer) {
        if (peer.offerPending && now - peer.offerPending >= ANSWER_WAIT_MS) {
          peer.offerPending = 0;
          this.renewConnection(peer);
        } else if (peer.state === 'failed' ||
          (peer.state === 'disconnected' && now - peer.downSince >= DISCONNECTED_GRACE_MS)) {
          this.recover(peer);
        }
      } else if (peer.downSince && now - peer.downSince >= RENEW_WAIT_MS &&
        now - peer.lastRenew >= RENEW_WAIT_MS) {
        peer.lastRenew = now;
        this.io.send(peer.user, { kind: 'renew' });
      }
      this.readStats(peer);
    }
  }

  async readStats(peer) {
    const link = peer.link;
    if (!link) return;
    let report;
    try {
      report = await link.pc.getStats();
    } catch {
      return;
    }
    if (peer.link !== link) return;
    let pair = null;
    let inbound = null;
    report.forEach((s) => {
      if (s.type === 'transport' && s.selectedCandidatePairId) {
        pair = report.get(s.selectedCandidatePairId) || pair;
      } else if (s.type === 'inbound-rtp' && s.kind === 'audio') {
        inbound = s;
      }
    });
    if (!pair) {
      report.forEach((s) => {
        if (!pair && s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') pair = s;
      });
    }
    const local = pair && report.get(pair.localCandidateId);
    const patch = {};
    if (local) {
      peer.relayed = local.candidateType === 'relay';
      patch.path = peer.relayed ? 'relayed' : 'direct';
    } else {
      patch.path = '';
    }
    patch.rtt = pair && typeof pair.currentRoundTripTime === 'number'
      ? Math.round(pair.currentRoundTripTime * 1000) : null;
    if (inbound && typeof inbound.packetsReceived === 'number') {
      const lost = Math.max(0, inbound.packetsLost || 0);
      const total = lost + inbound.packetsReceived;
      patch.loss = total > 0 ? lost / total : 0;
    } else {
      patch.loss = null;
    }
    this.io.onPeer(peer.user, patch);
  }

  // --- media ----------------------------------------------------------------------------

  /** A new microphone track (or null): sent to every peer. */
  setTrack(track, stream) {
    this.track = track;
    this.stream = stream;
    for (const peer of this.peers.values()) {
      if (!peer.link) continue;
      for (const t of peer.link.pc.getTransceivers()) {
        if (t.stopped || !t.sender || (t.receiver.track && t.receiver.track.kind !== 'audio')) continue;
        t.sender.replaceTrack(track).catch(() => {});
        if (stream && t.sender.setStreams) t.sender.setStreams(stream);
      }
    }
  }

  playRemote(peer, stream) {
    if (!peer.audio) {
      const audio = document.createElement('audio');
      audio.autoplay = true;
      audio.setAttribute('data-peer', peer.user);
      this.io.audioBox.append(audio);
      peer.audio = audio;
    }
    const audio = peer.audio;
    audio.muted = this.deafened;
    if (audio.srcObject !== stream) audio.srcObject = stream;
    if (this.sinkId && audio.setSinkId) audio.setSinkId(this.sinkId).catch(() => {});
    audio.play().catch((err) => {
      if (err && err.name === 'NotAllowedError' && this.io.onPlayBlocked) this.io.onPlayBlocked();
    });
    // The speaking indicator: the stream's real level. Chrome feeds WebAudio from a remote
    // stream only while it also plays in a media element, so both are kept.
    const ctx = this.io.audioContext();
    if (peer.source) peer.source.disconnect();
    peer.source = peer.analyser = null;
    if (ctx) {
      peer.source = ctx.createMediaStreamSource(stream);
      peer.analyser = ctx.createAnalyser();
      peer.analyser.fftSize = 1024;
      peer.source.connect(peer.analyser);
    }
  }

  dropAudio(peer) {
    if (peer.source) peer.source.disconnect();
    peer.source = peer.analyser = null;
    if (peer.audio) {
      peer.audio.srcObject = null;
      peer.audio.remove();
      peer.audio = null;
    }
  }

  /** Every few tens of ms: who of the peers is speaking now. */
  levels() {
    const now = Date.now();
    for (const peer of this.peers.values()) {
      if (!peer.analyser) continue;
      if (rmsOf(peer.analyser, this.levelBuf) >= SPEAKING_LEVEL) {
        peer.speakingUntil = now + SPEAKING_HANGOVER_MS;
      }
      const speaking = now < peer.speakingUntil;
      if (speaking !== peer.speaking) {
        peer.speaking = speaking;
        this.io.onPeer(peer.user, { speaking });
      }
    }
  }

  setDeafened(on) {
    this.deafened = on;
    for (const peer of this.peers.values()) if (peer.audio) peer.audio.muted = on;
  }

  setSink(id) {
    this.sinkId = id;
    for (const peer of this.peers.values()) {
      if (peer.audio && peer.audio.setSinkId) peer.audio.setSinkId(id).catch(() => {});
    }
  }
}
