//! The client's audio building blocks: sources, sinks, Opus, the jitter buffer, mixing, levels
//! and offline analysis — all 48 kHz mono, 20 ms frames (see [`frame`]).
//!
//! Everything here is sans-IO and single-threaded: no devices, no sockets, no clocks, no threads
//! of its own. The voice engine owns time and calls in once per frame:
//!
//! ```text
//! send:    AudioSource ─▶ Level/VoiceActivity ─▶ Encoder ─▶ (skip if is_dtx_packet) ─▶ RTP
//! receive: RTP ─▶ JitterBuffer::push … JitterBuffer::pop ─▶ Decoder (decode / decode_fec /
//!          conceal) ─▶ mix ─▶ AudioSink
//! ```
//!
//! Per-frame paths (`next_frame`, `encode`, `decode*`, `pop`, `mix`, levels) reuse caller or
//! internal buffers and do not allocate beyond moving packet payloads; file reading,
//! resampling and [`analysis`] run once, off the frame path.
//!
//! The one exception is [`device`], the edge to real sound cards (cpal, feature `devices`): its
//! callbacks run on cpal's thread and meet the engine's frames in a lock-free ring. [`echo`]
//! pairs a source with a sink through such a ring for the demo's echo bot.
//!
//! Code outside [`device`] must never open a device or a socket, read a clock or start a
//! thread: the engine owns time and calls in.

pub mod analysis;
mod codec;
pub mod device;
pub mod echo;
mod fft;
pub mod frame;
mod jitter;
mod level;
mod mixer;
pub mod processing;
mod resample;
mod rng;
mod sink;
mod source;
mod spec;
mod wav;

#[cfg(test)]
pub(crate) mod test_util;

pub use codec::{
    Application, CodecError, Decoder, Encoder, EncoderConfig, PacketDuration, is_dtx_packet,
    packet_duration,
};
pub use device::{
    DeviceChange, DeviceError, DeviceInfo, DeviceSink, DeviceSource, SpeakerQueue, Wake,
};
pub use echo::{EchoSink, EchoSource, echo_pair};
pub use frame::{
    FRAME_DURATION, FRAME_MS, FRAME_SAMPLES, Frame, FrameSize, SAMPLE_RATE, SILENT_FRAME,
};
pub use jitter::{JitterBuffer, JitterConfig, JitterStats, Playout, PushOutcome};
pub use level::{FLOOR_DBFS, Level, VoiceActivity, amplitude_to_dbfs, peak_dbfs, rms_dbfs};
pub use mixer::{SOFT_CLIP_KNEE, mix, soft_clip};
pub use resample::resample_periodic;
pub use sink::{AudioSink, NullSink, SinkError, SinkSpec, WavSink};
pub use source::{AudioSource, CaptureGaps, Silence, SourceError, SourceSpec, Tone, WavSource};
pub use spec::SpecError;
pub use wav::{MAX_WAV_SECONDS, WavAudio, WavReadError, read_wav_mono};
