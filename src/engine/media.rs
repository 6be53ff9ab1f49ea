//! The media pipeline, once per 20 ms frame: capture → level/voice detection → (if the talk
//! state says the mic is live) Opus encode, once for every peer; and per peer: jitter buffer →
//! decode / FEC / concealment → mix → sink. Synchronous and free of WebRTC: the engine feeds
//! it received packets and takes the packet to send, so it can be tested by wiring two
//! pipelines together.

use std::collections::BTreeMap;
use std::time::Instant;

use cromulent_protocol::UserId;

use crate::audio::{
    AudioSink, AudioSource, CodecError, Decoder, Encoder, FRAME_SAMPLES, Frame, JitterBuffer,
    JitterConfig, JitterStats, Level, Playout, SILENT_FRAME, SinkError, VoiceActivity,
    is_dtx_packet, mix,
};

use super::talk::TalkState;

/// After audio stops arriving, conceal this many frames before going silent.
const CONCEAL_FRAMES: u32 = 5;
/// A peer counts as speaking while its decoded level is above this.
const SPEAKING_DBFS: f32 = -45.0;
/// Decoded audio above this counts as heard (the `audio` event); silence encoded before DTX
/// sets in stays below it.
const HEARD_DBFS: f32 = -60.0;

#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("opus: {0}")]
    Codec(#[from] CodecError),
    #[error("audio output: {0}")]
    Sink(#[from] SinkError),
}

/// What one frame produced.
#[derive(Debug, Default)]
pub struct Tick {
    /// Opus packet to send to every peer (encoded once), if the mic is live and not silent.
    pub packet: Option<Vec<u8>>,
    /// Peers whose first audio was decoded in this frame.
    pub first_audio: Vec<UserId>,
    /// Capture level of this frame.
    pub mic_dbfs: f32,
    /// Whether the mic is live this frame (the `talking` flag).
    pub mic_live: bool,
}

struct PeerAudio {
    jitter: JitterBuffer,
    decoder: Decoder,
    out: Frame,
    /// Frames concealed since the last real packet.
    concealed: u32,
    /// Lost frames rebuilt from the next packet's in-band FEC, since the peer was added.
    fec_recovered: u64,
    /// Frames the decoder concealed (PLC), whatever the cause: lost, late, or the buffer
    /// running dry; since the peer was added.
    plc_frames: u64,
    /// Whether any real audio was decoded yet.
    heard: bool,
    level_dbfs: f32,
}

/// Receive-side figures of one peer, for stats and the peers panel.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PeerAudioStats {
    pub jitter: JitterStats,
    /// Lost frames rebuilt from in-band FEC.
    pub fec_recovered: u64,
    /// Frames the decoder concealed (PLC).
    pub plc_frames: u64,
    pub level_dbfs: f32,
    pub speaking: bool,
}

pub struct Media {
    source: Box<dyn AudioSource + Send>,
    sink: Box<dyn AudioSink + Send>,
    encoder: Encoder,
    vad: VoiceActivity,
    capture: Frame,
    mixed: Frame,
    peers: BTreeMap<UserId, PeerAudio>,
}

impl Media {
    pub fn new(
        source: Box<dyn AudioSource + Send>,
        sink: Box<dyn AudioSink + Send>,
    ) -> Result<Self, MediaError> {
        Ok(Self {
            source,
            sink,
            encoder: Encoder::new()?,
            vad: VoiceActivity::new(
                VoiceActivity::DEFAULT_THRESHOLD_DBFS,
                VoiceActivity::DEFAULT_HANGOVER_FRAMES,
            ),
            capture: SILENT_FRAME,
            mixed: SILENT_FRAME,
            peers: BTreeMap::new(),
        })
    }

    /// Replace the voice-activity detector (threshold and hangover from the user's settings).
    pub fn set_voice_activity(&mut self, vad: VoiceActivity) {
        self.vad = vad;
    }

    /// Start receiving from `user` (a fresh jitter buffer and decoder).
    pub fn add_peer(&mut self, user: &str) -> Result<(), MediaError> {
        self.peers.insert(
            user.to_owned(),
            PeerAudio {
                jitter: JitterBuffer::new(JitterConfig::default()),
                decoder: Decoder::new()?,
                out: SILENT_FRAME,
                concealed: CONCEAL_FRAMES,
                fec_recovered: 0,
                plc_frames: 0,
                heard: false,
                level_dbfs: f32::NEG_INFINITY,
            },
        );
        Ok(())
    }

    pub fn remove_peer(&mut self, user: &str) {
        self.peers.remove(user);
    }

    pub fn clear_peers(&mut self) {
        self.peers.clear();
    }

    /// A received RTP packet from `user`.
    pub fn on_packet(
        &mut self,
        user: &str,
        seq: u16,
        timestamp: u32,
        payload: Vec<u8>,
        at: Instant,
    ) {
        if let Some(p) = self.peers.get_mut(user) {
            p.jitter.push(seq, timestamp, payload, at);
        }
    }

    pub fn peer_stats(&self, user: &str) -> Option<PeerAudioStats> {
        self.peers.get(user).map(|p| PeerAudioStats {
            jitter: p.jitter.stats(),
            fec_recovered: p.fec_recovered,
            plc_frames: p.plc_frames,
            level_dbfs: p.level_dbfs,
            speaking: p.level_dbfs >= SPEAKING_DBFS,
        })
    }

    /// One frame of both directions.
    pub fn tick(&mut self, now: Instant, talk: &TalkState) -> Result<Tick, MediaError> {
        let mut tick = self.capture_frame(talk)?;
        for (user, peer) in &mut self.peers {
            if play_one(peer, now)? {
                tick.first_audio.push(user.clone());
            }
        }
        if talk.hears() {
            mix(self.peers.values().map(|p| &p.out[..]), &mut self.mixed);
        } else {
            self.mixed.fill(0.0);
        }
        self.sink.write_frame(&self.mixed)?;
        Ok(tick)
    }

    /// Finish the output (e.g. complete the WAV file).
    pub fn finish(&mut self) -> Result<(), MediaError> {
        Ok(self.sink.finish()?)
    }

    fn capture_frame(&mut self, talk: &TalkState) -> Result<Tick, MediaError> {
        self.source.next_frame(&mut self.capture);
        let level = Level::of(&self.capture);
        let voice = self.vad.update_level(level.rms_dbfs);
        let mic_live = talk.mic_live(voice);
        let mut packet = None;
        if mic_live {
            let encoded = self.encoder.encode(&self.capture)?;
            if !is_dtx_packet(encoded) {
                packet = Some(encoded.to_vec());
            }
        }
        Ok(Tick {
            packet,
            first_audio: Vec::new(),
            mic_dbfs: level.rms_dbfs,
            mic_live,
        })
    }
}

/// Decode (or conceal) one frame of one peer into `peer.out`; true if this was the peer's
/// first real audio.
fn play_one(peer: &mut PeerAudio, now: Instant) -> Result<bool, MediaError> {
    let mut first = false;
    match peer.jitter.pop(now) {
        Playout::Packet(payload) => {
            peer.decoder.decode(&payload, &mut peer.out)?;
            peer.concealed = 0;
            if !peer.heard && Level::of(&peer.out).rms_dbfs > HEARD_DBFS {
                peer.heard = true;
                first = true;
            }
        }
        Playout::Lost {
            fec_from: Some(next),
        } => {
            peer.decoder.decode_fec(&next, &mut peer.out)?;
            peer.concealed = 0;
            peer.fec_recovered += 1;
        }
        Playout::Lost { fec_from: None } | Playout::NotReady | Playout::Empty => {
            if peer.concealed < CONCEAL_FRAMES {
                peer.decoder.conceal(&mut peer.out)?;
                peer.concealed += 1;
                peer.plc_frames += 1;
            } else {
                peer.out.fill(0.0);
            }
        }
    }
    debug_assert_eq!(peer.out.len(), FRAME_SAMPLES);
    peer.level_dbfs = Level::of(&peer.out).rms_dbfs;
    Ok(first)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use super::*;
    use crate::audio::analysis;
    use crate::audio::{FRAME_DURATION, SAMPLE_RATE, Silence, Tone};
    use crate::engine::talk::TalkMode;

    /// A sink that keeps what it is given, shared with the test.
    #[derive(Clone, Default)]
    struct Memory(Arc<Mutex<Vec<f32>>>);

    impl AudioSink for Memory {
        fn write_frame(&mut self, frame: &[f32]) -> Result<(), SinkError> {
            self.0.lock().unwrap().extend_from_slice(frame);
            Ok(())
        }
        fn finish(&mut self) -> Result<(), SinkError> {
            Ok(())
        }
    }

    struct Pair {
        alice: Media,
        bob: Media,
        heard_by_bob: Memory,
        seq: u16,
        now: Instant,
        bob_first_audio: Vec<UserId>,
        alice_packets: usize,
    }

    impl Pair {
        fn new(alice_source: Box<dyn AudioSource + Send>) -> Self {
            let heard_by_bob = Memory::default();
            let alice = Media::new(alice_source, Box::new(Memory::default())).unwrap();
            let mut bob = Media::new(Box::new(Silence), Box::new(heard_by_bob.clone())).unwrap();
            bob.add_peer("alice").unwrap();
            Self {
                alice,
                bob,
                heard_by_bob,
                seq: 0,
                now: Instant::now(),
                bob_first_audio: Vec::new(),
                alice_packets: 0,
            }
        }

        /// Run `frames` frames: alice's packets reach bob at once.
        fn run(&mut self, frames: usize, alice_talk: &TalkState, bob_talk: &TalkState) {
            for _ in 0..frames {
                let t = self.alice.tick(self.now, alice_talk).unwrap();
                if let Some(p) = t.packet {
                    self.alice_packets += 1;
                    let ts = u32::from(self.seq) * 960;
                    self.bob.on_packet("alice", self.seq, ts, p, self.now);
                    self.seq = self.seq.wrapping_add(1);
                }
                let b = self.bob.tick(self.now, bob_talk).unwrap();
                self.bob_first_audio.extend(b.first_audio);
                self.now += FRAME_DURATION;
            }
        }

        /// What bob heard in the last `frames` frames.
        fn heard_tail(&self, frames: usize) -> Vec<f32> {
            let all = self.heard_by_bob.0.lock().unwrap();
            all[all.len() - frames * FRAME_SAMPLES..].to_vec()
        }
    }

    fn tone() -> Box<dyn AudioSource + Send> {
        Box::new(Tone::new(440.0, 0.5))
    }

    #[test]
    fn tone_goes_through_encode_jitter_decode_and_mix() {
        let mut p = Pair::new(tone());
        let open = TalkState::new(TalkMode::Open);
        p.run(100, &open, &open);
        let heard = p.heard_tail(50);
        let f = analysis::dominant_frequency(&heard, SAMPLE_RATE).expect("a tone");
        assert!((f - 440.0).abs() < 5.0, "dominant {f} Hz");
        assert!(analysis::rms(&heard) > 0.1, "real energy");
        assert_eq!(p.bob_first_audio, ["alice"], "first audio reported once");
    }

    #[test]
    fn ptt_released_sends_nothing_and_is_heard_as_silence() {
        let mut p = Pair::new(tone());
        let ptt = TalkState::new(TalkMode::PushToTalk);
        let open = TalkState::new(TalkMode::Open);
        p.run(50, &ptt, &open);
        assert_eq!(p.alice_packets, 0);
        assert!(analysis::rms(&p.heard_tail(50)) < 1e-4);
        assert!(p.bob_first_audio.is_empty());
    }

    #[test]
    fn mute_wins_over_a_held_talk_key() {
        let mut p = Pair::new(tone());
        let mut t = TalkState::new(TalkMode::PushToTalk);
        t.set_talk(true);
        t.set_muted(true);
        p.run(30, &t, &TalkState::new(TalkMode::Open));
        assert_eq!(p.alice_packets, 0);
    }

    #[test]
    fn deafened_listener_hears_nothing_from_anyone() {
        let mut p = Pair::new(tone());
        let open = TalkState::new(TalkMode::Open);
        let mut deaf = TalkState::new(TalkMode::Open);
        deaf.set_deafened(true);
        p.run(50, &open, &deaf);
        assert!(p.alice_packets > 40, "alice still sends");
        assert!(analysis::rms(&p.heard_tail(50)) < 1e-6);
        // A peer that joins while deafened is silent too.
        p.bob.add_peer("carol").unwrap();
        p.bob.on_packet("carol", 0, 0, vec![0xfc, 1, 2, 3], p.now);
        p.run(10, &open, &deaf);
        assert!(analysis::rms(&p.heard_tail(10)) < 1e-6);
        // Undeafen: alice is heard again.
        p.run(50, &open, &open);
        assert!(analysis::rms(&p.heard_tail(25)) > 0.1);
    }

    #[test]
    fn a_silent_source_sends_no_packets_once_dtx_kicks_in() {
        let mut p = Pair::new(Box::new(Silence));
        let open = TalkState::new(TalkMode::Open);
        p.run(200, &open, &open);
        assert!(
            p.alice_packets < 20,
            "{} packets for 4 s of silence",
            p.alice_packets
        );
        assert!(
            p.bob_first_audio.is_empty(),
            "silence is not heard as audio"
        );
        let _ = Duration::ZERO;
    }
}
