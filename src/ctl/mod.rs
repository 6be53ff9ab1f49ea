//! Driving a running client from outside its window (issue 23): `cromulent ctl`.
//!
//! - [`request`]: the one-line requests (pure);
//! - [`status`]: what `status` reports, kept from the engine's events (pure);
//! - [`socket`]: the client's Unix socket (0600, one per client, discoverable), I/O only;
//! - [`client`]: the `cromulent ctl` command.
//!
//! The front end (`cromulent headless`, the terminal UI) answers requests with its own rules;
//! the socket never decides anything.

pub mod client;
pub mod request;
pub mod socket;
pub mod status;

pub use request::{Request, Switch};
pub use socket::{ControlSocket, Incoming, next_request, open_option};
pub use status::Status;
