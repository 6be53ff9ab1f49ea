//! `cromulent-server`: the signaling server of Cromulent Voice.
//!
//! - [`config`]: settings (TOML + environment); [`cli`]: options and signals for binaries.
//! - [`server`]: the accept loop and graceful shutdown; [`run`] is the entry point;
//!   [`budget`]: how many connections, authenticated or not, in total and per address.
//! - [`front_door`]: one port, two faces — plain HTTP requests get [`web`]'s embedded web
//!   client, WebSocket upgrades go on to [`connection`].
//! - [`connection`]: one client — handshake, hello, limits, heartbeat, reading and writing;
//!   [`outbound`]: its queue of frames to write, bounded in bytes.
//! - [`chat`]: what a chat message may hold (pure); [`chat_store`]: the history in SQLite, on
//!   a thread of its own;
//! - [`hub`]: the pure core — sessions, seats, presence, join guard, relay rules;
//!   [`hub_actor`] is the task that owns it.
//! - [`auth`]: who is connecting (open names or signed tokens); [`name`]: what a name may be
//!   and when two look alike.
//! - [`cluster`]: cluster mode — many instances sharing seats, presence and signal routing
//!   through Redis (off without `[cluster]`).
//! - [`turn`]: ICE servers and TURN credentials.
//! - [`rate_limit`]: the per-connection token bucket.
//!
//! `unsafe` must never appear in this crate (forbidden crate-wide). Seat, presence and relay
//! rules live only in [`hub`], never in the tasks that carry its messages in and out.
#![forbid(unsafe_code)]

pub mod auth;
pub mod budget;
pub mod chat;
pub mod chat_store;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod connection;
pub mod front_door;
pub mod hub;
pub mod hub_actor;
pub mod name;
pub mod origin;
pub mod outbound;
pub mod rate_limit;
pub mod server;
pub mod turn;
pub mod web;

pub use server::run;
