//! Picking coturn's ports: random ones from a pool below Linux's ephemeral range, free for
//! UDP (and TCP where it listens) a moment ago; or the standard ones in a namespace of the
//! test's own.
//! Outside a namespace of its own it must never pick from Linux's ephemeral range: sockets
//! bound to port 0 would take coturn's ports.

use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::ops::{Range, RangeInclusive};

use super::Ports;

/// Below Linux's default ephemeral range (32768–60999), so sockets bound to port 0 — by the
/// tests or by anyone else — do not land on coturn's ports.
const PORT_POOL: Range<u16> = 20_000..32_000;
/// Random picks tried before giving up on finding a free port or range.
const PICKS: usize = 200;
/// In a namespace of the test's own nothing else listens: the standard ports are free.
const NETNS_PORT: u16 = 3478;
const NETNS_RELAY_START: u16 = 49_152;

/// The standard listening port and `relay_ports` relay ports from the standard start.
pub(super) fn in_own_namespace(relay_ports: u16) -> Ports {
    Ports {
        listening: NETNS_PORT,
        relay: NETNS_RELAY_START..=NETNS_RELAY_START + (relay_ports - 1),
    }
}

fn random_port() -> u16 {
    rand::random_range(PORT_POOL)
}

fn udp_free(port: u16) -> bool {
    UdpSocket::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
}

fn tcp_free(port: u16) -> bool {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
}

/// A port free for both UDP and TCP (coturn listens on both).
pub(super) fn free_listening_port() -> Option<u16> {
    (0..PICKS)
        .map(|_| random_port())
        .find(|&port| udp_free(port) && tcp_free(port))
}

/// `count` consecutive UDP-free ports, not including `avoid`.
pub(super) fn free_relay_range(count: u16, avoid: u16) -> Option<RangeInclusive<u16>> {
    (0..PICKS).map(|_| random_port()).find_map(|start| {
        let end = start.checked_add(count - 1)?;
        let range = start..=end;
        let usable = end < PORT_POOL.end && !range.contains(&avoid) && range.clone().all(udp_free);
        usable.then_some(range)
    })
}
