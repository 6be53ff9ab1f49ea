//! The client's side of the signaling connection: one task that keeps a WebSocket to the
//! server (`ws://` or `wss://`), says hello (with the resume token of the last session), hands
//! every server message to the engine, reconnects with backoff when the connection is lost,
//! and notices a silent server. It knows nothing of channels or calls: the engine decides what
//! to send after each (re)connect.
//!
//! It must never retry a refusal no retry can fix (a bad token, a taken name): those end the
//! task with a fatal event.

mod backoff;
mod client;

pub use backoff::Backoff;
pub use client::{Credentials, SignalingEvent, SignalingHandle, spawn};
