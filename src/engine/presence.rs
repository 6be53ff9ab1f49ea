//! The presence model, once: voice channels in the server's order, each with its members in
//! join order, kept live by applying the server's presence diffs to the `welcome` snapshot.
//! The engine, the TUI and headless all apply diffs through [`apply`]. Pure: data in, data out.
//!
//! Must never invent a channel: a change for a channel the snapshot did not list is ignored.

use cromulent_protocol::{ChannelId, ChannelInfo, PresenceChange, PresenceOp};

/// Apply presence changes in order and return the ones that applied (their channel is
/// known), for callers with rules of their own about them. A join puts the member last in its
/// channel (once, however often it comes); an update changes the member where it stands, as
/// the server keeps it (flags change many times a second while people talk: the roster must
/// not reorder); a leave removes it. A switch is a leave and a join in one message.
pub fn apply<'a>(
    channels: &mut [ChannelInfo],
    changes: &'a [PresenceChange],
) -> Vec<&'a PresenceChange> {
    let mut applied = Vec::with_capacity(changes.len());
    for change in changes {
        let Some(channel) = channels.iter_mut().find(|c| c.id == change.channel) else {
            continue;
        };
        let members = &mut channel.members;
        let at = members.iter().position(|m| m.user == change.member.user);
        match (change.op, at) {
            (PresenceOp::Update, Some(at)) => members[at] = change.member.clone(),
            (PresenceOp::Leave, Some(at)) => {
                members.remove(at);
            }
            (PresenceOp::Leave, None) => {}
            (PresenceOp::Join | PresenceOp::Update, _) => {
                members.retain(|m| m.user != change.member.user);
                members.push(change.member.clone());
            }
        }
        applied.push(change);
    }
    applied
}

/// The channel with this id.
pub fn find(channels: &[ChannelInfo], id: ChannelId) -> Option<&ChannelInfo> {
    channels.iter().find(|c| c.id == id)
}

/// Presence values for the crate's unit tests (one copy for every suite).
#[cfg(test)]
pub(crate) mod fixtures {
    use cromulent_protocol::{ChannelId, ChannelInfo, Member};

    /// A member whose name is its user id, unmuted, instance 1.
    pub fn member(user: &str) -> Member {
        Member {
            user: user.into(),
            name: user.into(),
            muted: false,
            deafened: false,
            talking: false,
            instance: 1,
        }
    }

    /// A channel with nobody in it.
    pub fn channel(id: ChannelId, name: &str) -> ChannelInfo {
        ChannelInfo {
            id,
            name: name.into(),
            members: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::{channel, member};
    use super::*;

    fn change(op: PresenceOp, channel: ChannelId, user: &str) -> PresenceChange {
        PresenceChange {
            op,
            channel,
            member: member(user),
        }
    }

    fn roster() -> Vec<ChannelInfo> {
        vec![channel(1, "General"), channel(2, "Gaming")]
    }

    fn users(channels: &[ChannelInfo], id: ChannelId) -> Vec<&str> {
        let channel = find(channels, id).expect("a channel of the roster");
        channel.members.iter().map(|m| m.user.as_str()).collect()
    }

    #[test]
    fn joins_come_in_join_order() {
        let mut c = roster();
        apply(
            &mut c,
            &[
                change(PresenceOp::Join, 1, "alice"),
                change(PresenceOp::Join, 1, "bob"),
            ],
        );
        assert_eq!(users(&c, 1), ["alice", "bob"]);
        assert!(users(&c, 2).is_empty());
    }

    #[test]
    fn a_leave_removes_the_member() {
        let mut c = roster();
        apply(&mut c, &[change(PresenceOp::Join, 1, "alice")]);
        apply(&mut c, &[change(PresenceOp::Leave, 1, "alice")]);
        assert!(users(&c, 1).is_empty());
        // Leaving again (or someone never seen) changes nothing.
        let applied = apply(&mut c, &[change(PresenceOp::Leave, 1, "alice")]).len();
        assert_eq!(applied, 1);
        assert!(users(&c, 1).is_empty());
    }

    #[test]
    fn an_update_replaces_the_member_s_flags() {
        let mut c = roster();
        apply(&mut c, &[change(PresenceOp::Join, 1, "bob")]);
        let mut muted = change(PresenceOp::Update, 1, "bob");
        muted.member.muted = true;
        muted.member.talking = true;
        apply(&mut c, &[muted]);
        let bob = &find(&c, 1).unwrap().members;
        assert_eq!(bob.len(), 1);
        assert!(bob[0].muted && bob[0].talking && !bob[0].deafened);
    }

    #[test]
    fn an_update_keeps_the_member_where_it_stands() {
        // The server's order is join order, flags or not (found by tests/session_sim.rs: a
        // mute moved the member last, and the client's roster no longer matched the server's).
        let mut c = roster();
        apply(
            &mut c,
            &[
                change(PresenceOp::Join, 1, "alice"),
                change(PresenceOp::Join, 1, "bob"),
            ],
        );
        let mut talking = change(PresenceOp::Update, 1, "alice");
        talking.member.talking = true;
        apply(&mut c, &[talking]);
        assert_eq!(users(&c, 1), ["alice", "bob"]);
        assert!(find(&c, 1).unwrap().members[0].talking);
    }

    #[test]
    fn a_switch_is_a_leave_and_a_join_in_one_message() {
        let mut c = roster();
        apply(
            &mut c,
            &[
                change(PresenceOp::Join, 1, "alice"),
                change(PresenceOp::Join, 1, "bob"),
            ],
        );
        let switch = [
            change(PresenceOp::Leave, 1, "bob"),
            change(PresenceOp::Join, 2, "bob"),
        ];
        assert_eq!(apply(&mut c, &switch).len(), 2);
        assert_eq!(users(&c, 1), ["alice"]);
        assert_eq!(users(&c, 2), ["bob"]);
    }

    #[test]
    fn a_change_for_an_unknown_channel_is_ignored() {
        let mut c = roster();
        let changes = [
            change(PresenceOp::Join, 9, "mallory"),
            change(PresenceOp::Join, 2, "bob"),
        ];
        let applied = apply(&mut c, &changes);
        assert_eq!(applied, [&changes[1]], "only the known channel's change");
        assert_eq!(c.len(), 2, "no channel invented");
        assert!(find(&c, 9).is_none());
        assert_eq!(users(&c, 2), ["bob"]);
    }

    #[test]
    fn a_duplicate_join_is_not_duplicated() {
        let mut c = roster();
        apply(
            &mut c,
            &[
                change(PresenceOp::Join, 1, "alice"),
                change(PresenceOp::Join, 1, "bob"),
            ],
        );
        apply(&mut c, &[change(PresenceOp::Join, 1, "alice")]);
        assert_eq!(users(&c, 1), ["bob", "alice"], "once, moved last");
    }
}
