//! The client's command line, through the real binary: help, device listing, and the errors a
//! user can cause, each with a reason and exit status 2 (usage).

use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_cromulent");

fn run(args: &[&str]) -> Output {
    let home = std::env::temp_dir().join(format!("cromulent-tui-cli-{}", std::process::id()));
    Command::new(BIN)
        .args(args)
        // No user config, no stray settings.
        .env("HOME", &home)
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("CROMULENT_CONFIG")
        .env_remove("CROMULENT_TOKEN")
        .output()
        .expect("run cromulent")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn help_names_the_client_options_and_the_demo() {
    let out = run(&["--help"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for expected in [
        "demo",
        "headless",
        "server",
        "--server",
        "--talk-mode",
        "--input-device",
        "--list-devices",
        "--config",
    ] {
        assert!(
            text.contains(expected),
            "{expected} missing from --help:\n{text}"
        );
    }
}

#[test]
fn without_a_server_it_says_how_to_give_one() {
    let out = run(&["--user", "ann"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("no server given") && err.contains("--server"),
        "{err}"
    );
    assert!(err.contains("cromulent demo"), "{err}");
}

#[test]
fn a_named_config_file_that_is_missing_or_wrong_is_an_error() {
    let out = run(&[
        "--config",
        "/nonexistent-dir/c.toml",
        "--server",
        "ws://127.0.0.1:9",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("/nonexistent-dir/c.toml"),
        "{}",
        stderr(&out)
    );

    let dir = std::env::temp_dir().join(format!("cromulent-tui-cli-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[keys]\nmute = [\"space\"]\n").unwrap();
    let out = run(&[
        "--config",
        bad.to_str().unwrap(),
        "--server",
        "ws://127.0.0.1:9",
        "--user",
        "ann",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("bound to both"), "{}", stderr(&out));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_demo_runs_its_own_server() {
    let out = run(&["demo", "--server", "ws://127.0.0.1:9"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("runs its own server"),
        "{}",
        stderr(&out)
    );
}

#[cfg(feature = "devices")]
#[test]
fn list_devices_prints_inputs_and_outputs_without_alsa_noise() {
    let out = run(&["--list-devices"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("microphones (--input-device)"), "{text}");
    assert!(text.contains("speakers (--output-device)"), "{text}");
    assert!(
        text.contains("null"),
        "ALSA's null device is always there: {text}"
    );
    assert!(!stderr(&out).contains("ALSA lib"), "{}", stderr(&out));
}

#[test]
fn headless_takes_device_specs_and_refuses_a_missing_device() {
    let out = run(&[
        "headless",
        "--server",
        "ws://127.0.0.1:9",
        "--user",
        "x",
        "--audio-in",
        "device:no-such-microphone",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("no-such-microphone")
            && (err.contains("no microphone matches") || err.contains("no sound-device support")),
        "{err}"
    );
    let out = run(&[
        "headless",
        "--server",
        "ws://x",
        "--user",
        "x",
        "--audio-out",
        "device:",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("needs a device name"),
        "{}",
        stderr(&out)
    );
}
