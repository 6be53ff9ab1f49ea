//! Sound over SSH as docs/TUI.md#sound tells it: the client reaches a sound server that is
//! only on TCP (`module-native-protocol-tcp`, what `ssh -R` forwards) through `PULSE_SERVER`.
//! A private PulseAudio daemon stands in for the user's local one; the client runs with no
//! way to the daemon's Unix socket (its own empty runtime dir), so only the TCP address can
//! lead it there. One test per binary: the daemon's environment is process-wide.

#![cfg(feature = "devices")]

mod support;

use std::process::Command;

use support::pulse::{Pulse, pactl};
use support::{BIN, TempDir, free_port};

/// `cromulent --list-devices` with only `pulse_server` to find a sound server.
fn list_devices(pulse_server: &str, dir: &TempDir) -> String {
    let out = Command::new(BIN)
        .arg("--list-devices")
        .env("PULSE_SERVER", pulse_server)
        .env("XDG_RUNTIME_DIR", dir.path("."))
        .env("HOME", dir.path("."))
        .output()
        .expect("cromulent runs");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_client_uses_a_sound_server_reached_over_tcp_through_pulse_server() {
    let _pulse = Pulse::start();
    let port = free_port();
    let listen = format!("port={port}");
    assert!(
        pactl(&[
            "load-module",
            "module-native-protocol-tcp",
            &listen,
            "listen=127.0.0.1",
            "auth-anonymous=1",
        ]),
        "the TCP protocol module loads"
    );
    let empty = TempDir::new("ssh-remote");
    let server = format!("tcp:127.0.0.1:{port}");
    let listing = list_devices(&server, &empty);
    assert!(
        listing.contains("* pulse:mic"),
        "the forwarded microphone: {listing}"
    );
    assert!(
        listing.contains("* pulse:spk"),
        "the forwarded speaker: {listing}"
    );

    // Nothing listens there any more: no server, so none of its devices (ALSA's remain).
    assert!(pactl(&["unload-module", "module-native-protocol-tcp"]));
    let listing = list_devices(&server, &empty);
    assert!(listing.contains("no PulseAudio server"), "{listing}");
    assert!(!listing.contains("pulse:mic"), "{listing}");
}
