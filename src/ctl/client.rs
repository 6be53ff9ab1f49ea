//! `cromulent ctl`: send one request to a running client's control socket and print the
//! answer (or, for `events`, every event line until the client ends or ctrl-c).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use clap::Args;

use super::request;
use super::socket::socket_dir;

/// Options of `cromulent ctl`.
#[derive(Args, Debug, Clone)]
pub struct CtlArgs {
    /// The client's socket (default: the newest client's in $XDG_RUNTIME_DIR/cromulent/).
    #[arg(long, env = "CROMULENT_CTL", value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// talk press|release|toggle, mute [on|off|toggle], deafen [on|off|toggle],
    /// join CHANNEL, leave, say TEXT, status [--json], events
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub request: Vec<String>,
}

/// Exit statuses: 0 answered `ok` (or a status), 1 the client said no, 2 no client or a bad
/// request.
pub fn main(args: CtlArgs) -> i32 {
    let line = args.request.join(" ");
    if let Err(e) = request::parse(&line) {
        eprintln!("cromulent ctl: {e}");
        return 2;
    }
    let env = |k: &str| std::env::var(k).ok();
    let stream = match &args.socket {
        Some(path) => UnixStream::connect(path).map_err(|e| format!("{}: {e}", path.display())),
        None => connect_newest(&socket_dir(&env)),
    };
    let mut stream = match stream {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cromulent ctl: no running client to talk to: {e}");
            return 2;
        }
    };
    if let Err(e) = stream.write_all(format!("{line}\n").as_bytes()) {
        eprintln!("cromulent ctl: {e}");
        return 2;
    }
    let mut status = 0;
    let stdout = std::io::stdout();
    for (i, answer) in BufReader::new(stream).lines().enumerate() {
        let Ok(answer) = answer else { break };
        if i == 0 && answer.starts_with("error: ") {
            status = 1;
        }
        let mut out = stdout.lock();
        if writeln!(out, "{answer}")
            .and_then(|()| out.flush())
            .is_err()
        {
            break;
        }
    }
    status
}

/// The newest client's socket in `dir` that answers.
fn connect_newest(dir: &Path) -> Result<UnixStream, String> {
    let mut sockets: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.starts_with("ctl-") && n.ends_with(".sock"))
        })
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    sockets.sort();
    for (_, path) in sockets.iter().rev() {
        if let Ok(s) = UnixStream::connect(path) {
            return Ok(s);
        }
    }
    Err(format!("no client socket answers in {}", dir.display()))
}
