//! Capture processing between the microphone and the encoder: echo cancellation, noise
//! suppression, automatic gain control and a voice-activity decision from a speech
//! probability — what a browser does to its microphone before it sends.
//!
//! WebRTC's audio processing module in pure Rust (`sonora`: AEC3, the noise suppressor, AGC2
//! and AGC2's RNN voice-activity detector), and at the default noise level ([`NoiseLevel`])
//! RNNoise (`nnnoiseless`) behind it; why these and not others is measured in BENCHMARKS.md
//! (issue 19). Sans-IO like the rest of [`crate::audio`]: the engine calls
//! [`CaptureProcessor::render`] with every sample the speaker played (the echo canceller's
//! reference; a device speaker says what it played) and [`CaptureProcessor::capture`] with
//! every frame the microphone gave, on its own thread, never in a device callback.
//!
//! ```text
//! mic ─▶ leveler ─▶ AEC3 ─▶ noise suppression ─▶ AGC2 ─▶ RNNoise ─▶ quiet gate ─▶ encoder
//!      (loud down)   ▲     (WebRTC's)          (quiet up) (strong)  └─▶ speech probability
//! speaker ◀─ mix ────┘ (reference)
//! ```
//!
//! The module works on 10 ms chunks; 10 and 20 ms frames are whole chunks. 5 ms frames are
//! gathered into chunks ([`ShortFrames`]): with any stage on, the processed audio comes out
//! one 5 ms frame late (the low-delay mode pays 5 ms for processing; off, it pays none). Echo
//! cancellation finds the delay between what was played and what the microphone hears by
//! itself (AEC3's delay estimator) and follows it as it drifts, so the device path's buffers
//! and two devices' clocks need no configuration.

use std::fmt;
use std::str::FromStr;

use sonora::config::{
    AdaptiveDigital, EchoCanceller, GainController2, NoiseSuppression, NoiseSuppressionLevel,
};
use sonora::{AudioProcessing, Config, StreamConfig};
use sonora_agc2::vad_wrapper::VoiceActivityDetectorWrapper;

use super::SAMPLE_RATE;
use super::level::rms_dbfs;
use super::rng::Rng;

/// The module's unit of work: 10 ms.
pub const CHUNK_SAMPLES: usize = SAMPLE_RATE as usize / 100;

/// A frame with at least this speech probability counts as speech for voice activity.
pub const SPEECH_PROBABILITY: f32 = 0.5;

/// Where the gain stages put speech, dBFS (RMS over speech): AGC2 lifts quiet speech to it,
/// the leveler brings loud speech down to it.
pub const TARGET_SPEECH_DBFS: f32 = -20.0;

/// AGC2's headroom, dB: measured to put speech from −40 to −20 dBFS at −20 ± 0.5 dBFS.
const AGC_HEADROOM_DB: f32 = 2.0;

/// AGC2's gain before it has heard speech, dB. Its default (15) lifts a fan in an empty
/// room by 15 dB, back over what the suppressor took off, to where the encoder's DTX no
/// longer sets in; from 0 it reaches a quiet voice's gain at 6 dB/s once speech comes.
const AGC_INITIAL_GAIN_DB: f32 = 0.0;

/// One stage of the chain, for toggles (TUI keys, headless commands, `ctl`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Echo cancellation (needs the speaker's signal).
    Echo,
    /// Noise suppression.
    Noise,
    /// Automatic gain control.
    Gain,
    /// Voice activity from the speech probability instead of a level threshold.
    Voice,
}

impl Stage {
    pub const ALL: [Stage; 4] = [Stage::Echo, Stage::Noise, Stage::Gain, Stage::Voice];

    pub fn name(self) -> &'static str {
        match self {
            Stage::Echo => "echo",
            Stage::Noise => "noise",
            Stage::Gain => "gain",
            Stage::Voice => "voice",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown processing stage {0:?} (echo, noise, noise:high, noise:strong, gain or voice)")]
pub struct UnknownStage(pub String);

impl FromStr for Stage {
    type Err = UnknownStage;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Stage::ALL
            .into_iter()
            .find(|stage| stage.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownStage(s.to_owned()))
    }
}

/// How hard the noise stage works.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NoiseLevel {
    /// WebRTC's noise suppressor at High alone: 10 ms less delay than [`NoiseLevel::Strong`].
    High,
    /// WebRTC's noise suppressor at Moderate, then RNNoise (`nnnoiseless`) on what it left:
    /// the default. Through the call, speech in a fan at 5 dB SNR 1.12 → 1.67 PESQ where High
    /// alone reaches 1.42, for 10 ms more delay (BENCHMARKS.md, issue 19).
    #[default]
    Strong,
}

impl NoiseLevel {
    pub const ALL: [NoiseLevel; 2] = [NoiseLevel::High, NoiseLevel::Strong];

    pub fn name(self) -> &'static str {
        match self {
            NoiseLevel::High => "high",
            NoiseLevel::Strong => "strong",
        }
    }

    /// WebRTC's suppressor's own level at this level: Moderate in front of RNNoise measured
    /// better in the fan than High in front of it (1.70 against 1.62 offline).
    fn webrtc_level(self) -> NoiseSuppressionLevel {
        match self {
            NoiseLevel::High => NoiseSuppressionLevel::High,
            NoiseLevel::Strong => NoiseSuppressionLevel::Moderate,
        }
    }

    /// The quiet gate's line at this level, dBFS: what the suppression leaves of a steady
    /// noise sits under it. WebRTC's suppressor leaves a fan's residue around −46 dBFS;
    /// RNNoise behind it leaves −70 and under, and a line of −40 there took the quiet ends of
    /// words too (1.67 → 1.58 PESQ in the fan through the call).
    fn quiet_dbfs(self) -> f32 {
        match self {
            NoiseLevel::High => -40.0,
            NoiseLevel::Strong => -65.0,
        }
    }
}

impl fmt::Display for NoiseLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for NoiseLevel {
    type Err = UnknownStage;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        NoiseLevel::ALL
            .into_iter()
            .find(|level| level.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownStage(format!("noise:{s}")))
    }
}

/// Which stages run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Processing {
    pub echo: bool,
    pub noise: bool,
    pub gain: bool,
    pub voice: bool,
    /// The noise stage's level, while it is on.
    pub noise_level: NoiseLevel,
}

impl Processing {
    /// Everything on: the default on a device microphone.
    pub const ALL: Processing = Processing {
        echo: true,
        noise: true,
        gain: true,
        voice: true,
        noise_level: NoiseLevel::Strong,
    };
    /// Nothing: the default for `tone:`/`wav:` sources, sent as they are.
    pub const NONE: Processing = Processing {
        echo: false,
        noise: false,
        gain: false,
        voice: false,
        noise_level: NoiseLevel::Strong,
    };

    pub fn get(&self, stage: Stage) -> bool {
        match stage {
            Stage::Echo => self.echo,
            Stage::Noise => self.noise,
            Stage::Gain => self.gain,
            Stage::Voice => self.voice,
        }
    }

    pub fn set(&mut self, stage: Stage, on: bool) {
        match stage {
            Stage::Echo => self.echo = on,
            Stage::Noise => self.noise = on,
            Stage::Gain => self.gain = on,
            Stage::Voice => self.voice = on,
        }
    }

    /// The same with `stage` on or off.
    pub fn with(mut self, stage: Stage, on: bool) -> Self {
        self.set(stage, on);
        self
    }

    /// Whether any stage changes the audio (voice only listens).
    fn changes_audio(&self) -> bool {
        self.echo || self.noise || self.gain
    }

    /// What the module's configuration ([`Self::apm_config`]) follows: the stages it runs,
    /// and its suppressor's level.
    fn module_stages(&self) -> (bool, Option<NoiseLevel>, bool) {
        (self.echo, self.noise.then_some(self.noise_level), self.gain)
    }

    fn apm_config(&self) -> Config {
        Config {
            // Without the high-pass filter it forces on: measured, the filter alone took
            // wideband PESQ of clean speech from 4.63 to 3.93 with the canceller on (4.63
            // without it; BENCHMARKS.md, issue 19).
            echo_canceller: self.echo.then(|| EchoCanceller {
                enforce_high_pass_filtering: false,
                ..EchoCanceller::default()
            }),
            // Alone, High: on natural speech in fan noise at 5 dB SNR the best of the four
            // levels, 25 dB off noise alone; VeryHigh is no better there and worse on clean
            // speech. In front of RNNoise, Moderate (BENCHMARKS.md, issue 19).
            noise_suppression: self.noise.then(|| NoiseSuppression {
                level: self.noise_level.webrtc_level(),
                ..NoiseSuppression::default()
            }),
            gain_controller2: self.gain.then(|| GainController2 {
                adaptive_digital: Some(AdaptiveDigital {
                    headroom_db: AGC_HEADROOM_DB,
                    initial_gain_db: AGC_INITIAL_GAIN_DB,
                    ..AdaptiveDigital::default()
                }),
                ..GainController2::default()
            }),
            ..Config::default()
        }
    }
}

impl fmt::Display for Processing {
    /// `echo noise gain voice` with the stages that are off left out (`none` for none).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let on: Vec<&str> = Stage::ALL
            .into_iter()
            .filter(|&s| self.get(s))
            .map(|s| match (s, self.noise_level) {
                (Stage::Noise, NoiseLevel::High) => "noise:high",
                _ => s.name(),
            })
            .collect();
        if on.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&on.join(" "))
        }
    }
}

impl FromStr for Processing {
    type Err = UnknownStage;

    /// `all`, `none`, or stage names separated by commas or spaces (`echo,noise`); the noise
    /// stage may name its level (`noise:high`; `noise` is [`NoiseLevel::Strong`]).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "all" => return Ok(Processing::ALL),
            "none" => return Ok(Processing::NONE),
            _ => {}
        }
        s.split([',', ' '])
            .filter(|w| !w.is_empty())
            .try_fold(Processing::NONE, |p, w| match w.split_once(':') {
                Some((stage, level)) if stage.eq_ignore_ascii_case("noise") => Ok(Processing {
                    noise_level: level.parse()?,
                    ..p.with(Stage::Noise, true)
                }),
                _ => Ok(p.with(w.parse()?, true)),
            })
    }
}

/// What the echo canceller reports about itself.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct EchoStats {
    /// Echo return loss enhancement, dB (how much of the echo it removes).
    pub erle_db: Option<f64>,
    /// The delay it found between the speaker and the microphone, ms.
    pub delay_ms: Option<i32>,
}

/// Brings loud speech down to [`TARGET_SPEECH_DBFS`] before anything else (AGC2 only lifts):
/// tracks the level of speech frames and sets a gain of at most 0 dB, slewed so words are not
/// pumped. A pure state machine, fed one chunk's level and whether it was speech.
#[derive(Debug, Clone)]
pub struct Leveler {
    /// Mean power of speech chunks (`None` until the first speech): power, not dB, so the
    /// estimate is the speech's RMS level like the target.
    speech_power: Option<f32>,
    /// Gain applied now, dB (≤ 0).
    gain_db: f32,
}

impl Leveler {
    /// How fast the speech level estimate follows, per 10 ms of speech (≈ 1 s).
    const SMOOTHING: f32 = 0.01;
    /// Most gain change per 10 ms, dB (6 dB/s, AGC2's own rate).
    const SLEW_DB: f32 = 0.06;
    /// Most attenuation, dB.
    const MAX_CUT_DB: f32 = 40.0;
    /// Speech within this of the target is left alone.
    const DEADBAND_DB: f32 = 1.0;

    pub fn new() -> Self {
        Self {
            speech_power: None,
            gain_db: 0.0,
        }
    }

    /// The gain to apply now, linear.
    pub fn gain(&self) -> f32 {
        10f32.powf(self.gain_db / 20.0)
    }

    /// Feeds one chunk: its input level (before this gain) and whether it was speech.
    pub fn update(&mut self, input_dbfs: f32, speech: bool) {
        if speech {
            let power = 10f32.powf(input_dbfs / 10.0);
            let mean = self.speech_power.get_or_insert(power);
            *mean += Self::SMOOTHING * (power - *mean);
        }
        let Some(mean) = self.speech_power else {
            return;
        };
        let excess = 10.0 * mean.max(1e-12).log10() - TARGET_SPEECH_DBFS;
        let wanted = if excess > Self::DEADBAND_DB {
            -excess.min(Self::MAX_CUT_DB)
        } else {
            0.0
        };
        let step = (wanted - self.gain_db).clamp(-Self::SLEW_DB, Self::SLEW_DB);
        self.gain_db += step;
    }
}

impl Default for Leveler {
    fn default() -> Self {
        Self::new()
    }
}

/// Silence instead of what the noise suppressor leaves of steady noise between words: after
/// [`QuietGate::HOLD`] chunks in a row that are quiet, not speech and not rising above the
/// microphone's noise floor, chunks are zeroed until one is speech, a rise, or clearly over
/// the quiet line ([`QuietGate::REOPEN_DB`]: the residue brushes the line itself). Opus's
/// DTX then stops sending (a fan's residue at −46 dBFS is still "activity" to its own
/// detector: 27 kbit/s for a silent user). The rise opens it on the first chunk of a word,
/// before the detector and the suppressor have caught up; loud sounds that are not speech (a
/// tone, a knock) pass. A pure state machine, fed each chunk's level before and after the
/// processing and the speech detector's decision. Its quiet line depends on the noise level
/// (what the suppression leaves of a steady noise sits under it).
#[derive(Debug, Clone)]
pub struct QuietGate {
    /// At or below this a processed chunk is quiet, dBFS.
    quiet_dbfs: f32,
    quiet: u32,
    /// The microphone's noise floor, dBFS: a running mean of the input's level outside speech
    /// that follows it down faster than up (a noise's dips, not its peaks).
    floor: Option<f32>,
}

impl QuietGate {
    /// Quiet non-speech chunks before the gate closes (300 ms: a pause inside a sentence).
    pub const HOLD: u32 = 30;
    /// An input chunk this far over the noise floor is a rise, dB (brown and pink noise's
    /// 10 ms chunks never reached it over 10 s; 8 % of them were 10 dB over its minimum).
    pub const RISE_DB: f32 = 12.0;
    /// How far over the quiet line a chunk must be to open the gate once it is shut, dB.
    pub const REOPEN_DB: f32 = 6.0;
    /// How much of the distance the floor moves per chunk, down and up.
    const FLOOR_DOWN: f32 = 0.05;
    const FLOOR_UP: f32 = 0.03;

    /// A gate for what the noise stage at `level` leaves.
    pub fn new(level: NoiseLevel) -> Self {
        Self {
            quiet_dbfs: level.quiet_dbfs(),
            quiet: 0,
            floor: None,
        }
    }

    /// Feeds one chunk (its input and output levels); returns whether to silence it.
    pub fn update(&mut self, input_dbfs: f32, output_dbfs: f32, speech: bool) -> bool {
        let floor = self.floor.get_or_insert(input_dbfs);
        let rise = input_dbfs > *floor + Self::RISE_DB;
        if !speech {
            let k = if input_dbfs < *floor {
                Self::FLOOR_DOWN
            } else {
                Self::FLOOR_UP
            };
            *floor += k * (input_dbfs - *floor);
        }
        // Once shut, a chunk must be clearly over the quiet line to open it: the residue of a
        // steady noise brushes the line now and then.
        let line = if self.quiet > Self::HOLD {
            self.quiet_dbfs + Self::REOPEN_DB
        } else {
            self.quiet_dbfs
        };
        if speech || rise || output_dbfs > line {
            self.quiet = 0;
            return false;
        }
        self.quiet = self.quiet.saturating_add(1);
        self.quiet > Self::HOLD
    }
}

/// The chain, owned by the engine's media pipeline.
pub struct CaptureProcessor {
    stages: Processing,
    apm: AudioProcessing,
    vad: VoiceActivityDetectorWrapper,
    leveler: Leveler,
    gate: QuietGate,
    /// Speaker samples not yet a whole chunk.
    render: [f32; CHUNK_SAMPLES],
    render_len: usize,
    /// Samples given as played since the start (whether or not the echo stage is on): the
    /// reference's own clock, which must keep time with the speaker's.
    rendered: u64,
    /// One chunk in, scaled for the detector.
    scratch: [f32; CHUNK_SAMPLES],
    /// Whether the last chunk was speech (the leveler's input for the next).
    last_speech: bool,
    /// Frames shorter than a chunk (5 ms), gathered into chunks.
    short: ShortFrames,
    /// RNNoise, while the noise stage is on at [`NoiseLevel::Strong`].
    rnnoise: Option<Rnnoise>,
    /// Keeps the module's reference filters out of subnormal numbers.
    floor: FloorNoise,
}

/// White noise at −200 dBFS, added to the speaker's reference before the module analyses it.
/// A signal that fades into digital silence leaves recursive filters (band splitting, the
/// canceller's decimator, its matched filter) decaying through subnormal floats, and past the
/// smallest of them, for a coefficient over ½, never to zero; on x86 each operation on one
/// takes a microcode assist. A call's reference is such a signal: the decoder's output for a
/// peer's silence is a few samples at −90..−300 dBFS between runs of zeros. On a call's
/// recorded reference and microphone, replayed offline, this floor took the chain from 2.96 to
/// 1.76 % of a core (BENCHMARKS.md, issue 19). 200 dB under full scale the canceller hears no
/// far end in it.
///
/// Not on the microphone's side: the noise suppressor skips a digitally silent frame by design,
/// and with the floor it would take it for the room's noise instead (clean speech after
/// silence, every stage on: PESQ 3.93 → 3.67 offline). A real microphone is never digitally
/// silent; one that is (muted in hardware) costs the chain its subnormals.
struct FloorNoise(Rng);

impl FloorNoise {
    /// −200 dBFS peak.
    const AMPLITUDE: f32 = 1e-10;

    fn new() -> Self {
        Self(Rng::new(0x5EED))
    }

    fn add(&mut self, x: &mut [f32]) {
        for s in x {
            *s += Self::AMPLITUDE * (2.0 * self.0.unit() as f32 - 1.0);
        }
    }
}

/// RNNoise (`nnnoiseless`) on one 10 ms chunk at a time, behind WebRTC's suppressor at
/// [`NoiseLevel::Strong`]: neither alone reaches +0.5 PESQ on speech in a fan at 5 dB SNR;
/// the pair does, through the call (1.12 → 1.68; BENCHMARKS.md, issue 19). Public for the
/// benchmarks that measure it beside the others (`bench/apm-compare.sh`).
pub struct Rnnoise {
    state: Box<nnnoiseless::DenoiseState<'static>>,
    /// One chunk in, 16-bit-scaled as RNNoise expects.
    input: [f32; CHUNK_SAMPLES],
}

impl Rnnoise {
    pub fn new() -> Self {
        const _: () = assert!(nnnoiseless::FRAME_SIZE == CHUNK_SAMPLES, "10 ms at 48 kHz");
        Self {
            state: nnnoiseless::DenoiseState::new(),
            input: [0.0; CHUNK_SAMPLES],
        }
    }

    /// Denoises one 10 ms chunk in place (10 ms later: RNNoise's own delay).
    pub fn process(&mut self, chunk: &mut [f32]) {
        debug_assert_eq!(chunk.len(), CHUNK_SAMPLES, "one 10 ms chunk");
        for (i, &s) in self.input.iter_mut().zip(chunk.iter()) {
            *i = s * 32768.0;
        }
        self.state.process_frame(chunk, &self.input);
        chunk.iter_mut().for_each(|s| *s /= 32768.0);
    }
}

impl Default for Rnnoise {
    fn default() -> Self {
        Self::new()
    }
}

/// Frames shorter than a chunk (that divide it: 5 ms, 2.5 ms), gathered into whole chunks for
/// the module and handed back, processed, a chunk less a frame later: a 5 ms frame comes out
/// 5 ms late, in order, no sample lost or repeated (the very first ones are silence).
struct ShortFrames {
    /// Captured samples not yet a whole chunk.
    input: [f32; CHUNK_SAMPLES],
    input_len: usize,
    /// Processed samples not handed back yet.
    output: [f32; 2 * CHUNK_SAMPLES],
    output_len: usize,
    /// The speech probability of the last processed chunk.
    probability: Option<f32>,
}

impl ShortFrames {
    fn new() -> Self {
        Self {
            input: [0.0; CHUNK_SAMPLES],
            input_len: 0,
            output: [0.0; 2 * CHUNK_SAMPLES],
            output_len: 0,
            probability: None,
        }
    }

    /// Takes `frame` in; returns the chunk it completes, if it does, to be processed and
    /// given back with [`ShortFrames::processed`].
    fn gather(&mut self, frame: &[f32]) -> Option<[f32; CHUNK_SAMPLES]> {
        let n = frame.len();
        debug_assert!(
            n > 0 && CHUNK_SAMPLES.is_multiple_of(n),
            "frames dividing a chunk"
        );
        self.input[self.input_len..self.input_len + n].copy_from_slice(frame);
        self.input_len += n;
        if self.input_len < CHUNK_SAMPLES {
            return None;
        }
        self.input_len = 0;
        Some(self.input)
    }

    /// A chunk from [`ShortFrames::gather`], processed, with its speech probability.
    fn processed(&mut self, chunk: &[f32; CHUNK_SAMPLES], probability: Option<f32>) {
        // Less than a chunk is waiting when a chunk completes (a frame per frame): fits.
        self.output[self.output_len..self.output_len + CHUNK_SAMPLES].copy_from_slice(chunk);
        self.output_len += CHUNK_SAMPLES;
        self.probability = probability;
    }

    /// Overwrites `frame` with the oldest processed samples (silence at the very start);
    /// returns the last processed chunk's speech probability.
    fn emit(&mut self, frame: &mut [f32]) -> Option<f32> {
        let n = frame.len();
        if self.output_len >= n {
            frame.copy_from_slice(&self.output[..n]);
            self.output.copy_within(n..self.output_len, 0);
            self.output_len -= n;
        } else {
            frame.fill(0.0);
        }
        self.probability
    }
}

impl fmt::Debug for CaptureProcessor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaptureProcessor")
            .field("stages", &self.stages)
            .field("leveler", &self.leveler)
            .finish_non_exhaustive()
    }
}

impl CaptureProcessor {
    pub fn new(stages: Processing) -> Self {
        let stream = StreamConfig::new(SAMPLE_RATE, 1);
        Self {
            stages,
            apm: AudioProcessing::builder()
                .config(stages.apm_config())
                .capture_config(stream)
                .render_config(stream)
                .build(),
            vad: VoiceActivityDetectorWrapper::new(
                sonora_simd::detect_backend(),
                SAMPLE_RATE as i32,
            ),
            leveler: Leveler::new(),
            gate: QuietGate::new(stages.noise_level),
            render: [0.0; CHUNK_SAMPLES],
            render_len: 0,
            rendered: 0,
            scratch: [0.0; CHUNK_SAMPLES],
            last_speech: false,
            short: ShortFrames::new(),
            rnnoise: Self::rnnoise_for(stages, None),
            floor: FloorNoise::new(),
        }
    }

    /// RNNoise for `stages`: the one running kept if it still should run.
    fn rnnoise_for(stages: Processing, running: Option<Rnnoise>) -> Option<Rnnoise> {
        (stages.noise && stages.noise_level == NoiseLevel::Strong)
            .then(|| running.unwrap_or_default())
    }

    pub fn stages(&self) -> Processing {
        self.stages
    }

    /// Turn stages on or off; the ones that stay on keep what they learned.
    pub fn set_stages(&mut self, stages: Processing) {
        if stages == self.stages {
            return;
        }
        if stages.module_stages() != self.stages.module_stages() {
            self.apm.apply_config(stages.apm_config());
        }
        if !stages.gain {
            self.leveler = Leveler::new();
        }
        if !stages.noise || stages.noise_level != self.stages.noise_level {
            self.gate = QuietGate::new(stages.noise_level);
        }
        self.rnnoise = Self::rnnoise_for(stages, self.rnnoise.take());
        self.stages = stages;
    }

    /// Samples given to [`Self::render`] since the start.
    pub fn rendered(&self) -> u64 {
        self.rendered
    }

    /// What the speaker played (in order, any length): the echo canceller's reference.
    pub fn render(&mut self, played: &[f32]) {
        self.rendered += played.len() as u64;
        if !self.stages.echo {
            self.render_len = 0;
            return;
        }
        let mut rest = played;
        while !rest.is_empty() {
            let take = (CHUNK_SAMPLES - self.render_len).min(rest.len());
            self.render[self.render_len..self.render_len + take].copy_from_slice(&rest[..take]);
            self.render_len += take;
            rest = &rest[take..];
            if self.render_len == CHUNK_SAMPLES {
                self.render_len = 0;
                self.floor.add(&mut self.render);
                // Analysis only: the render output is not used. Errors are format errors,
                // impossible with the fixed mono 48 kHz chunk.
                let mut unused = [0.0; CHUNK_SAMPLES];
                let _ = self
                    .apm
                    .process_render_f32(&[&self.render], &mut [&mut unused]);
            }
        }
    }

    /// Process one captured frame in place; returns the frame's speech probability (the
    /// highest of its chunks) if the voice stage is on. A frame of whole 10 ms chunks is
    /// processed as it is; a shorter one (5 ms) is gathered into a chunk ([`ShortFrames`]),
    /// and what it is overwritten with is the audio of a frame earlier, processed — unless
    /// every stage is off: then it is left alone, without that delay.
    pub fn capture(&mut self, frame: &mut [f32]) -> Option<f32> {
        if frame.len() < CHUNK_SAMPLES {
            if !self.stages.changes_audio() && !self.stages.voice {
                return None;
            }
            if let Some(mut chunk) = self.short.gather(frame) {
                let probability = self.capture_chunks(&mut chunk);
                self.short.processed(&chunk, probability);
            }
            return self.short.emit(frame);
        }
        self.capture_chunks(frame)
    }

    /// [`CaptureProcessor::capture`] of whole chunks.
    fn capture_chunks(&mut self, frame: &mut [f32]) -> Option<f32> {
        debug_assert_eq!(frame.len() % CHUNK_SAMPLES, 0, "whole 10 ms chunks");
        let mut probability: Option<f32> = None;
        for chunk in frame.chunks_exact_mut(CHUNK_SAMPLES) {
            let input_dbfs = rms_dbfs(chunk);
            if self.stages.changes_audio() {
                self.process_chunk(chunk);
            }
            if self.stages.voice || self.stages.gain || self.stages.noise {
                // The detector reads 16-bit-scaled floats, like the module's inside.
                for (s, &x) in self.scratch.iter_mut().zip(chunk.iter()) {
                    *s = x * 32768.0;
                }
                let p = self.vad.analyze(&self.scratch);
                self.last_speech = p >= SPEECH_PROBABILITY;
                probability = Some(probability.map_or(p, |q| q.max(p)));
                if self.stages.noise
                    && self
                        .gate
                        .update(input_dbfs, rms_dbfs(chunk), self.last_speech)
                {
                    chunk.fill(0.0);
                }
            }
        }
        if self.stages.voice { probability } else { None }
    }

    fn process_chunk(&mut self, chunk: &mut [f32]) {
        if self.stages.gain {
            let input_dbfs = rms_dbfs(chunk);
            self.leveler.update(input_dbfs, self.last_speech);
            let g = self.leveler.gain();
            if g != 1.0 {
                chunk.iter_mut().for_each(|s| *s *= g);
            }
        }
        self.scratch.copy_from_slice(chunk);
        if self.stages.echo {
            // AEC3 estimates the delay itself; the hint is "unknown".
            let _ = self.apm.set_stream_delay_ms(0);
        }
        // As in `render`: no error is possible with the fixed format.
        let _ = self
            .apm
            .process_capture_f32(&[&self.scratch], &mut [&mut *chunk]);
        if let Some(rnnoise) = &mut self.rnnoise {
            rnnoise.process(chunk);
        }
    }

    /// The echo canceller's own figures (none while it is off).
    pub fn echo_stats(&self) -> EchoStats {
        if !self.stages.echo {
            return EchoStats::default();
        }
        let s = self.apm.statistics();
        EchoStats {
            erle_db: s.echo_return_loss_enhancement,
            delay_ms: s.delay_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::FRAME_SAMPLES;
    use crate::audio::analysis::speech_level_dbfs;
    use crate::audio::test_util::{Rng, speech};

    fn power_db(x: &[f32]) -> f64 {
        let p = x.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / x.len().max(1) as f64;
        10.0 * p.max(1e-20).log10()
    }

    /// Runs `mic` through the chain in 20 ms frames, `far` (if any) played alongside; returns
    /// the output and each frame's speech probability.
    fn run(
        chain: &mut CaptureProcessor,
        mic: &[f32],
        far: Option<&[f32]>,
    ) -> (Vec<f32>, Vec<Option<f32>>) {
        let mut out = mic.to_vec();
        let mut probabilities = Vec::new();
        for (i, frame) in out.chunks_exact_mut(FRAME_SAMPLES).enumerate() {
            if let Some(far) = far {
                chain.render(&far[i * FRAME_SAMPLES..(i + 1) * FRAME_SAMPLES]);
            }
            probabilities.push(chain.capture(frame));
        }
        (out, probabilities)
    }

    #[test]
    fn five_ms_frames_are_processed_in_chunks_one_frame_late() {
        let mic = speech(4 * 48_000, -30.0);
        // Whole chunks (20 ms frames) and 5 ms frames through the same chain: the same
        // audio, 5 ms (240 samples) later.
        let (whole, _) = run(&mut CaptureProcessor::new(Processing::ALL), &mic, None);
        let mut chain = CaptureProcessor::new(Processing::ALL);
        let mut short = mic.clone();
        let mut probabilities = Vec::new();
        for frame in short.chunks_exact_mut(240) {
            probabilities.push(chain.capture(frame));
        }
        assert!(
            short[..240].iter().all(|&x| x == 0.0),
            "the first frame waits"
        );
        assert_eq!(short[240..], whole[..whole.len() - 240]);
        assert!(probabilities[1..].iter().all(Option::is_some));
        // All off: 5 ms frames pass untouched, without the delay.
        let mut off = mic.clone();
        let mut chain = CaptureProcessor::new(Processing::NONE);
        for frame in off.chunks_exact_mut(240) {
            assert_eq!(chain.capture(frame), None);
        }
        assert_eq!(off, mic);
    }

    /// A room: the speaker's sound `delay_ms` later, at −6 dB, with a short reverb tail.
    fn room(far: &[f32], delay_ms: usize) -> Vec<f32> {
        let taps = crate::audio::analysis::room_taps(delay_ms * 48, 0.5);
        (0..far.len())
            .map(|i| crate::audio::analysis::room_echo(&taps, far, i))
            .collect()
    }

    /// Fan-like noise: white noise through a one-pole low-pass, at `dbfs`.
    fn fan(n: usize, dbfs: f32) -> Vec<f32> {
        let mut rng = Rng::new(7);
        let mut y = 0.0f32;
        let mut x: Vec<f32> = (0..n)
            .map(|_| {
                y = 0.95 * y + 0.05 * (rng.unit() as f32 * 2.0 - 1.0);
                y
            })
            .collect();
        let gain = 10f32.powf((dbfs - power_db(&x) as f32) / 20.0);
        x.iter_mut().for_each(|s| *s *= gain);
        x
    }

    #[test]
    fn stages_parse_and_print() {
        assert_eq!("all".parse::<Processing>(), Ok(Processing::ALL));
        assert_eq!("none".parse::<Processing>(), Ok(Processing::NONE));
        let p: Processing = "echo, Noise".parse().unwrap();
        assert_eq!(
            p,
            Processing::NONE
                .with(Stage::Echo, true)
                .with(Stage::Noise, true)
        );
        assert_eq!(p.to_string(), "echo noise");
        assert_eq!(Processing::NONE.to_string(), "none");
        assert_eq!(Processing::ALL.to_string(), "echo noise gain voice");
        assert!("echo,loud".parse::<Processing>().is_err());
        // The noise level: strong unless named.
        assert_eq!(Processing::ALL.noise_level, NoiseLevel::Strong);
        let high: Processing = "echo,noise:high gain".parse().unwrap();
        assert_eq!(high.noise_level, NoiseLevel::High);
        assert!(high.noise && high.echo && high.gain && !high.voice);
        assert_eq!(high.to_string(), "echo noise:high gain");
        assert_eq!(high.to_string().parse::<Processing>(), Ok(high));
        assert_eq!("noise:STRONG".parse::<Processing>(), "noise".parse());
        let err = "noise:loud".parse::<Processing>().unwrap_err();
        assert!(err.to_string().contains("noise:strong"), "{err}");
        assert_eq!("VOICE".parse::<Stage>(), Ok(Stage::Voice));
    }

    #[test]
    fn the_floor_keeps_a_recursive_filter_out_of_subnormal_numbers() {
        // A first-order all-pass section as the module's band splitter runs them (coefficient
        // 0.96), fed a reference that fades out into digital silence, chunk by chunk as
        // `render` gives it to the module: 0.5 s of a tone, 0.5 s fading 12.5 dB per 10 ms,
        // 2 s of zeros.
        let section = |x: &[f32], state: &mut (f32, f32)| -> usize {
            let mut subnormal = 0;
            for &s in x {
                let y = state.0 + 0.96 * (s - state.1);
                *state = (s, y);
                subnormal += usize::from(y.is_subnormal());
            }
            subnormal
        };
        let mut reference = crate::audio::test_util::sine(440.0, 0.3, 48_000, SAMPLE_RATE);
        for (i, s) in reference[24_000..].iter_mut().enumerate() {
            *s *= 10f32.powf(-(i as f32) / 1_600.0);
        }
        reference.resize(3 * 48_000, 0.0);
        let (mut bare, mut floored) = ((0.0, 0.0), (0.0, 0.0));
        let (mut bare_subnormal, mut floored_subnormal) = (0, 0);
        let mut floor = FloorNoise::new();
        for chunk in reference.chunks_exact(CHUNK_SAMPLES) {
            bare_subnormal += section(chunk, &mut bare);
            let mut chunk: [f32; CHUNK_SAMPLES] = chunk.try_into().unwrap();
            floor.add(&mut chunk);
            floored_subnormal += section(&chunk, &mut floored);
        }
        // Without the floor the section never leaves the smallest subnormal once there.
        assert!(bare.1.is_subnormal(), "{:e}", bare.1);
        assert!(bare_subnormal > 48_000, "{bare_subnormal}");
        assert_eq!(floored_subnormal, 0);
        // And the floor peaks 200 dB down: nothing anyone (or the canceller) hears.
        let mut silence = [0.0f32; CHUNK_SAMPLES];
        floor.add(&mut silence);
        assert!(silence.iter().all(|s| s.abs() <= 1e-10) && silence.iter().any(|&s| s != 0.0));
    }

    #[test]
    fn with_nothing_on_the_audio_passes_untouched() {
        let mic = speech(2 * 48_000, -20.0);
        let far = speech(2 * 48_000, -10.0);
        let mut chain = CaptureProcessor::new(Processing::NONE);
        let (out, probabilities) = run(&mut chain, &mic, Some(&far));
        assert_eq!(out, mic, "bit for bit");
        assert!(probabilities.iter().all(Option::is_none));
        // The detector alone listens and changes nothing.
        let mut chain = CaptureProcessor::new(Processing::NONE.with(Stage::Voice, true));
        let (out, probabilities) = run(&mut chain, &mic, None);
        assert_eq!(out, mic);
        assert!(probabilities[1..].iter().all(Option::is_some));
    }

    #[test]
    fn echo_is_cancelled_within_two_seconds_and_only_by_the_echo_stage() {
        let far = speech(10 * 48_000, -20.0);
        let mic = room(&far, 120);
        let erle = |stages: Processing| {
            let mut chain = CaptureProcessor::new(stages);
            let (out, _) = run(&mut chain, &mic, Some(&far));
            let after = 2 * 48_000..mic.len();
            power_db(&mic[after.clone()]) - power_db(&out[after])
        };
        let on = erle(Processing::ALL);
        assert!(on >= 30.0, "echo removed after 2 s: ERLE {on:.1} dB");
        let off = erle(Processing::ALL.with(Stage::Echo, false));
        assert!(off < 10.0, "without the echo stage it stays: {off:.1} dB");
    }

    #[test]
    fn echo_cancellation_follows_a_drifting_delay() {
        // The microphone's clock runs 100 ppm slow against the speaker's: the echo's delay
        // grows by 0.1 ms a second, from 60 ms.
        let far = speech(12 * 48_000, -20.0);
        let direct = room(&far, 60);
        let mic: Vec<f32> = (0..direct.len())
            .map(|i| direct[i - (i as f64 * 1e-4) as usize])
            .collect();
        let mut chain = CaptureProcessor::new(Processing::NONE.with(Stage::Echo, true));
        let (out, _) = run(&mut chain, &mic, Some(&far));
        let late = 8 * 48_000..mic.len();
        let erle = power_db(&mic[late.clone()]) - power_db(&out[late]);
        assert!(erle >= 30.0, "still removed 10 s on: ERLE {erle:.1} dB");
        let delay = chain.echo_stats().delay_ms.expect("a delay estimate");
        assert!((55..=75).contains(&delay), "found the delay: {delay} ms");
    }

    #[test]
    fn noise_alone_is_cut_and_stays_cut_after_the_gain() {
        let noise = fan(4 * 48_000, -40.0);
        let mut chain = CaptureProcessor::new(Processing::NONE.with(Stage::Noise, true));
        let (out, _) = run(&mut chain, &noise, None);
        let settled = 48_000..noise.len();
        let cut = power_db(&noise[settled.clone()]) - power_db(&out[settled]);
        // This brown-ish noise is the suppressor's hard case (18.5 dB here); the 20 dB target
        // is measured on fan noise by bench/speech-quality.sh (25 dB).
        assert!(cut >= 15.0, "noise down {cut:.1} dB");
        // The gain after it does not bring the noise back.
        let mut chain = CaptureProcessor::new(Processing::ALL);
        let (out, _) = run(&mut chain, &noise, None);
        let cut = power_db(&noise[48_000..]) - power_db(&out[48_000..]);
        assert!(cut >= 15.0, "whole chain: noise down {cut:.1} dB");
    }

    /// The lag (samples, 0..`max`) at which `out` best matches `clean`.
    fn lag(clean: &[f32], out: &[f32], max: usize) -> usize {
        let n = clean.len() - max;
        (0..max)
            .max_by(|&a, &b| {
                let dot = |lag: usize| -> f64 {
                    (0..n)
                        .step_by(3)
                        .map(|i| f64::from(clean[i]) * f64::from(out[i + lag]))
                        .sum()
                };
                dot(a).total_cmp(&dot(b))
            })
            .unwrap()
    }

    #[test]
    fn the_strong_level_runs_rnnoise_behind_the_suppressor_and_takes_more_noise_off() {
        let clean = speech(8 * 48_000, -25.0);
        let noise = fan(clean.len(), -35.0);
        let mic: Vec<f32> = clean.iter().zip(&noise).map(|(s, n)| s + n).collect();
        let through = |level: NoiseLevel| {
            let stages = Processing {
                noise_level: level,
                ..Processing::NONE.with(Stage::Noise, true)
            };
            let mut chain = CaptureProcessor::new(stages);
            let (out, _) = run(&mut chain, &mic, None);
            let lag = lag(&clean[48_000..], &out[48_000..], 1_500);
            // What is left where the clean speech is silent (its pauses, aligned; the gate
            // zeroes long ones in both), and the speech's level.
            let levels: Vec<f32> = clean[48_000..clean.len() - lag]
                .chunks_exact(CHUNK_SAMPLES)
                .map(rms_dbfs)
                .collect();
            let (mut pauses, mut words) = (Vec::new(), Vec::new());
            for (i, &l) in levels.iter().enumerate() {
                let at = 48_000 + lag + i * CHUNK_SAMPLES;
                let o = &out[at..at + CHUNK_SAMPLES];
                // A pause: 50 ms of silence either side (no word's tail or onset in it).
                let around = &levels[i.saturating_sub(5)..(i + 6).min(levels.len())];
                if around.iter().all(|&l| l < -70.0) {
                    pauses.extend_from_slice(o);
                } else if l > -35.0 {
                    words.extend_from_slice(o);
                }
            }
            (lag, power_db(&pauses), power_db(&words))
        };
        let (high_lag, high_pauses, high_words) = through(NoiseLevel::High);
        let (strong_lag, strong_pauses, strong_words) = through(NoiseLevel::Strong);
        eprintln!(
            "high: lag {high_lag}, pauses {high_pauses:.1} dB, words {high_words:.1} dB; \
             strong: lag {strong_lag}, pauses {strong_pauses:.1} dB, words {strong_words:.1} dB"
        );
        // RNNoise's own 10 ms, on top of the suppressor's.
        assert!(
            (430..=530).contains(&(strong_lag as i64 - high_lag as i64)),
            "10 ms later: {high_lag} → {strong_lag} samples"
        );
        assert!(
            strong_pauses <= high_pauses - 10.0,
            "the fan between words: {high_pauses:.1} → {strong_pauses:.1} dB"
        );
        assert!(
            (strong_words - high_words).abs() <= 3.0,
            "the words kept: {high_words:.1} → {strong_words:.1} dB"
        );
        // Switched while running: RNNoise comes and goes with the level and with the stage.
        let mut chain = CaptureProcessor::new(Processing::NONE.with(Stage::Noise, true));
        assert!(chain.rnnoise.is_some(), "strong is the default");
        chain.set_stages(Processing {
            noise_level: NoiseLevel::High,
            ..chain.stages()
        });
        assert!(chain.rnnoise.is_none());
        chain.set_stages(Processing::NONE.with(Stage::Noise, true));
        assert!(chain.rnnoise.is_some());
        chain.set_stages(Processing::NONE);
        assert!(chain.rnnoise.is_none());
        // A level switched before any audio runs as a chain built at that level, bit for bit
        // (WebRTC's suppressor's own level included), either way.
        for (from, to) in [
            (NoiseLevel::Strong, NoiseLevel::High),
            (NoiseLevel::High, NoiseLevel::Strong),
        ] {
            let at = |level| Processing {
                noise_level: level,
                ..Processing::ALL
            };
            let mut switched = CaptureProcessor::new(at(from));
            switched.set_stages(at(to));
            let (a, _) = run(&mut switched, &mic[..2 * 48_000], None);
            let (b, _) = run(&mut CaptureProcessor::new(at(to)), &mic[..2 * 48_000], None);
            assert!(a == b, "{from:?} → {to:?} runs as {to:?}");
        }
    }

    #[test]
    fn gain_brings_quiet_and_loud_speech_to_the_target() {
        for level in [-40.0, -6.0] {
            let mic = speech(16 * 48_000, level);
            let mut chain = CaptureProcessor::new(Processing::NONE.with(Stage::Gain, true));
            let (out, _) = run(&mut chain, &mic, None);
            let out_level = speech_level_dbfs(&out[10 * 48_000..]);
            assert!(
                (out_level - TARGET_SPEECH_DBFS).abs() <= 3.0,
                "speech at {level} dBFS leaves at {out_level:.1} dBFS"
            );
        }
        let mic = speech(4 * 48_000, -40.0);
        let mut chain = CaptureProcessor::new(Processing::NONE);
        let (out, _) = run(&mut chain, &mic, None);
        assert!(
            (speech_level_dbfs(&out) + 40.0).abs() < 0.5,
            "off: untouched"
        );
    }

    #[test]
    fn speech_probability_tells_speech_from_noise() {
        let voice = Processing::NONE.with(Stage::Voice, true);
        let mic = speech(8 * 48_000, -25.0);
        let (_, p) = run(&mut CaptureProcessor::new(voice), &mic, None);
        let loud: Vec<f32> = mic
            .chunks_exact(FRAME_SAMPLES)
            .zip(&p)
            .filter(|(f, _)| power_db(f) > -35.0)
            .map(|(_, p)| p.unwrap())
            .collect();
        let speech_frames = loud.iter().filter(|&&p| p >= SPEECH_PROBABILITY).count();
        assert!(
            speech_frames * 10 >= loud.len() * 7,
            "{speech_frames} of {} loud speech frames called speech",
            loud.len()
        );
        // Fan noise louder than that speech is not speech.
        let noise = fan(8 * 48_000, -20.0);
        let (_, p) = run(&mut CaptureProcessor::new(voice), &noise, None);
        let called = p
            .iter()
            .filter(|p| p.unwrap() >= SPEECH_PROBABILITY)
            .count();
        assert!(
            called * 20 <= p.len(),
            "{called} of {} noise frames called speech",
            p.len()
        );
    }

    #[test]
    fn stages_turn_off_and_on_while_running() {
        let far = speech(6 * 48_000, -20.0);
        let mic = room(&far, 80);
        let mut chain = CaptureProcessor::new(Processing::ALL);
        let third = 2 * 48_000;
        let (a, _) = run(&mut chain, &mic[..third], Some(&far[..third]));
        chain.set_stages(Processing::NONE);
        assert_eq!(chain.stages(), Processing::NONE);
        let (b, p) = run(
            &mut chain,
            &mic[third..2 * third],
            Some(&far[third..2 * third]),
        );
        assert_eq!(b, mic[third..2 * third], "off: untouched");
        assert!(p.iter().all(Option::is_none));
        chain.set_stages(Processing::ALL);
        let (c, _) = run(&mut chain, &mic[2 * third..], Some(&far[2 * third..]));
        assert!(power_db(&mic[..third]) - power_db(&a[third / 2..]) > 20.0);
        let erle = power_db(&mic[2 * third + 48_000..]) - power_db(&c[48_000..]);
        assert!(erle >= 30.0, "on again: ERLE {erle:.1} dB");
    }

    #[test]
    fn the_gate_silences_quiet_noise_between_words_but_never_speech_or_loud_sound() {
        let mut g = QuietGate::new(NoiseLevel::High);
        // A fan at −30 dBFS, left at −50 by the suppressor.
        for _ in 0..QuietGate::HOLD {
            assert!(!g.update(-30.0, -50.0, false), "held open for a pause");
        }
        assert!(g.update(-30.0, -50.0, false), "then closed");
        assert!(!g.update(-30.0, -50.0, true), "speech opens it at once");
        for _ in 0..=QuietGate::HOLD {
            g.update(-30.0, -50.0, false);
        }
        assert!(g.update(-30.0, -50.0, false));
        assert!(!g.update(-30.0, -20.0, false), "so does a loud sound");
        for _ in 0..=QuietGate::HOLD {
            g.update(-30.0, -50.0, false);
        }
        assert!(
            !g.update(-15.0, -45.0, false),
            "and a rise over the floor, before anything has caught up"
        );
        // In the chain: a fan alone ends in digital silence; speech over it does not.
        let noise = fan(4 * 48_000, -30.0);
        let (out, _) = run(&mut CaptureProcessor::new(Processing::ALL), &noise, None);
        assert!(
            out[48_000..].iter().all(|&s| s == 0.0),
            "silence for the encoder"
        );
        let speech = speech(8 * 48_000, -20.0);
        let (out, _) = run(&mut CaptureProcessor::new(Processing::ALL), &speech, None);
        let loud_zeroed = speech
            .chunks_exact(CHUNK_SAMPLES)
            .zip(out.chunks_exact(CHUNK_SAMPLES))
            .filter(|(i, o)| power_db(i) > -35.0 && o.iter().all(|&s| s == 0.0))
            .count();
        assert_eq!(loud_zeroed, 0, "no spoken chunk silenced");
    }

    #[test]
    fn the_gate_s_line_follows_the_noise_level() {
        // What the high level leaves of a fan (−50 dBFS) is quiet to its gate; at strong
        // RNNoise leaves far less, and −50 is the quiet end of a word: it passes.
        let (mut high, mut strong) = (
            QuietGate::new(NoiseLevel::High),
            QuietGate::new(NoiseLevel::Strong),
        );
        for _ in 0..QuietGate::HOLD {
            high.update(-30.0, -50.0, false);
            strong.update(-30.0, -50.0, false);
        }
        assert!(high.update(-30.0, -50.0, false), "high: shut");
        assert!(!strong.update(-30.0, -50.0, false), "strong: open");
        for _ in 0..QuietGate::HOLD {
            strong.update(-30.0, -75.0, false);
        }
        assert!(
            strong.update(-30.0, -75.0, false),
            "strong: shut on its own residue"
        );
        // The chain's gate follows a level switched while running.
        let mut chain = CaptureProcessor::new(Processing::NONE.with(Stage::Noise, true));
        assert_eq!(chain.gate.quiet_dbfs, NoiseLevel::Strong.quiet_dbfs());
        chain.set_stages(Processing {
            noise_level: NoiseLevel::High,
            ..chain.stages()
        });
        assert_eq!(chain.gate.quiet_dbfs, NoiseLevel::High.quiet_dbfs());
    }

    #[test]
    fn a_shut_gate_stays_shut_while_the_residue_brushes_the_quiet_line() {
        let mut g = QuietGate::new(NoiseLevel::High);
        for _ in 0..=QuietGate::HOLD {
            g.update(-30.0, -50.0, false);
        }
        assert!(g.update(-30.0, -50.0, false), "shut");
        // The suppressor's residue of a steady fan now and then just over −40 dBFS.
        assert!(g.update(-30.0, -38.0, false), "stays shut");
        assert!(g.update(-30.0, -50.0, false));
        // Clearly over the line, or speech, opens it.
        assert!(
            !g.update(-30.0, -33.0, false),
            "a sound clearly over the line"
        );
        // While open, the line is the quiet line itself: it stays open over it.
        for _ in 0..=QuietGate::HOLD {
            g.update(-30.0, -50.0, false);
        }
        assert!(g.update(-30.0, -50.0, false), "shut again");
        assert!(!g.update(-30.0, -50.0, true), "speech");
        assert!(
            !g.update(-30.0, -38.0, false),
            "open: over the quiet line keeps it open"
        );
    }

    #[test]
    fn the_leveler_brings_loud_speech_down_at_a_bounded_rate_and_leaves_the_rest() {
        let mut l = Leveler::new();
        for _ in 0..100 {
            l.update(-6.0, false);
        }
        assert_eq!(l.gain(), 1.0, "no speech yet: no change");
        let mut previous = 0.0f32;
        for _ in 0..1000 {
            l.update(-6.0, true);
            let db = 20.0 * l.gain().log10();
            assert!(previous - db <= Leveler::SLEW_DB + 1e-4, "slewed");
            previous = db;
        }
        // The estimate follows the input (before the gain): −6 dBFS wants −14 dB.
        assert!((previous + 14.0).abs() < 0.2, "settled at {previous} dB");
        let mut quiet = Leveler::new();
        for _ in 0..1000 {
            quiet.update(-35.0, true);
        }
        assert_eq!(quiet.gain(), 1.0, "quiet speech is AGC2's to lift");
    }
}
