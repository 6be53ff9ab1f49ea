//! Which names are in use, by their confusable skeleton ([`crate::name::skeleton`]), so that a
//! newcomer cannot take a name that renders like a user who is connected or whose session is
//! still resumable. Owned by the [`Hub`](super::Hub); plain data, no I/O.
//! It never refuses anyone itself: the hub asks for a clash and closes with `name_taken`.

use std::collections::HashMap;

use cromulent_protocol::UserId;

use crate::auth::Identity;
use crate::name::skeleton;

/// Skeleton → the one user id it belongs to, and how many live sessions hold it.
#[derive(Debug, Default)]
pub(super) struct Lookalikes {
    by_skeleton: HashMap<String, (UserId, usize)>,
}

impl Lookalikes {
    /// The user whose name (id or display name) looks like one of `identity`'s, if that is
    /// someone else.
    pub(super) fn clash(&self, identity: &Identity) -> Option<&UserId> {
        skeletons(identity).into_iter().find_map(|s| {
            self.by_skeleton
                .get(&s)
                .map(|(user, _)| user)
                .filter(|user| **user != identity.user)
        })
    }

    /// A session with `identity` started. The caller has checked [`Lookalikes::clash`].
    pub(super) fn add(&mut self, identity: &Identity) {
        for s in skeletons(identity) {
            self.by_skeleton
                .entry(s)
                .or_insert_with(|| (identity.user.clone(), 0))
                .1 += 1;
        }
    }

    /// A session with `identity` is forgotten. The skeletons no session holds any more.
    pub(super) fn remove(&mut self, identity: &Identity) -> Vec<String> {
        let mut freed = Vec::new();
        for s in skeletons(identity) {
            if let Some((_, count)) = self.by_skeleton.get_mut(&s) {
                *count -= 1;
                if *count == 0 {
                    self.by_skeleton.remove(&s);
                    freed.push(s);
                }
            }
        }
        freed
    }

    /// Whether a session holds skeleton `s`.
    pub(super) fn holds(&self, s: &str) -> bool {
        self.by_skeleton.contains_key(s)
    }

    /// Every skeleton in use with its user.
    pub(super) fn all(&self) -> Vec<(String, UserId)> {
        let mut all: Vec<_> = self
            .by_skeleton
            .iter()
            .map(|(s, (user, _))| (s.clone(), user.clone()))
            .collect();
        all.sort_unstable();
        all
    }
}

/// The skeletons of a user id and its display name (one if they look alike).
pub(super) fn skeletons(identity: &Identity) -> Vec<String> {
    let mut all = vec![skeleton(&identity.user)];
    let name = skeleton(&identity.name);
    if name != all[0] {
        all.push(name);
    }
    all
}
