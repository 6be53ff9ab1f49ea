//! Talk state: open mic, push-to-talk, voice activity, mute and deafen — the rules, as a pure
//! state machine the engine and the TUI share.
//!
//! The rules (each one a test below):
//! - mute always wins: a muted mic is never live, whatever the mode or the talk key;
//! - unmuting never opens the mic by itself in push-to-talk mode (Cromulent's did);
//! - deafen silences every peer, including ones who join later (it is a property of the
//!   listener, not of each peer), and deafened users are not heard either;
//! - when the mic is not live nothing is sent (the engine skips encoding).

/// How the microphone is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TalkMode {
    /// The mic is live unless muted (the talk switch starts on).
    Open,
    /// The mic is live while the talk key is held (or toggled on where the terminal cannot
    /// report key release).
    PushToTalk,
    /// The mic is live while the voice detector hears speech (and the talk switch is on).
    VoiceActivity,
}

impl std::str::FromStr for TalkMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "open" => Ok(Self::Open),
            "ptt" => Ok(Self::PushToTalk),
            "vad" | "voice" => Ok(Self::VoiceActivity),
            _ => Err(format!("unknown talk mode {s:?}: use open, ptt or vad")),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TalkState {
    mode: TalkMode,
    /// PTT key held (PTT mode) or the talk switch (open / voice-activity modes).
    talk: bool,
    muted: bool,
    deafened: bool,
}

impl TalkState {
    pub fn new(mode: TalkMode) -> Self {
        Self {
            mode,
            talk: mode != TalkMode::PushToTalk,
            muted: false,
            deafened: false,
        }
    }

    pub fn mode(&self) -> TalkMode {
        self.mode
    }

    /// Change mode; the talk switch resets to the mode's resting state (PTT: released).
    pub fn set_mode(&mut self, mode: TalkMode) {
        self.mode = mode;
        self.talk = mode != TalkMode::PushToTalk;
    }

    /// Talk key pressed/released (PTT) or talk switch on/off (other modes).
    pub fn set_talk(&mut self, on: bool) {
        self.talk = on;
    }

    pub fn talk(&self) -> bool {
        self.talk
    }

    /// Mute or unmute. Unmuting changes nothing else: in PTT mode the key must still be held.
    pub fn set_muted(&mut self, muted: bool) {
        self.muted = muted;
    }

    pub fn set_deafened(&mut self, deafened: bool) {
        self.deafened = deafened;
    }

    pub fn muted(&self) -> bool {
        self.muted
    }

    pub fn deafened(&self) -> bool {
        self.deafened
    }

    /// Whether captured audio is sent now. `voice_detected` matters only in voice-activity
    /// mode.
    pub fn mic_live(&self, voice_detected: bool) -> bool {
        if self.muted || self.deafened || !self.talk {
            return false;
        }
        match self.mode {
            TalkMode::Open | TalkMode::PushToTalk => true,
            TalkMode::VoiceActivity => voice_detected,
        }
    }

    /// Whether peers are played back.
    pub fn hears(&self) -> bool {
        !self.deafened
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_mic_is_live_until_muted() {
        let mut t = TalkState::new(TalkMode::Open);
        assert!(t.mic_live(false));
        t.set_muted(true);
        assert!(!t.mic_live(true));
        t.set_muted(false);
        assert!(t.mic_live(false));
    }

    #[test]
    fn ptt_is_live_only_while_held() {
        let mut t = TalkState::new(TalkMode::PushToTalk);
        assert!(!t.mic_live(true), "PTT starts released");
        t.set_talk(true);
        assert!(t.mic_live(false));
        t.set_talk(false);
        assert!(!t.mic_live(true));
    }

    #[test]
    fn mute_always_wins() {
        for mode in [
            TalkMode::Open,
            TalkMode::PushToTalk,
            TalkMode::VoiceActivity,
        ] {
            let mut t = TalkState::new(mode);
            t.set_muted(true);
            t.set_talk(true);
            assert!(!t.mic_live(true), "{mode:?}: muted yet live");
            // Muting while holding PTT also closes the mic at once.
            let mut t = TalkState::new(mode);
            t.set_talk(true);
            t.set_muted(true);
            assert!(!t.mic_live(true), "{mode:?}");
        }
    }

    #[test]
    fn unmuting_in_ptt_mode_never_opens_the_mic() {
        let mut t = TalkState::new(TalkMode::PushToTalk);
        t.set_muted(true);
        t.set_muted(false);
        assert!(!t.mic_live(true), "Cromulent's bug: unmute opened the mic");
        // ...and after a talk burst, release then unmute stays closed too.
        t.set_talk(true);
        t.set_muted(true);
        t.set_talk(false);
        t.set_muted(false);
        assert!(!t.mic_live(true));
    }

    #[test]
    fn deafen_silences_playback_and_the_mic() {
        let mut t = TalkState::new(TalkMode::Open);
        assert!(t.hears());
        t.set_deafened(true);
        assert!(!t.hears());
        assert!(!t.mic_live(true));
        t.set_deafened(false);
        assert!(t.hears() && t.mic_live(false));
        assert!(!t.muted(), "undeafen restores the previous mute state");
    }

    #[test]
    fn voice_activity_needs_speech() {
        let t = TalkState::new(TalkMode::VoiceActivity);
        assert!(!t.mic_live(false));
        assert!(t.mic_live(true));
    }

    #[test]
    fn switching_to_ptt_releases_the_key() {
        let mut t = TalkState::new(TalkMode::Open);
        t.set_mode(TalkMode::PushToTalk);
        assert!(!t.mic_live(true));
        assert_eq!("ptt".parse::<TalkMode>(), Ok(TalkMode::PushToTalk));
        assert!("loud".parse::<TalkMode>().is_err());
    }
}
