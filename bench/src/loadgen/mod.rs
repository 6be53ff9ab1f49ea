//! The server load generator: many WebSocket clients speaking the real protocol (types from
//! `cromulent-protocol`), spread over several loopback source addresses.
//!
//! - [`client`]: one connection (bind, connect, hello, cheap message classification);
//! - [`idle`]: max idle connections and server RSS per connection;
//! - [`joins`]: joins per second and join-reply latency, with the number of watchers beside it;
//! - [`fanout`]: how long a presence change takes to reach every one of many watchers;
//! - [`release`]: how long a `kill -9`ed cluster instance's seat stays taken;
//! - [`slow`]: clients that stop reading under a signal flood (memory pinned, time to drop);
//! - [`chat`]: a big history seeded, history pages timed, many clients chatting.
//!
//! It must never run the server in-process: it loads a running `cromulent-server` from outside,
//! over real sockets, as clients would.

pub mod chat;
pub mod client;
pub mod fanout;
pub mod idle;
pub mod joins;
pub mod release;
pub mod slow;
