//! Test harnesses of Cromulent Voice, one copy of each, used by the client's end-to-end tests
//! (`tests/`), the server's integration tests (`server/tests/`) and the benchmarks (`bench/`,
//! which starts a coturn at run time). Not published; never a dependency of a shipped crate.
//!
//! - [`coturn`]: a real `turnserver` on free loopback ports or inside a network namespace,
//!   configured on the command line or from a rendered config file, and a TURN client
//!   ([`coturn::Allocation`]) to allocate on it;
//! - [`pulse`]: a private PulseAudio daemon with a null-sink speaker and a FIFO microphone;
//! - [`ws`]: the signaling server run in-process on `127.0.0.1:0` and real WebSocket clients;
//! - [`redis`]: a real `redis-server` on a free loopback port, for the server's cluster mode;
//! - [`forward`]: a TCP front that fails over to the next backend, as a reverse proxy does in
//!   front of a cluster's instances;
//! - [`netns`]: naming and deleting the network namespaces tests make, and running a test
//!   alone in a namespace with only loopback ([`netns::isolated`]);
//! - [`browser`]: a real Chromium driven over WebDriver;
//! - [`tmux`]: a real terminal (a private tmux server) for the terminal client;
//! - [`process`]: finding binaries, free ports, private temp dirs, bounded waits and children
//!   killed on drop;
//! - [`procfs`]: what `/proc` says about sockets and threads.
//!
//! Every wait is bounded and every process or directory it makes is removed when its handle
//! drops, also when a test panics. What it cannot set up (a missing binary, no free port) is an
//! error or a panic that says what to install or what went wrong: a test never passes because
//! its harness was missing.
// `deny`, not `forbid`: `pulse` points this process's environment at its daemon, and
// `std::env::set_var` is `unsafe` in edition 2024 (allowed there, with its safety comment).
#![deny(unsafe_code)]

pub mod browser;
pub mod coturn;
pub mod forward;
pub mod netns;
pub mod process;
pub mod procfs;
pub mod pulse;
pub mod redis;
pub mod tmux;
pub mod ws;
