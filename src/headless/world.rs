//! What a headless run knows from the engine's events, for `wait` conditions. Pure.
//! Must never apply presence by rules of its own: changes go through [`presence::apply`], as
//! in the engine and the TUI.

use std::collections::{BTreeMap, BTreeSet};

use cromulent_protocol::{ChannelId, ChannelInfo};

use crate::engine::{CallState, EngineEvent, VoiceStatus, presence};

use super::script::WaitFor;

#[derive(Debug, Default)]
pub struct World {
    status: Option<VoiceStatus>,
    peers: BTreeMap<String, CallState>,
    heard: BTreeSet<String>,
    /// User ids by display name, for `wait peer NAME` with a name. Everyone seen is kept,
    /// also after they left.
    names: BTreeMap<String, String>,
    /// The channels and who is in them ([`presence`]).
    channels: Vec<ChannelInfo>,
}

impl World {
    pub fn apply(&mut self, event: &EngineEvent) {
        match event {
            EngineEvent::ServerConnected { channels, .. } => {
                for c in channels {
                    for m in &c.members {
                        self.names.insert(m.name.to_lowercase(), m.user.clone());
                    }
                }
                self.channels = channels.clone();
            }
            EngineEvent::Presence(changes) => {
                presence::apply(&mut self.channels, changes);
                for c in changes {
                    self.names
                        .insert(c.member.name.to_lowercase(), c.member.user.clone());
                }
            }
            EngineEvent::Status { status, .. } => {
                self.status = Some(status.clone());
                if matches!(status, VoiceStatus::None | VoiceStatus::Disconnected { .. }) {
                    self.peers.clear();
                    self.heard.clear();
                }
            }
            EngineEvent::Peer { user, state, .. } => {
                if *state != CallState::Connected {
                    // A new call (or none): audio must be heard anew.
                    self.heard.remove(user);
                }
                self.peers.insert(user.clone(), *state);
            }
            EngineEvent::Audio { from, .. } => {
                self.heard.insert(from.clone());
            }
            _ => {}
        }
    }

    /// A channel's name, for the JSON lines.
    pub fn channel_name(&self, id: ChannelId) -> Option<String> {
        presence::find(&self.channels, id).map(|c| c.name.clone())
    }

    pub fn satisfied(&self, cond: &WaitFor) -> bool {
        match cond {
            WaitFor::Connected => matches!(self.status, Some(VoiceStatus::Connected { .. })),
            WaitFor::Disconnected => {
                matches!(self.status, Some(VoiceStatus::Disconnected { .. }))
            }
            WaitFor::Peer(who) => self
                .user_id(who)
                .is_some_and(|u| self.peers.get(u) == Some(&CallState::Connected)),
            WaitFor::Audio(who) => self.user_id(who).is_some_and(|u| self.heard.contains(u)),
        }
    }

    /// A user's id from a name (case-insensitive) or an id; an unknown name is taken as an id.
    pub fn user_id<'a>(&'a self, who: &'a str) -> Option<&'a str> {
        if self.peers.contains_key(who) || self.heard.contains(who) {
            return Some(who);
        }
        self.names
            .get(&who.to_lowercase())
            .map(String::as_str)
            .or(Some(who))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_follow_the_events() {
        let mut w = World::default();
        assert!(!w.satisfied(&WaitFor::Connected));
        w.apply(&EngineEvent::Status {
            status: VoiceStatus::Connected { channel: 1 },
            channel_name: None,
        });
        assert!(w.satisfied(&WaitFor::Connected));
        w.apply(&EngineEvent::Peer {
            user: "bob".into(),
            state: CallState::Connected,
            candidate: None,
        });
        assert!(w.satisfied(&WaitFor::Peer("bob".into())));
        assert!(!w.satisfied(&WaitFor::Audio("bob".into())));
        w.apply(&EngineEvent::Audio {
            from: "bob".into(),
            ms: 10,
        });
        assert!(w.satisfied(&WaitFor::Audio("bob".into())));
        // A lost connection resets what was heard: after a reconnect it must be heard anew.
        w.apply(&EngineEvent::Status {
            status: VoiceStatus::Disconnected {
                channel: Some(1),
                reason: crate::engine::DisconnectReason::SignalingLost("x".into()),
            },
            channel_name: None,
        });
        assert!(w.satisfied(&WaitFor::Disconnected));
        assert!(!w.satisfied(&WaitFor::Audio("bob".into())));
        assert!(!w.satisfied(&WaitFor::Peer("bob".into())));
    }

    #[test]
    fn channel_names_and_member_names_come_from_the_roster_and_presence() {
        use crate::engine::presence::fixtures::{channel, member};
        use cromulent_protocol::{PresenceChange, PresenceOp};
        let bob = cromulent_protocol::Member {
            name: "Bob".into(),
            ..member("bob-2")
        };
        let mut w = World::default();
        w.apply(&EngineEvent::ServerConnected {
            user: "alice".into(),
            resumed: false,
            channels: vec![channel(1, "General")],
        });
        w.apply(&EngineEvent::Presence(vec![PresenceChange {
            op: PresenceOp::Join,
            channel: 1,
            member: bob,
        }]));
        assert_eq!(w.channel_name(1).as_deref(), Some("General"));
        assert_eq!(w.channel_name(9), None);
        assert_eq!(presence::find(&w.channels, 1).unwrap().members.len(), 1);
        assert_eq!(w.user_id("bob"), Some("bob-2"));
    }
}
