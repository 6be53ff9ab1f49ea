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

/// `cromulent completions SHELL` to a file in a fresh temporary directory.
fn completion_script(
    shell: &str,
) -> (cromulent_test_support::process::TempDir, std::path::PathBuf) {
    let out = run(&["completions", shell]);
    assert!(out.status.success(), "{}", stderr(&out));
    let dir = cromulent_test_support::process::TempDir::new("completions");
    let path = dir.path(&format!("cromulent.{shell}"));
    std::fs::write(&path, &out.stdout).unwrap();
    (dir, path)
}

/// What bash offers after `line` (completing its last word), with the generated script loaded.
fn bash_completes(script: &std::path::Path, line: &str) -> Vec<String> {
    let words: Vec<&str> = line.split(' ').collect();
    let program = format!(
        "source '{script}'\n\
         COMP_WORDS=({words}); COMP_CWORD={cword}; COMP_LINE='{line}'; COMP_POINT=${{#COMP_LINE}}\n\
         _cromulent cromulent '{cur}' '{prev}'\n\
         printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script = script.display(),
        words = words
            .iter()
            .map(|w| format!("'{w}'"))
            .collect::<Vec<_>>()
            .join(" "),
        cword = words.len() - 1,
        cur = words[words.len() - 1],
        prev = words[words.len() - 2],
    );
    let out = Command::new("bash")
        .args(["--norc", "-c", &program])
        .output()
        .expect("run bash");
    assert!(out.status.success(), "{}", stderr(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn bash_completes_subcommands_and_flags_from_the_generated_script() {
    let (_dir, script) = completion_script("bash");
    assert_eq!(bash_completes(&script, "cromulent head"), ["headless"]);
    let hook = bash_completes(&script, "cromulent headless --ho");
    assert_eq!(hook, ["--hook"], "the newest flags are in: {hook:?}");
    let ctl = bash_completes(&script, "cromulent c");
    for sub in ["completions", "ctl"] {
        assert!(ctl.iter().any(|c| c == sub), "{sub} in {ctl:?}");
    }
}

#[test]
fn zsh_and_fish_accept_their_generated_scripts() {
    for (shell, check) in [("zsh", vec!["-n"]), ("fish", vec!["--no-execute"])] {
        let (_dir, script) = completion_script(shell);
        let text = std::fs::read_to_string(&script).unwrap();
        assert!(
            text.contains("headless") && text.contains("list-devices"),
            "{shell}"
        );
        let out = Command::new(shell)
            .args(&check)
            .arg(&script)
            .output()
            .unwrap_or_else(|e| panic!("{shell} must be installed (scripts/setup): {e}"));
        assert!(out.status.success(), "{shell}: {}", stderr(&out));
    }
    let out = run(&["completions", "tcsh"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "an unknown shell is a usage error"
    );
    assert!(
        stderr(&out).contains("bash"),
        "the choices are named: {}",
        stderr(&out)
    );
}

#[test]
fn the_man_pages_render_with_every_option_and_subcommand() {
    let out = run(&["manpage"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let dir = cromulent_test_support::process::TempDir::new("manpage");
    let page = dir.path("cromulent.1");
    std::fs::write(&page, &out.stdout).unwrap();
    let rendered = Command::new("man")
        .args(["-l", "-P", "cat"])
        .arg(&page)
        .env("MANWIDTH", "100")
        .output()
        .expect("man must be installed (scripts/setup)");
    assert!(rendered.status.success(), "{}", stderr(&rendered));
    let text = String::from_utf8_lossy(&rendered.stdout);
    for expected in [
        "NAME",
        "cromulent",
        "--server",
        "--list-devices",
        "headless",
        "ctl",
    ] {
        assert!(text.contains(expected), "{expected:?} missing:\n{text}");
    }
    // One page per subcommand with --dir.
    let pages = dir.path("man1");
    let out = run(&["manpage", "--dir", pages.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let headless = std::fs::read_to_string(pages.join("cromulent-headless.1")).unwrap();
    assert!(headless.contains("hook"), "{headless}");
    assert!(pages.join("cromulent-ctl.1").exists());
}
