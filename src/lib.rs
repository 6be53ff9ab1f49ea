//! `cromulent`: the terminal voice client.
pub mod audio;
