//! `cromulent-server`: the signaling server of Cromulent Voice.
pub mod config;
pub mod turn;
