//! Cluster mode (`[cluster]`): many instances behind one address share seats, presence and
//! signal routing through one Redis. Off by default; without it none of this runs.
//!
//! - [`wire`]: the plain data between the hub and the edge, and through Redis;
//! - [`board`]: the keys in Redis and the Lua scripts that change them (the join guard is
//!   one of them: check and seat in one atomic step);
//! - [`edge`]: the tasks that carry the hub's requests to Redis and its events back.
//!
//! The rules (who may sit where, what a client is told) stay in [`crate::hub`]: it keeps a
//! replica of every seat, applied in the events' one global order, and answers from it.
//! Leases: each node renews one key (`lease_ms`, every `renew_ms`); its seats live as long as
//! it does, and the first survivor to notice a lapsed lease releases them (within
//! `lease_ms + renew_ms`).

pub mod board;
pub mod edge;
pub mod wire;
