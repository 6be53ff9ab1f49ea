use std::time::{Duration, Instant};

use cromulent_protocol::{ChatMessage, Member, PresenceChange, PresenceOp};

use super::*;
use crate::engine::presence::fixtures::{channel, member};
use crate::engine::{DisconnectReason, VoiceStatus};

fn all_hooks(per_minute: u32) -> HookConfig {
    let mut config = HookConfig {
        per_minute,
        ..HookConfig::default()
    };
    for kind in HookKind::ALL {
        config.add(kind, &format!("run-{}", kind.name())).unwrap();
    }
    config
}

fn connected(me: &str) -> EngineEvent {
    let mut general = channel(1, "General");
    general.members.push(member("carol"));
    EngineEvent::ServerConnected {
        user: me.into(),
        resumed: false,
        channels: vec![general, channel(2, "Gaming")],
    }
}

fn presence(op: PresenceOp, channel: u32, who: Member) -> EngineEvent {
    EngineEvent::Presence(vec![PresenceChange {
        op,
        channel,
        member: who,
    }])
}

fn message(channel: u32, user: &str, text: &str) -> EngineEvent {
    EngineEvent::Message(ChatMessage {
        id: 1,
        channel,
        user: user.into(),
        name: user.into(),
        time: 0,
        text: text.into(),
    })
}

fn kinds(launches: &[Launch]) -> Vec<HookKind> {
    launches.iter().map(|l| l.event.kind).collect()
}

#[test]
fn joins_and_leaves_of_others_in_our_channel_only() {
    let now = Instant::now();
    let mut hooks = Hooks::new(all_hooks(100), "alice");
    assert!(hooks.on_event(&connected("alice-1"), now).is_empty());
    // Not in a channel yet: others coming and going are none of our business.
    assert!(
        hooks
            .on_event(&presence(PresenceOp::Join, 1, member("bob")), now)
            .is_empty()
    );
    // Our own join fires nothing, though carol and bob are there already.
    let me = Member {
        name: "alice".into(),
        ..member("alice-1")
    };
    assert!(
        hooks
            .on_event(&presence(PresenceOp::Join, 1, me.clone()), now)
            .is_empty()
    );
    let dave = Member {
        name: "Dave".into(),
        ..member("dave-7")
    };
    let joined = hooks.on_event(&presence(PresenceOp::Join, 1, dave.clone()), now);
    assert_eq!(kinds(&joined), [HookKind::Joined]);
    assert_eq!(joined[0].command, "run-joined");
    let event = &joined[0].event;
    assert_eq!(event.user.as_deref(), Some("Dave"));
    assert_eq!(event.user_id.as_deref(), Some("dave-7"));
    assert_eq!(event.channel.as_deref(), Some("General"));
    // Flag updates are not joins; another channel's comings are not ours.
    assert!(
        hooks
            .on_event(&presence(PresenceOp::Update, 1, dave.clone()), now)
            .is_empty()
    );
    assert!(
        hooks
            .on_event(&presence(PresenceOp::Join, 2, member("erin")), now)
            .is_empty()
    );
    // A switch away from us is a leave here (and a join elsewhere, not ours).
    let switch = EngineEvent::Presence(vec![
        PresenceChange {
            op: PresenceOp::Leave,
            channel: 1,
            member: dave.clone(),
        },
        PresenceChange {
            op: PresenceOp::Join,
            channel: 2,
            member: dave,
        },
    ]);
    assert_eq!(kinds(&hooks.on_event(&switch, now)), [HookKind::Left]);
    // We leave: carol leaving afterwards is nothing to us.
    assert!(
        hooks
            .on_event(&presence(PresenceOp::Leave, 1, me), now)
            .is_empty()
    );
    assert!(
        hooks
            .on_event(&presence(PresenceOp::Leave, 1, member("carol")), now)
            .is_empty()
    );
}

#[test]
fn mentions_anywhere_messages_in_our_channel_never_our_own() {
    let now = Instant::now();
    let mut hooks = Hooks::new(all_hooks(100), "Alice");
    hooks.on_event(&connected("alice-1"), now);
    hooks.on_event(&presence(PresenceOp::Join, 1, member("alice-1")), now);
    let said = hooks.on_event(&message(1, "carol", "lunch?"), now);
    assert_eq!(kinds(&said), [HookKind::Message]);
    assert_eq!(said[0].event.text.as_deref(), Some("lunch?"));
    // A mention is one hook, not two; in another channel too.
    assert_eq!(
        kinds(&hooks.on_event(&message(1, "carol", "@alice you there?"), now)),
        [HookKind::Mentioned]
    );
    assert_eq!(
        kinds(&hooks.on_event(&message(2, "erin", "ask ALICE"), now)),
        [HookKind::Mentioned]
    );
    // Another channel's chatter; a name inside a word; our own words.
    assert!(hooks.on_event(&message(2, "erin", "hello"), now).is_empty());
    assert!(
        hooks
            .on_event(&message(1, "carol", "malicete"), now)
            .iter()
            .all(|l| l.event.kind == HookKind::Message)
    );
    assert!(
        hooks
            .on_event(&message(1, "alice-1", "alice here"), now)
            .is_empty()
    );
    // History pages are not news.
    assert!(
        hooks
            .on_event(
                &EngineEvent::History {
                    channel: 1,
                    messages: Vec::new(),
                    more: false
                },
                now
            )
            .is_empty()
    );
}

#[test]
fn a_drop_fires_once_and_coming_back_once() {
    let now = Instant::now();
    let mut hooks = Hooks::new(all_hooks(100), "alice");
    hooks.on_event(&connected("alice-1"), now);
    let lost = || EngineEvent::Status {
        status: VoiceStatus::Disconnected {
            channel: Some(1),
            reason: DisconnectReason::SignalingLost("connection refused".into()),
        },
        channel_name: Some("General".into()),
    };
    let dropped = hooks.on_event(&lost(), now);
    assert_eq!(kinds(&dropped), [HookKind::Disconnected]);
    assert_eq!(
        dropped[0].event.reason.as_deref(),
        Some("connection refused")
    );
    assert_eq!(dropped[0].event.channel.as_deref(), Some("General"));
    // Every retry says disconnected again: one hook for the outage.
    assert!(hooks.on_event(&lost(), now).is_empty());
    let connecting = EngineEvent::Status {
        status: VoiceStatus::Connecting { channel: 1 },
        channel_name: None,
    };
    assert!(hooks.on_event(&connecting, now).is_empty());
    let back = EngineEvent::Status {
        status: VoiceStatus::Connected { channel: 1 },
        channel_name: None,
    };
    assert_eq!(kinds(&hooks.on_event(&back, now)), [HookKind::Reconnected]);
    assert!(hooks.on_event(&back, now).is_empty(), "connected as usual");
}

#[test]
fn only_configured_hooks_run_within_the_rate() {
    let t0 = Instant::now();
    let mut config = HookConfig {
        per_minute: 2,
        ..HookConfig::default()
    };
    config
        .add_arg("mentioned=notify-send \"$CROMULENT_TEXT\"")
        .unwrap();
    let mut hooks = Hooks::new(config, "alice");
    hooks.on_event(&connected("alice-1"), t0);
    hooks.on_event(&presence(PresenceOp::Join, 1, member("alice-1")), t0);
    assert!(
        hooks.on_event(&message(1, "carol", "hi"), t0).is_empty(),
        "no message hook"
    );
    let spam = |hooks: &mut Hooks, s: u64| {
        hooks.on_event(&message(1, "carol", "alice!"), t0 + Duration::from_secs(s))
    };
    assert_eq!(spam(&mut hooks, 0).len(), 1);
    assert_eq!(spam(&mut hooks, 1).len(), 1);
    assert!(spam(&mut hooks, 2).is_empty());
    assert!(spam(&mut hooks, 3).is_empty());
    let later = spam(&mut hooks, 61);
    assert_eq!(later[0].dropped, 2);
    assert_eq!(later[0].command, "notify-send \"$CROMULENT_TEXT\"");
}

#[test]
fn config_from_the_file_and_the_flag() {
    let file: HooksFile = toml::from_str(
        "joined = \"notify-send joined\"\nmentioned = \"notify-send mention\"\nper_minute = 3\n",
    )
    .unwrap();
    let config = HookConfig::from_file(&file).unwrap();
    assert_eq!(config.per_minute, 3);
    assert_eq!(config.commands.len(), 2);
    assert_eq!(config.commands[&HookKind::Joined], "notify-send joined");
    assert!(
        toml::from_str::<HooksFile>("joind = \"x\"\n").is_err(),
        "typo refused"
    );
    let empty = HooksFile {
        left: Some("  ".into()),
        ..HooksFile::default()
    };
    assert!(HookConfig::from_file(&empty).unwrap_err().contains("empty"));
    let mut flags = HookConfig::default();
    assert_eq!(
        flags.per_minute, DEFAULT_PER_MINUTE,
        "the flag's hooks are limited too"
    );
    assert!(flags.add_arg("joined=echo $CROMULENT_USER=x").is_ok());
    assert_eq!(flags.commands[&HookKind::Joined], "echo $CROMULENT_USER=x");
    assert!(
        flags
            .add_arg("jumped=x")
            .unwrap_err()
            .contains("one of joined")
    );
    assert!(
        flags
            .add_arg("no equals sign")
            .unwrap_err()
            .contains("KIND=COMMAND")
    );
    assert_eq!(
        HookConfig::from_file(&HooksFile::default())
            .unwrap()
            .per_minute,
        10
    );
}
