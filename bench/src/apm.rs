//! Two audio processing modules side by side, offline (issue 19): `sonora` (the pure-Rust port
//! the product runs, `src/audio/processing.rs`) and, with the `webrtc-apm` feature, the C++
//! module itself through `webrtc-audio-processing` 2.x (what browsers run). Each alone — no
//! leveler, gain, voice detector or quiet gate — on the same microphone signal, built here from
//! speech, noise and a simulated room, in 10 ms chunks as the engine feeds them.
//! `bench/apm-compare.sh` scores what comes out with wideband PESQ.
//!
//! Like every benchmark here it reports what it measured and must never assert a score.

use std::time::{Duration, Instant};

use cromulent::audio::analysis::{room_echo, room_taps, speech_level_dbfs};

/// The modules' unit of work: 10 ms at 48 kHz.
pub const CHUNK: usize = 480;

/// Which module.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Module {
    /// The microphone signal as it is (the "in" figures).
    None,
    /// `sonora` 0.2, configured as the product configures it.
    Sonora,
    /// The C++ module through `webrtc-audio-processing` 2.x (needs the `webrtc-apm` feature).
    Webrtc,
    /// Speex's echo canceller (MDF, what Mumble runs), from the system's libspeexdsp (needs the
    /// `speex` feature): `--echo`, and `--residual-echo` for its preprocessor's residual-echo
    /// suppressor.
    Speex,
    /// Speex's echo canceller (as `speex`), then sonora with the other stages asked for.
    SpeexSonora,
    /// RNNoise (`nnnoiseless`) alone as the noise suppressor.
    Rnnoise,
    /// sonora with the stages asked for but its noise suppressor, then RNNoise.
    SonoraRnnoise,
    /// sonora with the stages asked for, its noise suppressor included, then RNNoise: the
    /// two suppressors in series.
    SonoraThenRnnoise,
    /// AEC3 built from `sonora-aec3`'s blocks, its configuration one of [`Aec3Preset`]'s,
    /// then sonora with the other stages asked for.
    Aec3Blocks,
}

/// Two processors in series.
struct Chain(Box<dyn Processor>, Box<dyn Processor>);

impl Processor for Chain {
    fn render(&mut self, chunk: &[f32; CHUNK]) {
        self.0.render(chunk);
        self.1.render(chunk);
    }
    fn capture(&mut self, chunk: &mut [f32; CHUNK]) {
        self.0.capture(chunk);
        self.1.capture(chunk);
    }
    /// The first's figures (the echo canceller sits first), else the second's.
    fn echo_stats(&self) -> (Option<f64>, Option<i64>) {
        match self.0.echo_stats() {
            (None, None) => self.1.echo_stats(),
            first => first,
        }
    }
}

/// The noise suppressor's level (both modules have the same four).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum NoiseLevel {
    Low,
    Moderate,
    High,
    VeryHigh,
}

/// What runs inside the module.
#[derive(Debug, Clone, Copy)]
pub struct Stages {
    /// AEC3, finding the delay itself.
    pub echo: bool,
    /// The high-pass filter (the product turns it off; the C++ module's noise suppressor
    /// forces it on whatever this says).
    pub high_pass: bool,
    pub noise: Option<NoiseLevel>,
    /// The highest rate the module processes at inside, Hz (32000 or 48000; `None`: the
    /// module's default — sonora 32000, the C++ module 48000).
    pub internal_rate: Option<u32>,
    /// Speex's residual-echo suppressor after its echo canceller (the other modules' echo
    /// cancellers have their suppressor inside).
    pub residual_echo: bool,
    /// The `aec3-blocks` module's configuration.
    pub aec3: Aec3Preset,
}

/// One module instance behind one interface.
pub trait Processor {
    /// What the speaker plays, one chunk.
    fn render(&mut self, chunk: &[f32; CHUNK]);
    /// One microphone chunk, processed in place.
    fn capture(&mut self, chunk: &mut [f32; CHUNK]);
    /// The echo canceller's own ERLE (dB) and delay (ms), if it reports them.
    fn echo_stats(&self) -> (Option<f64>, Option<i64>);
}

pub fn processor(module: Module, stages: Stages) -> anyhow::Result<Box<dyn Processor>> {
    Ok(match module {
        Module::None => Box::new(PassThrough),
        Module::Sonora => Box::new(Sonora::new(stages)),
        #[cfg(feature = "webrtc-apm")]
        Module::Webrtc => Box::new(cpp::Webrtc::new(stages)?),
        #[cfg(not(feature = "webrtc-apm"))]
        Module::Webrtc => anyhow::bail!(
            "built without the webrtc-apm feature (cargo build -p cromulent-bench --features webrtc-apm)"
        ),
        #[cfg(feature = "speex")]
        Module::Speex => Box::new(speex::Speex::new(stages)?),
        #[cfg(feature = "speex")]
        Module::SpeexSonora => Box::new(Chain(
            Box::new(speex::Speex::new(stages)?),
            Box::new(Sonora::new(Stages {
                echo: false,
                residual_echo: false,
                ..stages
            })),
        )),
        Module::Rnnoise => Box::new(Rnnoise::new()),
        Module::SonoraRnnoise => Box::new(Chain(
            Box::new(Sonora::new(Stages {
                noise: None,
                ..stages
            })),
            Box::new(Rnnoise::new()),
        )),
        Module::SonoraThenRnnoise => Box::new(Chain(
            Box::new(Sonora::new(stages)),
            Box::new(Rnnoise::new()),
        )),
        Module::Aec3Blocks => Box::new(Chain(
            Box::new(tuned::Aec3::new(stages.aec3)),
            Box::new(Sonora::new(Stages {
                echo: false,
                ..stages
            })),
        )),
        #[cfg(not(feature = "speex"))]
        Module::SpeexSonora => anyhow::bail!("built without the speex feature"),
        #[cfg(not(feature = "speex"))]
        Module::Speex => anyhow::bail!("built without the speex feature"),
    })
}

struct PassThrough;

impl Processor for PassThrough {
    fn render(&mut self, _: &[f32; CHUNK]) {}
    fn capture(&mut self, _: &mut [f32; CHUNK]) {}
    fn echo_stats(&self) -> (Option<f64>, Option<i64>) {
        (None, None)
    }
}

/// RNNoise as the product runs it ([`cromulent::audio::processing::Rnnoise`]).
struct Rnnoise(cromulent::audio::processing::Rnnoise);

impl Rnnoise {
    fn new() -> Self {
        Self(cromulent::audio::processing::Rnnoise::new())
    }
}

impl Processor for Rnnoise {
    fn render(&mut self, _: &[f32; CHUNK]) {}

    fn capture(&mut self, chunk: &mut [f32; CHUNK]) {
        self.0.process(chunk);
    }

    fn echo_stats(&self) -> (Option<f64>, Option<i64>) {
        (None, None)
    }
}

struct Sonora {
    apm: sonora::AudioProcessing,
    echo: bool,
    input: [f32; CHUNK],
}

impl Sonora {
    fn new(stages: Stages) -> Self {
        use sonora::config::NoiseSuppressionLevel as L;
        use sonora::config::{EchoCanceller, HighPassFilter, NoiseSuppression};
        let config = sonora::Config {
            echo_canceller: stages.echo.then(|| EchoCanceller {
                enforce_high_pass_filtering: false,
                ..EchoCanceller::default()
            }),
            high_pass_filter: stages.high_pass.then(HighPassFilter::default),
            noise_suppression: stages.noise.map(|level| NoiseSuppression {
                level: match level {
                    NoiseLevel::Low => L::Low,
                    NoiseLevel::Moderate => L::Moderate,
                    NoiseLevel::High => L::High,
                    NoiseLevel::VeryHigh => L::VeryHigh,
                },
                ..NoiseSuppression::default()
            }),
            pipeline: sonora::config::Pipeline {
                maximum_internal_processing_rate: match stages.internal_rate {
                    Some(48_000) => sonora::config::MaxProcessingRate::Rate48kHz,
                    Some(_) => sonora::config::MaxProcessingRate::Rate32kHz,
                    None => sonora::config::Pipeline::default().maximum_internal_processing_rate,
                },
                ..sonora::config::Pipeline::default()
            },
            ..sonora::Config::default()
        };
        let stream = sonora::StreamConfig::new(48_000, 1);
        Self {
            apm: sonora::AudioProcessing::builder()
                .config(config)
                .capture_config(stream)
                .render_config(stream)
                .build(),
            echo: stages.echo,
            input: [0.0; CHUNK],
        }
    }
}

impl Processor for Sonora {
    fn render(&mut self, chunk: &[f32; CHUNK]) {
        let mut unused = [0.0; CHUNK];
        // Errors are format errors, impossible with the fixed mono 48 kHz chunk.
        let _ = self.apm.process_render_f32(&[chunk], &mut [&mut unused]);
    }

    fn capture(&mut self, chunk: &mut [f32; CHUNK]) {
        self.input = *chunk;
        if self.echo {
            // As the product: "unknown", AEC3 finds the delay.
            let _ = self.apm.set_stream_delay_ms(0);
        }
        let _ = self
            .apm
            .process_capture_f32(&[&self.input], &mut [&mut chunk[..]]);
    }

    fn echo_stats(&self) -> (Option<f64>, Option<i64>) {
        let s = self.apm.statistics();
        (s.echo_return_loss_enhancement, s.delay_ms.map(i64::from))
    }
}

#[cfg(feature = "webrtc-apm")]
mod cpp {
    use super::{CHUNK, NoiseLevel, Processor, Stages};
    use webrtc_audio_processing::config::{
        Config, EchoCanceller, HighPassFilter, NoiseSuppression, NoiseSuppressionLevel as L,
        Pipeline, PipelineProcessingRate,
    };

    pub struct Webrtc(webrtc_audio_processing::Processor);

    impl Webrtc {
        pub fn new(stages: Stages) -> anyhow::Result<Self> {
            let apm = webrtc_audio_processing::Processor::new(48_000)?;
            apm.set_config(Config {
                echo_canceller: stages.echo.then_some(EchoCanceller::Full {
                    stream_delay_ms: None,
                }),
                high_pass_filter: stages.high_pass.then(HighPassFilter::default),
                noise_suppression: stages.noise.map(|level| NoiseSuppression {
                    level: match level {
                        NoiseLevel::Low => L::Low,
                        NoiseLevel::Moderate => L::Moderate,
                        NoiseLevel::High => L::High,
                        NoiseLevel::VeryHigh => L::VeryHigh,
                    },
                    analyze_linear_aec_output: false,
                }),
                pipeline: Pipeline {
                    maximum_internal_processing_rate: match stages.internal_rate {
                        Some(32_000) => PipelineProcessingRate::Max32000Hz,
                        Some(_) => PipelineProcessingRate::Max48000Hz,
                        None => Pipeline::default().maximum_internal_processing_rate,
                    },
                    ..Pipeline::default()
                },
                ..Config::default()
            });
            Ok(Self(apm))
        }
    }

    impl Processor for Webrtc {
        fn render(&mut self, chunk: &[f32; CHUNK]) {
            // Errors are format errors, impossible with the fixed mono 48 kHz chunk.
            let _ = self.0.analyze_render_frame([&chunk[..]]);
        }

        fn capture(&mut self, chunk: &mut [f32; CHUNK]) {
            let _ = self.0.process_capture_frame([&mut chunk[..]]);
        }

        fn echo_stats(&self) -> (Option<f64>, Option<i64>) {
            let s = self.0.get_stats();
            (s.echo_return_loss_enhancement, s.delay_ms.map(i64::from))
        }
    }
}

#[cfg(feature = "speex")]
#[allow(unsafe_code)] // FFI to the system's libspeexdsp
mod speex {
    use super::{CHUNK, Processor, Stages};
    use std::ffi::{c_int, c_void};

    #[repr(C)]
    struct EchoState {
        _private: [u8; 0],
    }
    #[repr(C)]
    struct PreprocessState {
        _private: [u8; 0],
    }
    #[link(name = "speexdsp")]
    unsafe extern "C" {
        fn speex_echo_state_init(frame_size: c_int, filter_length: c_int) -> *mut EchoState;
        fn speex_echo_state_destroy(st: *mut EchoState);
        fn speex_echo_ctl(st: *mut EchoState, request: c_int, ptr: *mut c_void) -> c_int;
        fn speex_echo_cancellation(
            st: *mut EchoState,
            rec: *const i16,
            play: *const i16,
            out: *mut i16,
        );
        fn speex_preprocess_state_init(frame_size: c_int, rate: c_int) -> *mut PreprocessState;
        fn speex_preprocess_state_destroy(st: *mut PreprocessState);
        fn speex_preprocess_ctl(
            st: *mut PreprocessState,
            request: c_int,
            ptr: *mut c_void,
        ) -> c_int;
        fn speex_preprocess_run(st: *mut PreprocessState, x: *mut i16) -> c_int;
    }

    pub struct Speex {
        echo: *mut EchoState,
        residual: Option<*mut PreprocessState>,
        played: [i16; CHUNK],
    }

    /// The filter's length: the rooms here end 120 ms after the sound (80 ms delay and a
    /// 40 ms tail), the device path's echo 72 ms; Speex's advice is a third of the room's
    /// reverberation time, which a desk does not reach.
    const TAIL_MS: c_int = 200;
    const SPEEX_ECHO_SET_SAMPLING_RATE: c_int = 24;
    const SPEEX_PREPROCESS_SET_DENOISE: c_int = 0;
    const SPEEX_PREPROCESS_SET_AGC: c_int = 2;
    const SPEEX_PREPROCESS_SET_VAD: c_int = 4;
    const SPEEX_PREPROCESS_SET_DEREVERB: c_int = 8;
    const SPEEX_PREPROCESS_SET_NOISE_SUPPRESS: c_int = 18;
    const SPEEX_PREPROCESS_SET_ECHO_STATE: c_int = 24;

    impl Speex {
        pub fn new(stages: Stages) -> anyhow::Result<Self> {
            // SAFETY: constructors and controls on states made here (null checked); each
            // control's pointer is to a live c_int, or the echo state as the API asks.
            unsafe {
                let echo = speex_echo_state_init(CHUNK as c_int, TAIL_MS * 48);
                anyhow::ensure!(!echo.is_null(), "speex_echo_state_init failed");
                let mut rate: c_int = 48_000;
                speex_echo_ctl(echo, SPEEX_ECHO_SET_SAMPLING_RATE, (&raw mut rate).cast());
                let residual = if stages.residual_echo {
                    let pre = speex_preprocess_state_init(CHUNK as c_int, 48_000);
                    anyhow::ensure!(!pre.is_null(), "speex_preprocess_state_init failed");
                    let mut off: c_int = 0;
                    for request in [
                        SPEEX_PREPROCESS_SET_AGC,
                        SPEEX_PREPROCESS_SET_VAD,
                        SPEEX_PREPROCESS_SET_DEREVERB,
                    ] {
                        speex_preprocess_ctl(pre, request, (&raw mut off).cast());
                    }
                    // Its echo gains are applied inside its denoiser: on, with 1 dB of noise
                    // suppression at most, so what it does is the residual echo's.
                    let mut on: c_int = 1;
                    speex_preprocess_ctl(pre, SPEEX_PREPROCESS_SET_DENOISE, (&raw mut on).cast());
                    let mut noise_db: c_int = -1;
                    speex_preprocess_ctl(
                        pre,
                        SPEEX_PREPROCESS_SET_NOISE_SUPPRESS,
                        (&raw mut noise_db).cast(),
                    );
                    speex_preprocess_ctl(pre, SPEEX_PREPROCESS_SET_ECHO_STATE, echo.cast());
                    Some(pre)
                } else {
                    None
                };
                Ok(Self {
                    echo,
                    residual,
                    played: [0; CHUNK],
                })
            }
        }
    }

    fn to_i16(x: f32) -> i16 {
        (x * 32768.0).round().clamp(-32768.0, 32767.0) as i16
    }

    impl Processor for Speex {
        fn render(&mut self, chunk: &[f32; CHUNK]) {
            for (p, &s) in self.played.iter_mut().zip(chunk) {
                *p = to_i16(s);
            }
        }

        fn capture(&mut self, chunk: &mut [f32; CHUNK]) {
            let rec: Vec<i16> = chunk.iter().map(|&s| to_i16(s)).collect();
            let mut out = [0i16; CHUNK];
            // SAFETY: the states are live; each buffer holds the frame size the states were made for.
            unsafe {
                speex_echo_cancellation(
                    self.echo,
                    rec.as_ptr(),
                    self.played.as_ptr(),
                    out.as_mut_ptr(),
                );
                if let Some(pre) = self.residual {
                    speex_preprocess_run(pre, out.as_mut_ptr());
                }
            }
            for (c, &o) in chunk.iter_mut().zip(&out) {
                *c = f32::from(o) / 32768.0;
            }
        }

        fn echo_stats(&self) -> (Option<f64>, Option<i64>) {
            (None, None)
        }
    }

    impl Drop for Speex {
        fn drop(&mut self) {
            // SAFETY: each state was made by its init and is destroyed once.
            unsafe {
                if let Some(pre) = self.residual {
                    speex_preprocess_state_destroy(pre);
                }
                speex_echo_state_destroy(self.echo);
            }
        }
    }
}

/// AEC3 configured otherwise than sonora configures it (sonora's `Config` exposes none of
/// AEC3's own settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Aec3Preset {
    /// AEC3's defaults (what sonora runs).
    Default,
    /// The coarse filter's output never used (in double talk it is the filter whose output
    /// has less energy — because it took some of the near end away).
    NoCoarse,
    /// `no-coarse`, no reverb tail or conservative tail in the residual-echo model, echo
    /// never assumed saturated, the linear filter's ERLE trusted up to 20 dB, and the
    /// suppressor's echo-to-near-end thresholds raised 30×: a transparent suppressor.
    Transparent30,
    /// The same, thresholds raised 100×.
    Transparent100,
    /// The same, 1000×: the suppressor as good as off.
    Transparent1000,
    /// The linear filter's output alone (`no-coarse`; AEC3 gives it for the lowest band
    /// only, 0–8 kHz — all that wideband PESQ hears; the upper bands are left out).
    Linear,
}

/// AEC3 from `sonora-aec3`'s own blocks (the three-band split, framing to 64-sample blocks,
/// the block processor), so that its configuration is open: [`Aec3Preset`].
mod tuned {
    use super::{Aec3Preset, CHUNK, Processor};
    use sonora::three_band_filter_bank::ThreeBandFilterBank;
    use sonora_aec3::block::Block;
    use sonora_aec3::block_framer::BlockFramer;
    use sonora_aec3::block_processor::BlockProcessor;
    use sonora_aec3::config::{EchoCanceller3Config, Tuning};
    use sonora_aec3::frame_blocker::FrameBlocker;

    const BANDS: usize = 3;
    const BAND: usize = CHUNK / BANDS;
    /// AEC3 takes a band's 10 ms in two sub-frames.
    const SUB: usize = BAND / 2;

    fn config(preset: Aec3Preset) -> EchoCanceller3Config {
        let mut config = EchoCanceller3Config::default();
        if preset == Aec3Preset::Default {
            return config;
        }
        config.filter.enable_coarse_filter_output_usage = false;
        config.filter.export_linear_aec_output = preset == Aec3Preset::Linear;
        let scale = match preset {
            Aec3Preset::Transparent30 => 30.0,
            Aec3Preset::Transparent100 => 100.0,
            Aec3Preset::Transparent1000 => 1000.0,
            _ => return config,
        };
        config.ep_strength.default_len = 0.1;
        config.ep_strength.nearend_len = 0.1;
        config.echo_model.model_reverb_in_nonlinear_mode = false;
        config.ep_strength.use_conservative_tail_frequency_response = false;
        config.ep_strength.echo_can_saturate = false;
        config.erle.max_l = 100.0;
        config.erle.max_h = 100.0;
        let raise = |t: &mut Tuning| {
            for m in [&mut t.mask_lf, &mut t.mask_hf] {
                m.enr_transparent *= scale;
                m.enr_suppress *= scale;
            }
        };
        raise(&mut config.suppressor.normal_tuning);
        raise(&mut config.suppressor.nearend_tuning);
        config
    }

    /// One direction's band split and blocking.
    struct Side {
        bank: ThreeBandFilterBank,
        blocker: FrameBlocker,
        bands: [[f32; BAND]; BANDS],
    }

    impl Side {
        fn new() -> Self {
            Self {
                bank: ThreeBandFilterBank::new(),
                blocker: FrameBlocker::new(BANDS, 1),
                bands: [[0.0; BAND]; BANDS],
            }
        }

        /// Splits a chunk into its bands (AEC3 works on 16-bit-scaled floats).
        fn split(&mut self, chunk: &[f32; CHUNK]) {
            let scaled: [f32; CHUNK] = std::array::from_fn(|i| chunk[i] * 32768.0);
            self.bank.analysis(&scaled, &mut self.bands);
        }

        /// Sub-frame `k` of the split chunk into the blocker; one block out.
        fn block_of(&mut self, k: usize, block: &mut Block) {
            let sub: Vec<Vec<&[f32]>> = self
                .bands
                .iter()
                .map(|b| vec![&b[k * SUB..(k + 1) * SUB]])
                .collect();
            self.blocker.insert_sub_frame_and_extract_block(&sub, block);
        }
    }

    pub struct Aec3 {
        processor: BlockProcessor,
        linear_only: bool,
        render: Side,
        capture: Side,
        framer: BlockFramer,
        block: Block,
        linear: Block,
        out: Vec<Vec<Vec<f32>>>,
    }

    impl Aec3 {
        pub fn new(preset: Aec3Preset) -> Self {
            Self {
                processor: BlockProcessor::new(&config(preset), 48_000, 1, 1),
                linear_only: preset == Aec3Preset::Linear,
                render: Side::new(),
                capture: Side::new(),
                framer: BlockFramer::new(BANDS, 1),
                block: Block::new(BANDS, 1),
                linear: Block::new(1, 1),
                out: vec![vec![vec![0.0; SUB]]; BANDS],
            }
        }

        /// The block through the processor (replaced by the linear output when asked).
        fn process(&mut self) {
            let linear = self.linear_only.then_some(&mut self.linear);
            self.processor
                .process_capture(false, false, linear, &mut self.block);
            if self.linear_only {
                self.block
                    .view_mut(0, 0)
                    .copy_from_slice(self.linear.view(0, 0));
                self.block.view_mut(1, 0).fill(0.0);
                self.block.view_mut(2, 0).fill(0.0);
            }
        }
    }

    impl Processor for Aec3 {
        fn render(&mut self, chunk: &[f32; CHUNK]) {
            self.render.split(chunk);
            let mut block = Block::new(BANDS, 1);
            for k in 0..2 {
                self.render.block_of(k, &mut block);
                self.processor.buffer_render(&block);
                if self.render.blocker.is_block_available() {
                    self.render.blocker.extract_block(&mut block);
                    self.processor.buffer_render(&block);
                }
            }
        }

        fn capture(&mut self, chunk: &mut [f32; CHUNK]) {
            self.capture.split(chunk);
            let mut merged = [[0.0f32; BAND]; BANDS];
            for k in 0..2 {
                self.capture.block_of(k, &mut self.block);
                self.process();
                self.framer
                    .insert_block_and_extract_sub_frame(&self.block, &mut self.out);
                for (m, o) in merged.iter_mut().zip(&self.out) {
                    m[k * SUB..(k + 1) * SUB].copy_from_slice(&o[0]);
                }
                if self.capture.blocker.is_block_available() {
                    self.capture.blocker.extract_block(&mut self.block);
                    self.process();
                    self.framer.insert_block(&self.block);
                }
            }
            let mut full = [0.0f32; CHUNK];
            self.capture.bank.synthesis(&merged, &mut full);
            for (c, f) in chunk.iter_mut().zip(full) {
                *c = f / 32768.0;
            }
        }

        fn echo_stats(&self) -> (Option<f64>, Option<i64>) {
            let m = self.processor.get_metrics();
            (
                Some(m.echo_return_loss_enhancement),
                Some(i64::from(m.delay_ms)),
            )
        }
    }
}

/// The microphone of one case: `near` (the speech) from `near_at` on, the far end's voice
/// back through a room (`echo`), and noise; `far` is what the speaker plays throughout.
#[derive(Debug, Clone)]
pub struct Scene {
    pub mic: Vec<f32>,
    pub far: Vec<f32>,
    /// The echo alone, as it reaches the microphone (for ERLE).
    pub echo: Vec<f32>,
    pub near_at: usize,
}

/// The room of the echo case.
#[derive(Debug, Clone, Copy)]
pub struct RoomSpec {
    pub delay_ms: usize,
    /// Direct-path gain (0: the speaker plays but the microphone does not hear it).
    pub gain: f32,
    /// A nonlinear speaker: soft clipping `tanh(k x) / k` (`None`: linear).
    pub drive: Option<f32>,
}

/// Builds a scene: `near` after `near_after_s` seconds and a second of tail, `far` (if any)
/// looped from the start and heard through `room`, `noise` (looped) at `snr_db` against the
/// speech's level (`noise_only`: the speech left out).
pub fn scene(
    near: &[f32],
    near_after_s: f64,
    far: Option<(&[f32], RoomSpec)>,
    noise: Option<(&[f32], f32, bool)>,
) -> Scene {
    let near_at = (near_after_s * 48_000.0) as usize;
    let len = (near_at + near.len() + 48_000).div_ceil(CHUNK) * CHUNK;
    let mut mic = vec![0.0f32; len];
    let mut played = vec![0.0f32; len];
    let mut echo = vec![0.0f32; len];
    if let Some((noise, snr_db, noise_only)) = noise {
        let speech = 10f64.powf(f64::from(speech_level_dbfs(near)) / 10.0);
        let gain = (speech / power(noise) / 10f64.powf(f64::from(snr_db) / 10.0)).sqrt() as f32;
        for (i, s) in mic.iter_mut().enumerate() {
            *s += gain * noise[i % noise.len()];
        }
        if noise_only {
            return Scene {
                mic,
                far: played,
                echo,
                near_at,
            };
        }
    }
    for (i, &s) in near.iter().enumerate() {
        mic[near_at + i] += s;
    }
    if let Some((far, room)) = far {
        for (i, s) in played.iter_mut().enumerate() {
            *s = far[i % far.len()];
        }
        let taps = room_taps(room.delay_ms * 48, room.gain);
        // What the speaker makes of the signal: itself, or a small loudspeaker driven hard
        // (soft clipping: tanh(k x) / k).
        let sounded: Vec<f32> = match room.drive {
            Some(k) => played.iter().map(|&x| (k * x).tanh() / k).collect(),
            None => played.clone(),
        };
        for (i, e) in echo.iter_mut().enumerate() {
            *e = room_echo(&taps, &sounded, i);
        }
        mic.iter_mut().zip(&echo).for_each(|(m, e)| *m += e);
    }
    Scene {
        mic,
        far: played,
        echo,
        near_at,
    }
}

/// What one module made of a scene.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub out: Vec<f32>,
    /// Time spent in the module.
    pub took: Duration,
    /// The module's own echo figures at the end of far-end single talk.
    pub echo_stats: (Option<f64>, Option<i64>),
}

/// Runs the scene through the module, a speaker chunk then a microphone chunk, as the engine
/// does.
pub fn run(processor: &mut dyn Processor, scene: &Scene) -> Outcome {
    let mut out = scene.mic.clone();
    let mut took = Duration::ZERO;
    let mut echo_stats = (None, None);
    for (i, chunk) in out.chunks_exact_mut(CHUNK).enumerate() {
        let played: &[f32; CHUNK] = scene.far[i * CHUNK..(i + 1) * CHUNK]
            .try_into()
            .expect("whole chunks: the scene's length is a multiple of CHUNK");
        let chunk: &mut [f32; CHUNK] = chunk.try_into().expect("chunks_exact");
        let started = Instant::now();
        processor.render(played);
        processor.capture(chunk);
        took += started.elapsed();
        if (i + 1) * CHUNK == scene.near_at {
            echo_stats = processor.echo_stats();
        }
    }
    Outcome {
        out,
        took,
        echo_stats,
    }
}

pub fn power(x: &[f32]) -> f64 {
    x.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / x.len().max(1) as f64
}

/// Echo return loss enhancement per second of far-end single talk (before `near_at`): the
/// echo's power in the microphone against the power of what left the module.
pub fn erle_by_second(scene: &Scene, out: &[f32]) -> Vec<f64> {
    (0..scene.near_at / 48_000)
        .map(|k| {
            let s = k * 48_000..(k + 1) * 48_000;
            10.0 * (power(&scene.echo[s.clone()]) / power(&out[s]).max(1e-15)).log10()
        })
        .collect()
}
