//! The echo bot's audio: an [`EchoSink`] that records what the bot hears and an [`EchoSource`]
//! that sends it back a fixed delay later — a mic test, like Mumble's and Discord's.
//!
//! The two share a bounded delay line (the lock-free [`super::device::ring`], pre-filled with
//! the delay's worth of silence). The engine pulls one frame from the source and then pushes
//! one frame into the sink every 20 ms, so the line's length stays at the delay and the bot
//! sends back exactly what it heard, `delay` later. It can never echo itself: the sink is fed
//! only the mix of the *other* peers' audio (a mesh never returns your own stream), and the
//! line holds at most the delay plus a few frames, so nothing lingers.

use std::time::Duration;

use super::device::ring::{self, Consumer, Producer};
use super::frame::{FRAME_SAMPLES, SAMPLE_RATE};
use super::{AudioSink, AudioSource, SinkError};

/// How late the echo comes back in the demo.
pub const DEFAULT_ECHO_DELAY: Duration = Duration::from_secs(1);

/// Plays back what the paired sink heard, `delay` later.
pub struct EchoSource {
    line: Consumer,
}

/// Feeds the paired source.
pub struct EchoSink {
    line: Producer,
}

/// A source/sink pair sharing one delay line (rounded to whole 20 ms frames).
pub fn echo_pair(delay: Duration) -> (EchoSource, EchoSink) {
    let frames = (delay.as_millis() / 20) as usize;
    let delay_samples = frames * FRAME_SAMPLES;
    // Slack for a frame pushed before the matching pull (order within a tick may vary).
    let (mut line, out) = ring::ring(delay_samples + 4 * FRAME_SAMPLES);
    let silence = [0.0; FRAME_SAMPLES];
    for _ in 0..frames {
        line.push_slice(&silence);
    }
    (EchoSource { line: out }, EchoSink { line })
}

impl AudioSource for EchoSource {
    fn next_frame(&mut self, out: &mut [f32]) {
        let n = self.line.pop_slice(out);
        out[n..].fill(0.0);
    }
}

impl AudioSink for EchoSink {
    fn write_frame(&mut self, frame: &[f32]) -> Result<(), SinkError> {
        // Full only if the source stopped being pulled: then the newest audio is dropped.
        self.line.push_slice(frame);
        Ok(())
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

/// How long a delay line of `samples` lasts, for logs.
pub fn samples_to_duration(samples: usize) -> Duration {
    Duration::from_secs_f64(samples as f64 / f64::from(SAMPLE_RATE))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::{Tone, analysis};

    #[test]
    fn what_is_heard_comes_back_exactly_one_delay_later() {
        let (mut source, mut sink) = echo_pair(Duration::from_millis(1000));
        let mut tone = Tone::new(440.0, 0.5);
        let mut heard = [0.0; FRAME_SAMPLES];
        let mut sent = Vec::new();
        let mut said = Vec::new();
        // As the engine does each tick: pull the frame to send, then push what was heard.
        for i in 0..150 {
            let mut out = [0.0; FRAME_SAMPLES];
            source.next_frame(&mut out);
            sent.extend_from_slice(&out);
            if i < 50 {
                tone.next_frame(&mut heard);
            } else {
                heard.fill(0.0);
            }
            said.extend_from_slice(&heard);
            sink.write_frame(&heard).unwrap();
        }
        let delay = 50 * FRAME_SAMPLES;
        assert!(
            sent[..delay].iter().all(|&x| x == 0.0),
            "silent for the first second"
        );
        assert_eq!(
            &sent[delay..2 * delay],
            &said[..delay],
            "then the tone, sample for sample"
        );
        assert!(
            sent[2 * delay..].iter().all(|&x| x == 0.0),
            "then silence: nothing lingers"
        );
        let f = analysis::dominant_frequency(&sent[delay..2 * delay], SAMPLE_RATE).unwrap();
        assert!((f - 440.0).abs() < 1.0);
        assert_eq!(samples_to_duration(delay), Duration::from_secs(1));
    }

    #[test]
    fn a_sink_that_runs_ahead_is_bounded() {
        let (mut source, mut sink) = echo_pair(Duration::from_millis(100));
        for _ in 0..100 {
            sink.write_frame(&[0.5; FRAME_SAMPLES]).unwrap();
        }
        let mut out = [0.0; FRAME_SAMPLES];
        let mut pulled = 0;
        loop {
            source.next_frame(&mut out);
            if out.iter().all(|&x| x == 0.0) && pulled > 5 {
                break;
            }
            pulled += 1;
        }
        assert!(
            pulled <= 5 + 4,
            "held at most delay + slack: {pulled} frames"
        );
    }
}
