//! Which engine events are hook events. Pure: it follows the events to know who we are, which
//! channel we sit in and what things are called, through the same presence rules as the
//! engine ([`presence::apply`]).
//!
//! Must never fire for our own doings (our join, our messages) or for history pages: only live
//! things that happened to us.

use cromulent_protocol::{ChannelId, ChannelInfo, ChatMessage, PresenceOp, UserId};
use serde::Serialize;

use super::HookKind;
use crate::engine::{EngineEvent, VoiceStatus, presence};
use crate::text::mentions;

/// What a hook is told: one JSON object on its stdin, the same fields in `CROMULENT_*`
/// variables. Text is as the server sent it (JSON-escaped on stdin; made safe in variables).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HookEvent {
    #[serde(rename = "event")]
    pub kind: HookKind,
    /// The channel concerned, by name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// Who joined, left or wrote: display name and user id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<UserId>,
    /// A message's text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Why the connection dropped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl HookEvent {
    fn new(kind: HookKind) -> Self {
        Self {
            kind,
            channel: None,
            user: None,
            user_id: None,
            text: None,
            reason: None,
        }
    }
}

#[derive(Debug)]
pub struct Triggers {
    /// Our display name (mentions) and user id (from the server).
    me_name: String,
    me: Option<UserId>,
    channels: Vec<ChannelInfo>,
    /// The voice connection dropped and has not come back.
    dropped: bool,
}

impl Triggers {
    pub fn new(me_name: &str) -> Self {
        Self {
            me_name: me_name.to_owned(),
            me: None,
            channels: Vec::new(),
            dropped: false,
        }
    }

    /// The hook events `event` makes, in order.
    pub fn on_event(&mut self, event: &EngineEvent) -> Vec<HookEvent> {
        match event {
            EngineEvent::ServerConnected { user, channels, .. } => {
                self.me = Some(user.clone());
                self.channels = channels.clone();
                Vec::new()
            }
            EngineEvent::Presence(changes) => {
                let mut out = Vec::new();
                for change in changes {
                    let ours = self.my_channel();
                    presence::apply(&mut self.channels, std::slice::from_ref(change));
                    let them = Some(&change.member.user) != self.me.as_ref();
                    if !them || ours != Some(change.channel) {
                        continue;
                    }
                    let kind = match change.op {
                        PresenceOp::Join => HookKind::Joined,
                        PresenceOp::Leave => HookKind::Left,
                        PresenceOp::Update => continue,
                    };
                    out.push(HookEvent {
                        channel: self.channel_name(change.channel),
                        user: Some(change.member.name.clone()),
                        user_id: Some(change.member.user.clone()),
                        ..HookEvent::new(kind)
                    });
                }
                out
            }
            EngineEvent::Message(message) => self.on_message(message).into_iter().collect(),
            EngineEvent::Status { status, .. } => self.on_status(status).into_iter().collect(),
            _ => Vec::new(),
        }
    }

    fn on_message(&self, message: &ChatMessage) -> Option<HookEvent> {
        if Some(&message.user) == self.me.as_ref() {
            return None;
        }
        let kind = if mentions(&message.text, &self.me_name) {
            HookKind::Mentioned
        } else if self.my_channel() == Some(message.channel) {
            HookKind::Message
        } else {
            return None;
        };
        Some(HookEvent {
            channel: self.channel_name(message.channel),
            user: Some(message.name.clone()),
            user_id: Some(message.user.clone()),
            text: Some(message.text.clone()),
            ..HookEvent::new(kind)
        })
    }

    fn on_status(&mut self, status: &VoiceStatus) -> Option<HookEvent> {
        match status {
            VoiceStatus::Disconnected { channel, reason } if !self.dropped => {
                self.dropped = true;
                Some(HookEvent {
                    channel: channel.and_then(|c| self.channel_name(c)),
                    reason: Some(reason.to_string()),
                    ..HookEvent::new(HookKind::Disconnected)
                })
            }
            VoiceStatus::Connected { channel } if self.dropped => {
                self.dropped = false;
                Some(HookEvent {
                    channel: self.channel_name(*channel),
                    ..HookEvent::new(HookKind::Reconnected)
                })
            }
            // Leaving on purpose ends an outage too: nothing came back, nothing to say.
            VoiceStatus::None => {
                self.dropped = false;
                None
            }
            _ => None,
        }
    }

    /// The channel we sit in, by presence.
    fn my_channel(&self) -> Option<ChannelId> {
        let me = self.me.as_ref()?;
        self.channels
            .iter()
            .find(|c| c.members.iter().any(|m| &m.user == me))
            .map(|c| c.id)
    }

    fn channel_name(&self, id: ChannelId) -> Option<String> {
        presence::find(&self.channels, id).map(|c| c.name.clone())
    }
}
