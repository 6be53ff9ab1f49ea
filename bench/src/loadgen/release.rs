//! How long a `kill -9`ed cluster instance's seat stays taken. A watcher connects to a
//! surviving instance, a user sits in General through the doomed one; the doomed process is
//! sent SIGKILL, and the delay until the watcher reads that user's `leave` (broadcast by a
//! survivor once the doomed instance's lease has lapsed) is the figure. One run per call: the
//! caller starts the doomed instance afresh for the next.
//! It must never kill a process it was not given.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use cromulent_protocol::{ClientMsg, PresenceOp, ServerMsg, decode_server};
use tokio::time::{Instant, sleep, timeout};

use super::client::{self, Ws};

const VICTIM: &str = "release-victim";

/// How long the doomed instance may answer `cluster_unavailable` while it takes its lease.
const SEAT_WITHIN: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct Options {
    pub survivor: SocketAddr,
    pub doomed: SocketAddr,
    pub doomed_pid: u32,
    /// Give up waiting for the leave after this long.
    pub limit: Duration,
}

/// The delay from SIGKILL to the survivor's watcher reading the victim's `leave`.
pub async fn run(opts: &Options) -> anyhow::Result<Duration> {
    let source = client::source_addresses(1)[0];
    let mut watcher = client::connect(opts.survivor, source, "release-watcher").await?;
    let mut victim = client::connect(opts.doomed, source, VICTIM).await?;
    seat(&mut victim).await?;
    until_change(&mut watcher, PresenceOp::Join, Duration::from_secs(5))
        .await
        .context("the watcher never saw the victim sit down")?;
    let killed = Instant::now();
    let sent = std::process::Command::new("kill")
        .args(["-KILL", &opts.doomed_pid.to_string()])
        .status()
        .context("run kill")?;
    if !sent.success() {
        bail!("kill -KILL {} failed", opts.doomed_pid);
    }
    until_change(&mut watcher, PresenceOp::Leave, opts.limit)
        .await
        .with_context(|| format!("no leave within {:?} of the kill", opts.limit))?;
    Ok(killed.elapsed())
}

/// Join General, asking again while the instance answers `cluster_unavailable`.
async fn seat(victim: &mut Ws) -> anyhow::Result<()> {
    let deadline = Instant::now() + SEAT_WITHIN;
    loop {
        client::send(victim, &ClientMsg::Join { channel: 1 }).await?;
        loop {
            let text = client::next_text(victim).await?;
            match client::kind(&text) {
                "joined" => return Ok(()),
                "error" if text.contains("cluster_unavailable") && Instant::now() < deadline => {
                    break;
                }
                "error" => bail!("the victim could not sit: {text}"),
                _ => {}
            }
        }
        sleep(Duration::from_millis(100)).await;
    }
}

/// Read until a presence change `op` of the victim arrives, at most `limit`.
async fn until_change(watcher: &mut Ws, op: PresenceOp, limit: Duration) -> anyhow::Result<()> {
    timeout(limit, async {
        loop {
            let text = client::next_text(watcher).await?;
            if client::kind(&text) != "presence" {
                continue;
            }
            let Ok(ServerMsg::Presence { changes }) = decode_server(&text) else {
                bail!("a presence message that does not decode: {text}");
            };
            if changes
                .iter()
                .any(|c| c.op == op && c.member.user == VICTIM)
            {
                return Ok(());
            }
        }
    })
    .await
    .context("timed out")?
}
