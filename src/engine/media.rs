//! The media pipeline, in 20, 10 or 5 ms frames, each direction on its own pace (see
//! [`super::pace`]): capture → level/voice detection → (if the talk state says the mic is
//! live) Opus encode, once for every peer; and per peer: jitter buffer → decode / FEC /
//! concealment → mix → sink. Synchronous and free of WebRTC: the engine feeds
//! it received packets and takes the packet to send, so it can be tested by wiring two
//! pipelines together.

use std::collections::BTreeMap;
use std::time::Instant;

use cromulent_protocol::UserId;

use crate::audio::processing::{CaptureProcessor, EchoStats, Processing};
use crate::audio::{
    AudioSink, AudioSource, CodecError, Decoder, DeviceChange, Encoder, EncoderConfig, FRAME_MS,
    FRAME_SAMPLES, Frame, FrameSize, JitterBuffer, JitterConfig, JitterStats, Level,
    PacketDuration, Playout, SILENT_FRAME, SinkError, VoiceActivity, Wake, is_dtx_packet, mix,
    packet_duration,
};

use super::MAX_VOLUME_PERCENT;
use super::chain_cost::{ChainCost, timed};
use super::talk::TalkState;

/// After audio stops arriving, conceal this many frames before going silent.
const CONCEAL_FRAMES: u32 = 5;

/// The most a device speaker is served in one poll: a bound on catching up after a stall.
const MAX_DEVICE_FRAMES: usize = crate::engine::pace::MAX_CATCH_UP as usize;
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

/// What one captured frame produced.
#[derive(Debug, Default)]
pub struct Captured {
    /// Opus packet to send to every peer (encoded once), if the mic is live and not silent.
    pub packet: Option<Vec<u8>>,
    /// Capture level of this frame.
    pub mic_dbfs: f32,
    /// Whether the mic is live this frame (the `talking` flag).
    pub mic_live: bool,
}

struct PeerAudio {
    stream: PeerStream,
    /// Decoded samples not played yet (a peer's 20 ms packet feeds four of our 5 ms frames):
    /// room for the longest packet plus our longest frame, [`PCM_CAPACITY`].
    pcm: Box<[f32]>,
    pcm_len: usize,
    /// This frame's output, the first `frame.samples()` samples.
    out: Frame,
    level_dbfs: f32,
    /// Packets dropped before decoding (empty, or not an Opus packet).
    rejected: u64,
}

/// Decoded samples a peer may have waiting: less than one of our frames left over, plus one
/// packet of the longest Opus duration.
const PCM_CAPACITY: usize = PacketDuration::MAX_SAMPLES + FRAME_SAMPLES;

/// One peer's stream in the peer's own frames: jitter buffer, decoder, concealment.
struct PeerStream {
    /// Frames of the peer's packet length (any Opus duration, learned from its packets).
    jitter: JitterBuffer,
    decoder: Decoder,
    /// Peer frames concealed since the last real packet.
    concealed: u32,
    /// Lost frames rebuilt from the next packet's in-band FEC, since the peer was added.
    fec_recovered: u64,
    /// Frames the decoder concealed (PLC), whatever the cause: lost, late, or the buffer
    /// running dry; since the peer was added.
    plc_frames: u64,
    /// Whether any real audio was decoded yet.
    heard: bool,
}

impl PeerAudio {
    fn new() -> Result<Self, MediaError> {
        Ok(Self {
            stream: PeerStream {
                jitter: JitterBuffer::new(JitterConfig::default()),
                decoder: Decoder::new()?,
                concealed: CONCEAL_FRAMES,
                fec_recovered: 0,
                plc_frames: 0,
                heard: false,
            },
            pcm: vec![0.0; PCM_CAPACITY].into_boxed_slice(),
            pcm_len: 0,
            out: SILENT_FRAME,
            level_dbfs: f32::NEG_INFINITY,
            rejected: 0,
        })
    }

    /// Fill `out[..n]` with the peer's next `n` samples, decoding (or concealing) as many of
    /// its frames as that takes; true if this brought the peer's first real audio.
    fn play(&mut self, n: usize, now: Instant) -> bool {
        let mut first = false;
        while self.pcm_len < n {
            let len = self.stream.jitter.frame().samples();
            let start = self.pcm_len;
            // start < n ≤ FRAME_SAMPLES and a packet ≤ MAX_SAMPLES: inside PCM_CAPACITY.
            first |= self
                .stream
                .decode_one(&mut self.pcm[start..start + len], now);
            self.pcm_len += len;
        }
        self.out[..n].copy_from_slice(&self.pcm[..n]);
        self.pcm.copy_within(n..self.pcm_len, 0);
        self.pcm_len -= n;
        self.level_dbfs = Level::of(&self.out[..n]).rms_dbfs;
        first
    }
}

impl PeerStream {
    /// One of the peer's frames into `out`: the packet, its FEC copy, or concealment (then
    /// silence after [`CONCEAL_FRAMES`]). A packet libopus still rejects is concealed, so one
    /// bad packet never costs anyone else's audio. True if this was the first real audio.
    fn decode_one(&mut self, out: &mut [f32], now: Instant) -> bool {
        let decoded = match self.jitter.pop(now) {
            Playout::Packet(payload) => self.decoder.decode(&payload, out).is_ok(),
            Playout::Lost {
                fec_from: Some(next),
            } => {
                let recovered = self.decoder.decode_fec(&next, out).is_ok();
                self.fec_recovered += u64::from(recovered);
                recovered
            }
            Playout::Lost { fec_from: None } | Playout::NotReady | Playout::Empty => false,
        };
        if decoded {
            self.concealed = 0;
            let first = !self.heard && Level::of(out).rms_dbfs > HEARD_DBFS;
            self.heard |= first;
            return first;
        }
        if self.concealed < CONCEAL_FRAMES && self.decoder.conceal(out).is_ok() {
            self.concealed += 1;
            self.plc_frames += 1;
        } else {
            out.fill(0.0);
        }
        false
    }
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
    /// Our frame length: what we capture, encode and play per step.
    frame: FrameSize,
    encoder: Encoder,
    /// Echo cancellation, noise suppression, gain and the speech probability, before the
    /// encoder; its echo reference is what the sink played ([`Media::take_reference`]).
    processor: CaptureProcessor,
    /// What the processor has cost since its stages were last set.
    cost: ChainCost,
    /// Whether the sink says what it played (a device speaker, [`AudioSink::take_played`]):
    /// then that is the echo reference; otherwise every sample it is given is, as given.
    sink_says_played: bool,
    /// Reference samples still to drop because the microphone lost that much of its time
    /// (the engine fell behind and its backlog was cut), or, negative, silence to add because
    /// the engine was given that much the microphone never captured: so the reference and the
    /// microphone keep time ([`AudioSource::take_gaps`]).
    reference_skew: i64,
    vad: VoiceActivity,
    capture: Frame,
    mixed: Frame,
    peers: BTreeMap<UserId, PeerAudio>,
    /// Gains the user set for peers (absent: 1), also for peers not in the call yet.
    volumes: BTreeMap<UserId, f32>,
    /// Samples of a silent frame not written to a device speaker yet ([`Media::play_device`]).
    pending_silence: usize,
    /// Whether the last frame for a device speaker was silence, nobody talking: the next
    /// talk spurt cuts the silence queued ahead of it.
    silent: bool,
}

impl Media {
    pub fn new(
        source: Box<dyn AudioSource + Send>,
        mut sink: Box<dyn AudioSink + Send>,
        frame: FrameSize,
        processing: Processing,
    ) -> Result<Self, MediaError> {
        // What a device played before the call is nobody's echo.
        let sink_says_played = sink.take_played(&mut |_| {});
        Ok(Self {
            source,
            sink,
            frame,
            processor: CaptureProcessor::new(processing),
            cost: ChainCost::default(),
            sink_says_played,
            reference_skew: 0,
            // The least loss until the peers report more (engine::loss_feedback): FEC bits on a
            // clean link cost quality.
            encoder: {
                let mut encoder = Encoder::with_config(EncoderConfig::for_frame(frame))?;
                encoder.set_expected_loss(super::loss_feedback::MIN_EXPECTED_LOSS)?;
                encoder
            },
            // The default hangover is counted in 20 ms frames: the same time in ours.
            vad: VoiceActivity::new(
                VoiceActivity::DEFAULT_THRESHOLD_DBFS,
                VoiceActivity::DEFAULT_HANGOVER_FRAMES * FRAME_MS / frame.ms(),
            ),
            capture: SILENT_FRAME,
            mixed: SILENT_FRAME,
            peers: BTreeMap::new(),
            volumes: BTreeMap::new(),
            pending_silence: 0,
            silent: false,
        })
    }

    pub fn frame(&self) -> FrameSize {
        self.frame
    }

    /// Replace the voice-activity detector (threshold and hangover from the user's settings).
    pub fn set_voice_activity(&mut self, vad: VoiceActivity) {
        self.vad = vad;
    }

    /// Turn capture processing stages on or off.
    pub fn set_processing(&mut self, processing: Processing) {
        if processing != self.processor.stages() {
            self.cost = ChainCost::default();
        }
        self.processor.set_stages(processing);
    }

    pub fn processing(&self) -> Processing {
        self.processor.stages()
    }

    /// The echo canceller's own figures.
    pub fn echo_stats(&self) -> EchoStats {
        self.processor.echo_stats()
    }

    /// What the processing has cost since its stages were last set.
    pub fn chain_cost(&self) -> ChainCost {
        self.cost
    }

    /// Start receiving from `user` (a fresh jitter buffer and decoder).
    pub fn add_peer(&mut self, user: &str) -> Result<(), MediaError> {
        self.peers.insert(user.to_owned(), PeerAudio::new()?);
        Ok(())
    }

    /// Tell the encoder how much loss to expect, in percent (its in-band FEC follows).
    pub fn set_expected_loss(&mut self, percent: u8) -> Result<(), MediaError> {
        Ok(self.encoder.set_expected_loss(percent)?)
    }

    /// Whether the microphone and the speaker changed device since the last call.
    pub fn device_changes(&mut self) -> (Option<DeviceChange>, Option<DeviceChange>) {
        (self.source.device_change(), self.sink.device_change())
    }

    /// Play `user` at `percent` of their level (clamped to [`MAX_VOLUME_PERCENT`]).
    pub fn set_volume(&mut self, user: &str, percent: u16) {
        let percent = percent.min(MAX_VOLUME_PERCENT);
        if percent == 100 {
            self.volumes.remove(user);
        } else {
            self.volumes
                .insert(user.to_owned(), f32::from(percent) / 100.0);
        }
    }

    /// Packets from `user` dropped before decoding (empty, or not an Opus packet).
    pub fn rejected_packets(&self, user: &str) -> u64 {
        self.peers.get(user).map_or(0, |p| p.rejected)
    }

    pub fn remove_peer(&mut self, user: &str) {
        self.peers.remove(user);
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
        let Some(p) = self.peers.get_mut(user) else {
            return;
        };
        // Untrusted: anything that is not an Opus packet (of any duration) is dropped here,
        // before it can reach the decoder or skew the jitter buffer's clock.
        let Ok(size) = packet_duration(&payload) else {
            p.rejected += 1;
            return;
        };
        if size != p.stream.jitter.frame() {
            // The peer's packet length (first packet, or it changed): a buffer on its clock.
            p.stream.jitter = JitterBuffer::new(JitterConfig::for_frame(size));
        }
        p.stream.jitter.push(seq, timestamp, payload, at);
    }

    pub fn peer_stats(&self, user: &str) -> Option<PeerAudioStats> {
        self.peers.get(user).map(|p| PeerAudioStats {
            jitter: p.stream.jitter.stats(),
            fec_recovered: p.stream.fec_recovered,
            plc_frames: p.stream.plc_frames,
            level_dbfs: p.level_dbfs,
            speaking: p.level_dbfs >= SPEAKING_DBFS,
        })
    }

    /// Whole frames the microphone holds, if the source is a device (see
    /// [`AudioSource::samples_ready`]).
    pub fn frames_captured(&mut self) -> Option<usize> {
        let n = self.frame.samples();
        self.source.samples_ready().map(|s| s / n)
    }

    /// Whether the sink is a speaker with a clock of its own (see [`AudioSink::queue`]):
    /// then [`Media::play_device`] serves it.
    pub fn speaker_sets_pace(&mut self) -> bool {
        self.sink.queue().is_some()
    }

    /// Devices with clocks of their own call `wake` when they have work for the engine: a
    /// captured frame is complete, the speaker is about to run dry.
    pub fn set_wake(&mut self, wake: Wake) {
        self.source.set_wake(wake.clone());
        self.sink.set_wake(wake);
    }

    /// Play one frame: every peer's next frame (decoded, recovered or concealed), mixed, to
    /// the sink. Returns the peers whose first audio this was.
    pub fn play(&mut self, now: Instant, talk: &TalkState) -> Result<Vec<UserId>, MediaError> {
        let first_audio = self.mix_next(now, talk);
        let n = self.frame.samples();
        self.play_out(n)?;
        Ok(first_audio)
    }

    /// Serve a speaker with a clock of its own (a sink that says what it holds,
    /// [`SpeakerQueue`](crate::audio::SpeakerQueue)): each frame is written as soon as it may be. A talk spurt's first
    /// frame goes out as soon as its packet is here, behind only the queue's lead: the silence
    /// queued ahead of it is cut (silence is written only as the speaker asks for it, so the
    /// queue never holds much). Each later frame is written as soon as its packets are here
    /// (the engine wakes for packets); one that is late is waited for until the speaker would
    /// run dry, then concealed. Written on an engine tick instead, every frame of a spurt
    /// waited up to a tick, and behind up to a tick more of queued audio. Returns the peers
    /// whose first audio this was.
    pub fn play_device(
        &mut self,
        now: Instant,
        talk: &TalkState,
    ) -> Result<Vec<UserId>, MediaError> {
        let n = self.frame.samples();
        let mut first_audio = Vec::new();
        let Some(queue) = self.sink.queue() else {
            return Ok(first_audio);
        };
        if self.silent && self.peers.values().any(|p| p.stream.jitter.ready(now)) {
            (self.pending_silence, self.silent) = (0, false);
            let lead = queue.lead();
            let cut = self.sink.cut_silence(lead);
            let queued = self.sink.queue().map_or(lead, |q| q.queued);
            let pad = lead.saturating_sub(queued).min(n);
            tracing::trace!(queued = queue.queued, cut, pad, "a talk spurt starts");
            self.play_silence(pad)?;
            first_audio.extend(self.play(now, talk)?);
        }
        let mut frames = 0;
        while let Some(queue) = self.sink.queue() {
            if self.pending_silence > 0 {
                let k = queue.idle_wanted(n).min(self.pending_silence);
                if k == 0 {
                    break;
                }
                self.play_silence(k)?;
                self.pending_silence -= k;
                continue;
            }
            let write = queue.must_write()
                || (queue.idle_wanted(n) > 0 && self.quiet_next(now))
                || (queue.has_room(n) && self.next_frame_here(now));
            if !write || frames == MAX_DEVICE_FRAMES {
                break;
            }
            frames += 1;
            first_audio.extend(self.mix_next(now, talk));
            let nobody = self.peers.values().all(|p| !p.stream.jitter.is_playing());
            if nobody && self.mixed[..n].iter().all(|&x| x == 0.0) {
                (self.pending_silence, self.silent) = (n, true);
            } else {
                self.silent = false;
                self.play_out(n)?;
            }
        }
        Ok(first_audio)
    }

    /// `k` samples of silence to the speaker.
    fn play_silence(&mut self, k: usize) -> Result<(), SinkError> {
        if !self.sink_says_played {
            render(
                &mut self.processor,
                &mut self.cost,
                &mut self.reference_skew,
                &SILENT_FRAME[..k],
            );
        }
        self.sink.write_frame(&SILENT_FRAME[..k])
    }

    /// The mixed frame's first `n` samples to the speaker.
    fn play_out(&mut self, n: usize) -> Result<(), SinkError> {
        if !self.sink_says_played {
            render(
                &mut self.processor,
                &mut self.cost,
                &mut self.reference_skew,
                &self.mixed[..n],
            );
        }
        self.sink.write_frame(&self.mixed[..n])
    }

    /// What the speaker played since the last call, to the echo canceller as its reference
    /// (before the microphone's next frame, which may hold its echo), moved by whatever the
    /// microphone's frames lost or gained of its time.
    fn take_reference(&mut self) {
        let gaps = self.source.take_gaps();
        let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        self.reference_skew += count(gaps.dropped) - count(gaps.padded);
        let (processor, cost, skew) = (
            &mut self.processor,
            &mut self.cost,
            &mut self.reference_skew,
        );
        if *skew < 0 {
            render(processor, cost, skew, &[]);
        }
        self.sink
            .take_played(&mut |played| render(processor, cost, skew, played));
    }

    /// When a peer's talk spurt may start playing (its first packet is here, held for the
    /// jitter buffer's pre-roll): a device speaker is served then.
    pub fn next_start(&self) -> Option<Instant> {
        self.peers
            .values()
            .filter_map(|p| p.stream.jitter.starts_at())
            .min()
    }

    /// Whether our next frame is silence: nobody is talking or about to, nor concealing the
    /// end of a talk spurt. (That end is written only as the speaker needs it, so a new spurt
    /// does not queue behind it.)
    fn quiet_next(&self, now: Instant) -> bool {
        self.peers.values().all(|p| {
            p.pcm_len == 0 && p.stream.concealed >= CONCEAL_FRAMES && !p.stream.jitter.ready(now)
        })
    }

    /// Whether our next frame can be mixed from packets that are here: someone's are, and
    /// no one who is talking is still waited for (their packet late).
    fn next_frame_here(&self, now: Instant) -> bool {
        let n = self.frame.samples();
        let mut someone = false;
        for p in self.peers.values() {
            let jitter = &p.stream.jitter;
            let here = p.pcm_len + jitter.frames_here(now) * jitter.frame().samples();
            if here >= n {
                someone = true;
            } else if jitter.is_playing() {
                return false;
            }
        }
        someone
    }

    /// Every peer's next frame, mixed into `self.mixed`: the peers whose first audio it was.
    fn mix_next(&mut self, now: Instant, talk: &TalkState) -> Vec<UserId> {
        let n = self.frame.samples();
        let mut first_audio = Vec::new();
        for (user, peer) in &mut self.peers {
            if peer.play(n, now) {
                first_audio.push(user.clone());
            }
            // After the level is taken: a peer turned down still shows as speaking.
            if let Some(&gain) = self.volumes.get(user) {
                peer.out[..n].iter_mut().for_each(|s| *s *= gain);
            }
        }
        let mixed = &mut self.mixed[..n];
        if talk.hears() {
            mix(self.peers.values().map(|p| &p.out[..n]), mixed);
        } else {
            mixed.fill(0.0);
        }
        first_audio
    }

    /// Finish the output (e.g. complete the WAV file).
    pub fn finish(&mut self) -> Result<(), MediaError> {
        Ok(self.sink.finish()?)
    }

    /// Capture one frame: level, voice activity, and (if the talk state says the mic is live
    /// and the frame is not silence) the Opus packet to send.
    pub fn capture(&mut self, talk: &TalkState) -> Result<Captured, MediaError> {
        self.take_reference();
        let frame = &mut self.capture[..self.frame.samples()];
        self.source.next_frame(frame);
        let processor = &mut self.processor;
        let speech = timed(&mut self.cost, frame.len(), || processor.capture(frame));
        let level = Level::of(frame);
        let voice = match speech {
            Some(probability) => self.vad.update_probability(probability),
            None => self.vad.update_level(level.rms_dbfs),
        };
        let mic_live = talk.mic_live(voice);
        let mut packet = None;
        if mic_live {
            let encoded = self.encoder.encode(frame)?;
            if !is_dtx_packet(encoded) {
                packet = Some(encoded.to_vec());
            }
        }
        Ok(Captured {
            packet,
            mic_dbfs: level.rms_dbfs,
            mic_live,
        })
    }
}

/// `played` to the echo canceller as its reference, moved by `skew` ([`Media::reference_skew`]):
/// silence first for a negative skew, the first samples left out for a positive one; its cost
/// to `cost`.
fn render(processor: &mut CaptureProcessor, cost: &mut ChainCost, skew: &mut i64, played: &[f32]) {
    timed(cost, 0, || render_skewed(processor, skew, played));
}

fn render_skewed(processor: &mut CaptureProcessor, skew: &mut i64, played: &[f32]) {
    while *skew < 0 {
        let n = usize::try_from(skew.unsigned_abs())
            .unwrap_or(usize::MAX)
            .min(SILENT_FRAME.len());
        processor.render(&SILENT_FRAME[..n]);
        *skew += i64::try_from(n).unwrap_or(i64::MAX);
    }
    let drop = usize::try_from(*skew)
        .unwrap_or(usize::MAX)
        .min(played.len());
    *skew -= i64::try_from(drop).unwrap_or(i64::MAX);
    processor.render(&played[drop..]);
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use super::*;
    use crate::audio::analysis;
    use crate::audio::{SAMPLE_RATE, Silence, Tone};
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
            Self::with_frames(alice_source, FrameSize::Ms20, FrameSize::Ms20)
        }

        fn with_frames(
            alice_source: Box<dyn AudioSource + Send>,
            alice_frame: FrameSize,
            bob_frame: FrameSize,
        ) -> Self {
            let heard_by_bob = Memory::default();
            let alice = Media::new(
                alice_source,
                Box::new(Memory::default()),
                alice_frame,
                Processing::NONE,
            )
            .unwrap();
            let mut bob = Media::new(
                Box::new(Silence),
                Box::new(heard_by_bob.clone()),
                bob_frame,
                Processing::NONE,
            )
            .unwrap();
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

        /// Run `frames` 20 ms periods: alice's packets reach bob at once.
        fn run(&mut self, frames: usize, alice_talk: &TalkState, bob_talk: &TalkState) {
            // In 5 ms steps; each side runs a frame when its frame length divides the time.
            let due =
                |media: &Media, step: usize| step.is_multiple_of(media.frame().ms() as usize / 5);
            for step in 0..frames * 4 {
                if due(&self.alice, step) {
                    let c = self.alice.capture(alice_talk).unwrap();
                    if let Some(p) = c.packet {
                        self.alice_packets += 1;
                        let ts = (step * 240) as u32;
                        self.bob.on_packet("alice", self.seq, ts, p, self.now);
                        self.seq = self.seq.wrapping_add(1);
                    }
                }
                if due(&self.bob, step) {
                    let first = self.bob.play(self.now, bob_talk).unwrap();
                    self.bob_first_audio.extend(first);
                }
                self.now += Duration::from_millis(5);
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

    /// Bob talks to alice, whose speaker is heard by her microphone 100 ms later (a room);
    /// returns bob's own voice as it came back to him over the last two seconds of eight, in
    /// dBFS.
    fn echo_bob_hears(alice_processing: Processing) -> f32 {
        let speech = crate::audio::test_util::speech(8 * 48_000, -20.0);
        let (room_mic, room_speaker) = crate::audio::echo_pair(Duration::from_millis(100));
        let mut alice = Media::new(
            Box::new(room_mic),
            Box::new(room_speaker),
            FrameSize::Ms20,
            alice_processing,
        )
        .unwrap();
        let heard_by_bob = Memory::default();
        let mut bob = Media::new(
            Box::new(crate::audio::WavSource::from_samples(&speech, SAMPLE_RATE)),
            Box::new(heard_by_bob.clone()),
            FrameSize::Ms20,
            Processing::NONE,
        )
        .unwrap();
        alice.add_peer("bob").unwrap();
        bob.add_peer("alice").unwrap();
        let open = TalkState::new(TalkMode::Open);
        let mut now = Instant::now();
        for i in 0..400u16 {
            let ts = u32::from(i) * 960;
            if let Some(p) = bob.capture(&open).unwrap().packet {
                alice.on_packet("bob", i, ts, p, now);
            }
            alice.play(now, &open).unwrap();
            if let Some(p) = alice.capture(&open).unwrap().packet {
                bob.on_packet("alice", i, ts, p, now);
            }
            bob.play(now, &open).unwrap();
            now += Duration::from_millis(20);
        }
        let heard = heard_by_bob.0.lock().unwrap();
        crate::audio::rms_dbfs(&heard[heard.len() - 2 * 48_000..])
    }

    #[test]
    fn what_we_play_is_the_echo_canceller_s_reference() {
        let without = echo_bob_hears(Processing::NONE);
        assert!(
            without > -35.0,
            "the room returns bob's voice: {without:.1} dBFS"
        );
        let with = echo_bob_hears(Processing::ALL);
        assert!(
            without - with >= 25.0,
            "echo cancelled: {without:.1} → {with:.1} dBFS"
        );
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
    fn five_ten_and_twenty_ms_frames_talk_to_each_other_both_ways() {
        use FrameSize::{Ms5, Ms10, Ms20};
        for (alice, bob) in [
            (Ms10, Ms10),
            (Ms10, Ms20),
            (Ms20, Ms10),
            (Ms5, Ms5),
            (Ms5, Ms10),
            (Ms5, Ms20),
            (Ms10, Ms5),
            (Ms20, Ms5),
        ] {
            let mut p = Pair::with_frames(tone(), alice, bob);
            let open = TalkState::new(TalkMode::Open);
            p.run(100, &open, &open);
            let heard = p.heard_tail(50);
            assert_eq!(
                p.heard_by_bob.0.lock().unwrap().len(),
                100 * FRAME_SAMPLES,
                "{alice} → {bob}: bob played 2 s"
            );
            let f = analysis::dominant_frequency(&heard, SAMPLE_RATE).expect("a tone");
            assert!((f - 440.0).abs() < 5.0, "{alice} → {bob}: dominant {f} Hz");
            assert!(
                analysis::tone_power(&heard, SAMPLE_RATE, 440.0) > 0.9,
                "{alice} → {bob}: continuous, no gaps"
            );
            assert_eq!(p.bob_first_audio, ["alice"]);
            let expected_packets = 100 * 20 / alice.ms() as usize;
            assert_eq!(
                p.alice_packets, expected_packets,
                "{alice}: one packet per frame"
            );
        }
    }

    /// A speaker with a clock of its own, driven by the test like `DeviceSink`: 5 ms
    /// callbacks (one per tick), queued silence cut on request; it counts what it played
    /// while dry, and says what it played.
    #[derive(Clone, Default)]
    struct Speaker(Arc<Mutex<SpeakerState>>);

    /// Queued, played, how many of those played while dry, and how many were taken
    /// ([`AudioSink::take_played`]).
    type SpeakerState = (std::collections::VecDeque<f32>, Vec<f32>, usize, usize);

    const SPEAKER_CALLBACK: usize = 240;

    impl Speaker {
        /// One device callback: what it plays (silence where the buffer ran dry). True if
        /// it played and left less than the next callback takes (a device speaker then
        /// wakes the engine).
        fn tick(&self) -> bool {
            let mut s = self.0.lock().unwrap();
            let playing = !s.0.is_empty();
            for _ in 0..SPEAKER_CALLBACK {
                let x = s.0.pop_front();
                s.2 += usize::from(x.is_none());
                s.1.push(x.unwrap_or(0.0));
            }
            playing && s.0.len() < SPEAKER_CALLBACK
        }
        fn played(&self) -> Vec<f32> {
            self.0.lock().unwrap().1.clone()
        }
    }

    impl AudioSink for Speaker {
        fn write_frame(&mut self, frame: &[f32]) -> Result<(), SinkError> {
            self.0.lock().unwrap().0.extend(frame.iter().copied());
            Ok(())
        }
        fn finish(&mut self) -> Result<(), SinkError> {
            Ok(())
        }
        fn queue(&mut self) -> Option<crate::audio::SpeakerQueue> {
            Some(crate::audio::SpeakerQueue {
                queued: self.0.lock().unwrap().0.len(),
                callback: SPEAKER_CALLBACK,
            })
        }
        fn cut_silence(&mut self, keep: usize) -> usize {
            let queued = &mut self.0.lock().unwrap().0;
            if queued.len() <= keep || queued.iter().any(|&x| x != 0.0) {
                return 0;
            }
            queued.drain(..queued.len() - keep).count()
        }
        fn take_played(&mut self, to: &mut dyn FnMut(&[f32])) -> bool {
            let s = &mut *self.0.lock().unwrap();
            to(&s.1[s.3..]);
            s.3 = s.1.len();
            true
        }
    }

    /// Alice sending a tone, and bob hearing her on a device speaker: both on 20 ms frames.
    fn tone_to_a_device_speaker() -> (Media, Media, Speaker) {
        let alice = Media::new(
            tone(),
            Box::new(Memory::default()),
            FrameSize::Ms20,
            Processing::NONE,
        )
        .unwrap();
        let speaker = Speaker::default();
        let mut bob = Media::new(
            Box::new(Silence),
            Box::new(speaker.clone()),
            FrameSize::Ms20,
            Processing::NONE,
        )
        .unwrap();
        bob.add_peer("alice").unwrap();
        (alice, bob, speaker)
    }

    /// Alice talks in spurts of 200 ms with 300 ms pauses (sending nothing in a pause, as a
    /// real sender does), each spurt at a different phase of bob's speaker. Bob's speaker is
    /// a device taking 5 ms at each callback; the engine polls every 5 ms and, if
    /// `on_arrival`, also runs as each packet arrives (as it does for a device speaker), the
    /// `k`-th packet of each spurt `late_ms(k)` ms after its time. Returns each spurt's
    /// delay from its first packet to its first sound, what bob played, and the times his
    /// jitter buffer ran dry (the end of each spurt, and any packet waited for too long).
    fn spurts_on_a_device_speaker(
        on_arrival: bool,
        late_ms: fn(u64) -> u64,
    ) -> (Vec<f64>, Vec<f32>, Vec<u64>, u64) {
        spurts_with_stalls(on_arrival, late_ms, |_| false)
    }

    /// [`spurts_on_a_device_speaker`] with an engine that does nothing while `stalled(ms)`
    /// (the packets that arrive meanwhile are taken in when it runs again, with their times).
    fn spurts_with_stalls(
        on_arrival: bool,
        late_ms: fn(u64) -> u64,
        stalled: fn(u64) -> bool,
    ) -> (Vec<f64>, Vec<f32>, Vec<u64>, u64) {
        let (mut alice, mut bob, speaker) = tone_to_a_device_speaker();
        let open = TalkState::new(TalkMode::Open);
        let t0 = Instant::now();
        let starts: Vec<u64> = (0..8).map(|k| 300 + k * 500 + k * 7 % 20).collect();
        // (arrival ms, seq, rtp timestamp) of every packet, in arrival order.
        let mut arrivals: Vec<(u64, u16, u32)> = Vec::new();
        let mut seq = 0u16;
        for &s in &starts {
            for k in 0..10 {
                let sent = s + 20 * k;
                arrivals.push((sent + late_ms(k), seq, (sent * 48) as u32));
                seq = seq.wrapping_add(1);
            }
        }
        arrivals.sort();
        let mut next = arrivals.iter().peekable();
        for ms in 0..4_500u64 {
            let now = t0 + Duration::from_millis(ms);
            // The device wakes the engine when its next callback would find too little.
            let woken = ms % 5 == 0 && speaker.tick();
            if stalled(ms) {
                continue;
            }
            let mut arrived = false;
            while let Some(&(at, seq, ts)) = next.next_if(|a| a.0 <= ms) {
                let packet = alice
                    .capture(&open)
                    .unwrap()
                    .packet
                    .expect("a tone is sent");
                let at = t0 + Duration::from_millis(at);
                bob.on_packet("alice", seq, ts, packet, at);
                arrived = true;
            }
            if ms % 5 == 2 || (on_arrival && (arrived || woken)) {
                bob.play_device(now, &open).unwrap();
            }
        }
        let played = speaker.played();
        let onset_ms = |from: u64| {
            let from = from as usize * 48;
            played[from..]
                .iter()
                .position(|x| x.abs() > 1e-3)
                .map(|i| (from + i) as f64 / 48.0)
        };
        let delays: Vec<f64> = starts
            .iter()
            .map(|&s| onset_ms(s).expect("every spurt is heard") - s as f64)
            .collect();
        let underruns = bob.peer_stats("alice").unwrap().jitter.underruns;
        (delays, played, starts, underruns)
    }

    /// Each spurt but the first (which also carries the codec's 6.5 ms look-ahead) sounded
    /// within `range` ms of its first packet; the first within its end and the look-ahead.
    fn assert_spurt_delays(delays: &[f64], range: std::ops::RangeInclusive<f64>) {
        assert!(delays[0] <= range.end() + 6.5, "first spurt: {delays:?}");
        for (k, d) in delays.iter().enumerate().skip(1) {
            assert!(
                range.contains(d),
                "spurt {k} started {d:.1} ms after it arrived ({delays:?})"
            );
        }
    }

    /// Milliseconds of a spurt's 180 ms from 5 ms after its onset (a codec's first frame
    /// fades in) in which nothing sounded.
    fn gap_ms(played: &[f32], start: u64, delay: f64) -> usize {
        let at = ((start as f64 + delay + 5.0) * 48.0) as usize;
        played[at..at + 9 * 960]
            .chunks(48)
            .filter(|ms| ms.iter().all(|x| x.abs() < 0.01))
            .count()
    }

    /// Each spurt plays through: 200 ms of tone from its onset, without a gap.
    fn assert_spurts_play_through(played: &[f32], starts: &[u64], delays: &[f64]) {
        for (&s, d) in starts.iter().zip(delays) {
            let at = ((s as f64 + d) * 48.0) as usize;
            assert!(
                analysis::tone_power(&played[at..at + 9 * 960], SAMPLE_RATE, 440.0) > 0.9,
                "a gap in the spurt at {s} ms"
            );
        }
    }

    #[test]
    fn a_talk_spurt_starts_on_a_device_speaker_without_waiting_behind_silence() {
        // Polled only: the poll (≤ 5 ms), the lead (two 5 ms callbacks) and the callback
        // under way; a frame more if the spurt waited behind queued silence (19–33 ms
        // measured so). The first spurt also carries the codec's 6.5 ms look-ahead.
        let (delays, played, starts, underruns) = spurts_on_a_device_speaker(false, |_| 0);
        eprintln!("spurt delays, polled, ms: {delays:.1?}");
        assert_spurt_delays(&delays, 0.0..=20.0);
        assert_spurts_play_through(&played, &starts, &delays);
        assert_eq!(
            underruns,
            starts.len() as u64,
            "dry only at each spurt's end"
        );
    }

    #[test]
    fn a_device_speaker_plays_each_frame_as_its_packet_arrives_not_on_a_tick() {
        // Packets arrive between polls. Written on arrival, each spurt sounds after the lead
        // (10 ms) and the device's callback under way (≤ 5 ms), whatever the poll.
        let (delays, played, starts, underruns) = spurts_on_a_device_speaker(true, |_| 0);
        eprintln!("spurt delays, on arrival, ms: {delays:.1?}");
        assert_spurt_delays(&delays, 10.0..=15.5);
        assert_spurts_play_through(&played, &starts, &delays);
        assert_eq!(
            underruns,
            starts.len() as u64,
            "dry only at each spurt's end"
        );
    }

    #[test]
    fn the_echo_reference_is_what_the_speaker_played() {
        // Every spurt cuts queued silence, and the speaker runs dry at each spurt's end: the
        // reference is neither what was written nor when, but what was played.
        let (mut alice, mut bob, speaker) = tone_to_a_device_speaker();
        let open = TalkState::new(TalkMode::Open);
        let t0 = Instant::now();
        let mut seq = 0u16;
        for ms in 0..3_000u64 {
            let now = t0 + Duration::from_millis(ms);
            let woken = ms % 5 == 0 && speaker.tick();
            // 100 ms spurts every 300 ms, at phases that leave queued silence to cut.
            let sending = ms % 300 < 100 && ms % 20 == 3 + ms / 300 % 5;
            if sending {
                let packet = alice.capture(&open).unwrap().packet.unwrap();
                bob.on_packet("alice", seq, (ms * 48) as u32, packet, now);
                seq += 1;
            }
            if ms % 5 == 2 || sending || woken {
                bob.play_device(now, &open).unwrap();
            }
        }
        bob.capture(&open).unwrap();
        let s = speaker.0.lock().unwrap();
        assert!(s.1.iter().any(|x| x.abs() > 0.1), "the spurts were played");
        assert!(s.2 > 0, "and the speaker ran dry");
        assert_eq!(
            bob.processor.rendered(),
            s.1.len() as u64,
            "the reference is what the speaker played, dry silence included"
        );
    }

    /// A microphone in the room of a [`Speaker`]: it hears what the speaker played, `delay`
    /// later on the speaker's clock, at half its level with a short reverb. At the frames in
    /// `gaps` the engine loses (positive) or gains (negative, silence) that many samples of
    /// its time, as a device microphone's backlog cut or early read, and is told so.
    struct RoomMic {
        speaker: Speaker,
        taps: Vec<(usize, f32)>,
        at: usize,
        frames: usize,
        gaps: Vec<(usize, i64)>,
        told: crate::audio::CaptureGaps,
    }

    impl RoomMic {
        fn new(speaker: &Speaker, gaps: Vec<(usize, i64)>) -> Self {
            Self {
                speaker: speaker.clone(),
                taps: analysis::room_taps(60 * 48, 0.5),
                at: 0,
                frames: 0,
                gaps,
                told: Default::default(),
            }
        }
    }

    impl AudioSource for RoomMic {
        fn next_frame(&mut self, out: &mut [f32]) {
            let mut silence = 0;
            if let Some(&(_, k)) = self.gaps.iter().find(|g| g.0 == self.frames) {
                let n = k.unsigned_abs() as usize;
                if k > 0 {
                    self.at += n;
                    self.told.dropped += n;
                } else {
                    silence = n;
                    self.told.padded += n;
                }
            }
            self.frames += 1;
            let played = &self.speaker.0.lock().unwrap().1;
            out[..silence].fill(0.0);
            for (i, y) in out[silence..].iter_mut().enumerate() {
                *y = analysis::room_echo(&self.taps, played, self.at + i);
            }
            self.at += out.len() - silence;
        }

        fn take_gaps(&mut self) -> crate::audio::CaptureGaps {
            std::mem::take(&mut self.told)
        }
    }

    /// Alice talks in spurts (400 ms, then 300 ms of nothing), each at another phase of
    /// bob's device speaker, so each cuts another length of queued silence; bob's
    /// microphone hears his speaker 60 ms later. Returns the level of alice's voice coming
    /// back from bob's room as bob sends it, over the last 6 s of 10, dBFS.
    fn echo_of_spurts_bob_sends(processing: Processing) -> f32 {
        let sent = echo_bob_sends(processing, |ms| ms % 700 < 400, vec![]);
        crate::audio::rms_dbfs(&sent[200 * FRAME_SAMPLES..])
    }

    /// [`echo_of_spurts_bob_sends`] with alice talking while `talking(ms)` and bob's
    /// microphone losing or gaining time at `gaps` ([`RoomMic`]); returns every frame bob
    /// sent, processed, for 10 s.
    fn echo_bob_sends(
        processing: Processing,
        talking: fn(u64) -> bool,
        gaps: Vec<(usize, i64)>,
    ) -> Vec<f32> {
        let speaker = Speaker::default();
        let mic = RoomMic::new(&speaker, gaps);
        let mut bob = Media::new(
            Box::new(mic),
            Box::new(speaker.clone()),
            FrameSize::Ms20,
            processing,
        )
        .unwrap();
        bob.add_peer("alice").unwrap();
        let speech = crate::audio::test_util::speech(10 * 48_000, -20.0);
        let mut alice = Media::new(
            Box::new(crate::audio::WavSource::from_samples(&speech, SAMPLE_RATE)),
            Box::new(Memory::default()),
            FrameSize::Ms20,
            Processing::NONE,
        )
        .unwrap();
        let open = TalkState::new(TalkMode::Open);
        let t0 = Instant::now();
        let (mut seq, mut sent) = (0u16, Vec::new());
        for ms in 0..10_000u64 {
            let now = t0 + Duration::from_millis(ms);
            let woken = ms % 5 == 0 && speaker.tick();
            let spurt = ms / 700;
            let sending = talking(ms) && ms % 20 == 1 + spurt * 7 % 19;
            if sending && let Some(packet) = alice.capture(&open).unwrap().packet {
                bob.on_packet("alice", seq, (ms * 48) as u32, packet, now);
                seq = seq.wrapping_add(1);
            }
            if ms % 5 == 2 || sending || woken {
                bob.play_device(now, &open).unwrap();
            }
            if ms % 20 == 13 {
                bob.capture(&open).unwrap();
                sent.extend_from_slice(&bob.capture[..FRAME_SAMPLES]);
            }
        }
        sent
    }

    #[test]
    fn echo_stays_cancelled_when_the_microphone_loses_or_gains_time() {
        // At 4 s the engine loses 40 ms of the microphone (its backlog cut), at 6 s it gets
        // 20 ms the microphone never captured: the reference moves with it, so the canceller
        // keeps the echo path. Measured over the second after each.
        let echo_only = Processing {
            echo: true,
            ..Processing::NONE
        };
        let gaps = vec![(200, 1_920), (300, -960)];
        let after = |sent: &[f32]| {
            let second = |frame: usize| &sent[frame * FRAME_SAMPLES..(frame + 50) * FRAME_SAMPLES];
            crate::audio::rms_dbfs(&[second(201), second(301)].concat())
        };
        let run = |processing| after(&echo_bob_sends(processing, |_| true, gaps.clone()));
        assert_echo_cancelled(run(Processing::NONE), run(echo_only), "through the gaps");
    }

    /// The room returned alice's voice (`without` cancellation, dBFS) and the canceller took
    /// 25 dB or more off it (`with`).
    fn assert_echo_cancelled(without: f32, with: f32, what: &str) {
        eprintln!("echo {what}: {without:.1} dBFS, cancelled {with:.1} dBFS");
        assert!(
            without > -35.0,
            "the room returns alice's voice: {without:.1}"
        );
        assert!(
            without - with >= 25.0,
            "echo cancelled {what}: {without:.1} → {with:.1} dBFS"
        );
    }

    #[test]
    fn echo_is_cancelled_across_talk_spurts_that_cut_queued_silence() {
        // The reference must keep time with the speaker through every spurt's cut: were it
        // off by a different length at each spurt, the canceller would lose the echo path at
        // every spurt's start.
        let echo_only = Processing {
            echo: true,
            ..Processing::NONE
        };
        assert_echo_cancelled(
            echo_of_spurts_bob_sends(Processing::NONE),
            echo_of_spurts_bob_sends(echo_only),
            "across spurts",
        );
    }

    #[test]
    fn a_stalled_engine_costs_a_short_gap_and_no_lasting_delay() {
        // The engine stalls for 40 ms in the middle of the third and the sixth spurts: the
        // speaker runs dry for less than that, once, and the next spurts start as early as
        // ever (the gap's delay ends with its spurt).
        let (delays, played, starts, _) = spurts_with_stalls(
            true,
            |_| 0,
            |ms| (1_420..1_460).contains(&ms) || (2_920..2_960).contains(&ms),
        );
        assert_spurt_delays(&delays, 10.0..=15.5);
        for (k, (&s, &d)) in starts.iter().zip(&delays).enumerate() {
            let quiet = gap_ms(&played, s, d);
            // The stall less what was queued (15-20 ms measured).
            let most = if k == 2 || k == 5 { 30 } else { 0 };
            assert!(quiet <= most, "spurt {k}: {quiet} ms of gap");
        }
    }

    #[test]
    fn a_packet_a_little_late_is_still_played_in_its_time() {
        // Every third packet 3 ms late (less than the lead's margin): each is written as it
        // comes, in time, so nothing is concealed mid-spurt.
        let (delays, played, starts, underruns) =
            spurts_on_a_device_speaker(true, |k| if k % 3 == 1 { 3 } else { 0 });
        assert_spurts_play_through(&played, &starts, &delays);
        assert_eq!(
            underruns,
            starts.len() as u64,
            "dry only at each spurt's end"
        );
    }

    #[test]
    fn a_packet_later_than_the_lead_is_concealed_and_the_spurt_plays_on() {
        // The fourth frame of each spurt comes 15 ms late: the speaker would run dry, so the
        // device wakes the engine, which conceals that frame, and the spurt goes on without
        // a gap.
        let (delays, played, starts, underruns) =
            spurts_on_a_device_speaker(true, |k| if k == 3 { 15 } else { 0 });
        assert!(underruns > starts.len() as u64, "concealed mid-spurt");
        for (&s, &d) in starts.iter().zip(&delays) {
            let quiet = gap_ms(&played, s, d);
            assert!(quiet <= 1, "spurt at {s} ms: {quiet} ms of gap");
        }
    }

    #[test]
    fn packets_that_are_not_opus_are_dropped_unheard() {
        let mut bob = Media::new(
            Box::new(Silence),
            Box::new(Memory::default()),
            FrameSize::Ms20,
            Processing::NONE,
        )
        .unwrap();
        bob.add_peer("mallory").unwrap();
        let now = Instant::now();
        // Empty; code 3 with no frames; code 3 claiming 3 × 60 ms (over Opus's 120 ms); junk
        // (TOC 0xff: code 3 claiming 63 frames).
        bob.on_packet("mallory", 0, 0, vec![], now);
        bob.on_packet("mallory", 1, 960, vec![0x03, 0x00], now);
        bob.on_packet("mallory", 2, 1920, vec![0x1b, 0x03, 0, 0, 0], now);
        bob.on_packet("mallory", 3, 2880, vec![0xff, 0xff], now);
        assert_eq!(bob.rejected_packets("mallory"), 4);
        let talk = TalkState::new(TalkMode::Open);
        assert!(bob.play(now, &talk).unwrap().is_empty());
    }

    /// A peer sending `packet_samples`-long packets of an 880 Hz tone straight from libopus
    /// (as a browser or another client may: 2.5 to 60 ms), heard by a client on `ours`-long
    /// frames for three seconds, in 2.5 ms steps: what it played.
    fn hear_foreign_packets(packet_samples: usize, ours: FrameSize) -> Vec<f32> {
        let heard = Memory::default();
        let mut bob = Media::new(
            Box::new(Silence),
            Box::new(heard.clone()),
            ours,
            Processing::NONE,
        )
        .unwrap();
        bob.add_peer("web").unwrap();
        let mut encoder =
            opus::Encoder::new(SAMPLE_RATE, opus::Channels::Mono, opus::Application::Voip).unwrap();
        let mut tone = Tone::new(880.0, 0.5);
        let talk = TalkState::new(TalkMode::Open);
        let (step, t0) = (120, Instant::now());
        let mut seq = 0u16;
        for k in 0..3 * SAMPLE_RATE as usize / step {
            let (at, now) = (k * step, t0 + Duration::from_micros(k as u64 * 2500));
            // A packet is sent once its last sample is captured.
            if (at + step).is_multiple_of(packet_samples) {
                let mut frame = vec![0.0; packet_samples];
                tone.next_frame(&mut frame);
                let packet = encoder.encode_vec_float(&frame, 1275).unwrap();
                let ts = (at + step - packet_samples) as u32;
                bob.on_packet("web", seq, ts, packet, now);
                seq += 1;
            }
            if at.is_multiple_of(ours.samples()) {
                bob.play(now, &talk).unwrap();
            }
        }
        assert_eq!(bob.rejected_packets("web"), 0);
        heard.0.lock().unwrap().clone()
    }

    #[test]
    fn packets_of_any_opus_duration_are_heard_on_any_frame_size() {
        for ours in [FrameSize::Ms5, FrameSize::Ms10, FrameSize::Ms20] {
            for packet_samples in [120, 240, 480, 960, 1920, 2880] {
                let played = hear_foreign_packets(packet_samples, ours);
                assert_eq!(played.len(), 3 * SAMPLE_RATE as usize, "{ours}: 3 s played");
                // The last second: the buffer may trim a frame of start-up slack before it.
                let tail = &played[2 * SAMPLE_RATE as usize..];
                let what = format!("{packet_samples}-sample packets on {ours} frames");
                let f = analysis::dominant_frequency(tail, SAMPLE_RATE).expect("a tone");
                assert!((f - 880.0).abs() < 5.0, "{what}: dominant {f} Hz");
                assert!(
                    analysis::tone_power(tail, SAMPLE_RATE, 880.0) > 0.9,
                    "{what}: continuous, no gaps"
                );
            }
        }
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
    fn a_peer_s_volume_scales_what_we_hear_of_them_alone() {
        let mut p = Pair::new(tone());
        let open = TalkState::new(TalkMode::Open);
        p.run(50, &open, &open);
        let full = analysis::rms(&p.heard_tail(25));
        assert!(full > 0.1, "heard at full level: {full}");
        for (percent, ratio) in [(50, 0.5), (150, 1.5), (0, 0.0), (100, 1.0)] {
            p.bob.set_volume("alice", percent);
            p.run(30, &open, &open);
            let heard = analysis::rms(&p.heard_tail(25));
            assert!(
                (heard - full * ratio).abs() <= 0.02 * full.max(0.1),
                "{percent} %: rms {heard} against {full}"
            );
        }
        // Over the top is the top; a volume set for someone not here waits for them.
        p.bob.set_volume("alice", 900);
        assert_eq!(p.bob.volumes.get("alice"), Some(&2.0));
        p.bob.set_volume("carol", 0);
        assert_eq!(p.bob.volumes.get("carol"), Some(&0.0));
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

    #[test]
    fn the_chain_s_cost_is_counted_on_the_microphone_s_audio_and_restarts_with_its_stages() {
        let mut media = Media::new(
            tone(),
            Box::new(Memory::default()),
            FrameSize::Ms20,
            Processing::ALL,
        )
        .unwrap();
        assert_eq!(media.chain_cost().percent_of_a_core(), None, "no audio yet");
        let open = TalkState::new(TalkMode::Open);
        let now = Instant::now();
        for i in 0..50 {
            media.capture(&open).unwrap();
            media
                .play(now + Duration::from_millis(20 * i), &open)
                .unwrap();
        }
        let all = media
            .chain_cost()
            .percent_of_a_core()
            .expect("a second of audio");
        assert!(all > 0.0, "{all}");
        // Another set of stages is another chain: its cost starts over; the same set is not.
        media.set_processing(Processing::ALL);
        assert!(media.chain_cost().percent_of_a_core().is_some());
        media.set_processing(Processing::NONE);
        assert_eq!(media.chain_cost().percent_of_a_core(), None);
        media.capture(&open).unwrap();
        assert!(media.chain_cost().percent_of_a_core().is_some());
    }
}
