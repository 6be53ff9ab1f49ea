//! Signal levels of one frame in dBFS, and a voice-activity detector built on them, for the mic
//! meter and "who is speaking" indicators.
//!
//! Pure arithmetic, no allocation: safe to call on every frame. Convention: `20·log10(x)` of the
//! RMS or peak amplitude, so a full-scale square wave is 0 dBFS and a full-scale sine is
//! −3.01 dBFS RMS / 0 dBFS peak. Silence is clamped to [`FLOOR_DBFS`] instead of −∞ so levels
//! can be compared, averaged and displayed without special cases.
//! A level is never NaN and never below the floor, whatever the input.

/// The lowest level reported; digital silence reads exactly this.
pub const FLOOR_DBFS: f32 = -120.0;

/// Converts a linear amplitude to dBFS, clamped to [`FLOOR_DBFS`]. NaN reads as the floor.
pub fn amplitude_to_dbfs(amplitude: f32) -> f32 {
    let db = 20.0 * amplitude.abs().log10();
    if db.is_nan() {
        FLOOR_DBFS
    } else {
        db.max(FLOOR_DBFS)
    }
}

/// RMS level of `frame` in dBFS ([`FLOOR_DBFS`] for an empty or silent frame).
pub fn rms_dbfs(frame: &[f32]) -> f32 {
    if frame.is_empty() {
        return FLOOR_DBFS;
    }
    let sum: f32 = frame.iter().map(|x| x * x).sum();
    amplitude_to_dbfs((sum / frame.len() as f32).sqrt())
}

/// Peak level of `frame` in dBFS ([`FLOOR_DBFS`] for an empty or silent frame).
pub fn peak_dbfs(frame: &[f32]) -> f32 {
    amplitude_to_dbfs(frame.iter().fold(0.0f32, |m, x| m.max(x.abs())))
}

/// Both levels of one frame, for a meter that shows RMS with a peak marker.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Level {
    /// RMS level, dBFS.
    pub rms_dbfs: f32,
    /// Peak level, dBFS.
    pub peak_dbfs: f32,
}

impl Level {
    /// Measures `frame`.
    pub fn of(frame: &[f32]) -> Self {
        Self {
            rms_dbfs: rms_dbfs(frame),
            peak_dbfs: peak_dbfs(frame),
        }
    }
}

/// Energy-threshold voice-activity detector with hangover.
///
/// A frame whose RMS is at or above `threshold_dbfs` makes the detector active; it then stays
/// active for `hangover_frames` further frames below the threshold, so the gaps between words
/// don't flicker the indicator (or, in voice-activated transmit, clip word endings).
/// Invariant: `remaining <= hangover_frames`.
#[derive(Debug, Clone)]
pub struct VoiceActivity {
    /// Level at which a frame counts as speech.
    threshold_dbfs: f32,
    /// How many quiet frames to stay active after the last loud one.
    hangover_frames: u32,
    /// Quiet frames still to go before turning inactive; 0 when inactive.
    remaining: u32,
    /// Whether the last update ended active (distinguishes "last loud frame" from inactive
    /// when `hangover_frames` is 0).
    active: bool,
}

impl VoiceActivity {
    /// Typical speech into a headset mic sits around −30..−15 dBFS; room noise below −50.
    pub const DEFAULT_THRESHOLD_DBFS: f32 = -45.0;
    /// 15 frames = 300 ms, about the length of a short pause inside a sentence.
    pub const DEFAULT_HANGOVER_FRAMES: u32 = 15;

    /// A detector that starts inactive.
    pub fn new(threshold_dbfs: f32, hangover_frames: u32) -> Self {
        Self {
            threshold_dbfs,
            hangover_frames,
            remaining: 0,
            active: false,
        }
    }

    /// Feeds one frame; returns whether voice is active after it.
    pub fn update(&mut self, frame: &[f32]) -> bool {
        self.update_level(rms_dbfs(frame))
    }

    /// Feeds an already measured RMS level (e.g. from [`Level::of`]); returns the new state.
    pub fn update_level(&mut self, rms_dbfs: f32) -> bool {
        self.update_decision(rms_dbfs >= self.threshold_dbfs)
    }

    /// Feeds a frame's speech probability (the capture processing's detector) instead of its
    /// level: at or above [`super::processing::SPEECH_PROBABILITY`] is speech. The hangover is
    /// the same; the level threshold is not used.
    pub fn update_probability(&mut self, probability: f32) -> bool {
        self.update_decision(probability >= super::processing::SPEECH_PROBABILITY)
    }

    fn update_decision(&mut self, loud: bool) -> bool {
        if loud {
            self.remaining = self.hangover_frames;
            self.active = true;
        } else if self.remaining > 0 {
            self.remaining -= 1;
        } else {
            self.active = false;
        }
        self.active
    }

    /// The state after the last update.
    pub fn is_active(&self) -> bool {
        self.active
    }
}

impl Default for VoiceActivity {
    fn default() -> Self {
        Self::new(Self::DEFAULT_THRESHOLD_DBFS, Self::DEFAULT_HANGOVER_FRAMES)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::test_util::sine;

    fn close(a: f32, b: f32) -> bool {
        (a - b).abs() < 0.02
    }

    #[test]
    fn known_levels() {
        assert!(close(rms_dbfs(&[1.0, -1.0, 1.0, -1.0]), 0.0));
        let full_sine = sine(1000.0, 1.0, 960, 48_000);
        assert!(
            close(rms_dbfs(&full_sine), -3.01),
            "{}",
            rms_dbfs(&full_sine)
        );
        assert!(close(peak_dbfs(&full_sine), 0.0));
        let quiet = sine(1000.0, 0.01, 960, 48_000);
        assert!(close(Level::of(&quiet).rms_dbfs, -43.01));
        assert!(close(Level::of(&quiet).peak_dbfs, -40.0));
    }

    #[test]
    fn silence_and_garbage_read_the_floor() {
        assert_eq!(rms_dbfs(&[0.0; 960]), FLOOR_DBFS);
        assert_eq!(rms_dbfs(&[]), FLOOR_DBFS);
        assert_eq!(peak_dbfs(&[]), FLOOR_DBFS);
        assert_eq!(amplitude_to_dbfs(f32::NAN), FLOOR_DBFS);
        assert_eq!(amplitude_to_dbfs(1e-30), FLOOR_DBFS);
    }

    #[test]
    fn vad_turns_on_at_threshold_and_holds_for_the_hangover() {
        let speech = sine(300.0, 0.1, 960, 48_000); // ≈ −23 dBFS
        let hum = sine(300.0, 0.001, 960, 48_000); // ≈ −63 dBFS
        let mut vad = VoiceActivity::new(-45.0, 3);
        assert!(!vad.update(&hum), "background alone must not trigger");
        assert!(vad.update(&speech));
        let after: Vec<bool> = (0..5).map(|_| vad.update(&hum)).collect();
        assert_eq!(after, [true, true, true, false, false]);
        assert!(!vad.is_active());
        // Speech inside the hangover re-arms it.
        vad.update(&speech);
        vad.update(&hum);
        vad.update(&hum);
        assert!(vad.update(&speech));
        assert_eq!(
            (0..4).map(|_| vad.update(&hum)).collect::<Vec<_>>(),
            [true, true, true, false]
        );
    }

    #[test]
    fn vad_without_hangover_follows_each_frame() {
        let mut vad = VoiceActivity::new(-20.0, 0);
        assert!(vad.update_level(-10.0));
        assert!(!vad.update_level(-30.0));
    }
}
