//! The task that owns the [`Hub`]: connections send it [`Command`]s over one channel, it
//! applies each as one atomic step and carries out the effects in order — so every client sees
//! presence changes in the same order, and a switch's leave and join arrive together.
//!
//! It never waits on a client: each connection has an outbound queue bounded in bytes
//! ([`crate::outbound`]), and a client too slow to drain it is cut off (`slow_consumer`)
//! instead of stalling everyone. Its session is detached in the same step, so its seat is
//! released and the `leave` broadcast at once, whether or not it ever reads again.
//! Chat messages go out live first; the history's writes and reads go to the chat store's
//! thread in the same order ([`crate::chat_store`]), so the hub never waits on the disk.
//! In cluster mode the same holds for Redis: requests go to the cluster edge
//! ([`crate::cluster::edge`]) in order, and its reports come back as one more input.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use cromulent_protocol::{ChannelId, ErrorReason, IceConfig, MessageId, ServerMsg, Signal, UserId};
use rand::RngCore;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::chat_store::{Job, StoreHandle};
use crate::cluster::edge::Link;
use crate::cluster::wire::{Input, Op};
use crate::hub::{Attach, ConnId, Effect, Hub, VoiceFlags};
use crate::outbound::OutboundTx;

/// What a connection asks of the hub.
#[derive(Debug)]
pub enum Command {
    /// A valid hello: register the connection's outbound queue and kick switch, then attach.
    Attach {
        attach: Box<Attach>,
        outbound: OutboundTx,
        kick: oneshot::Sender<ErrorReason>,
    },
    Detach {
        conn: ConnId,
    },
    Join {
        conn: ConnId,
        channel: ChannelId,
        ice: IceConfig,
    },
    Leave {
        conn: ConnId,
    },
    VoiceState {
        conn: ConnId,
        flags: VoiceFlags,
    },
    Relay {
        conn: ConnId,
        to: UserId,
        signal: Signal,
    },
    Watch {
        conn: ConnId,
        channel: Option<ChannelId>,
    },
    Say {
        conn: ConnId,
        channel: ChannelId,
        text: String,
    },
    History {
        conn: ConnId,
        channel: ChannelId,
        before: Option<MessageId>,
        limit: Option<u32>,
    },
}

/// The way in to the hub task.
#[derive(Debug, Clone)]
pub struct HubHandle {
    tx: mpsc::UnboundedSender<Command>,
}

impl HubHandle {
    /// Queue a command. Unbounded so that `Drop` guards can always report a detach; each
    /// connection's input is bounded by its rate limit.
    pub fn send(&self, cmd: Command) {
        // The hub task ends only after every connection has; a failed send means shutdown,
        // when there is nothing left to tell.
        let _ = self.tx.send(cmd);
    }
}

/// A fresh, unguessable resume token.
pub fn new_resume_token() -> String {
    let mut bytes = [0u8; 18];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

struct Registered {
    outbound: OutboundTx,
    kick: oneshot::Sender<ErrorReason>,
    /// Its `welcome` has gone out. Broadcasts skip a connection until then: in cluster mode
    /// its resume token is claimed in Redis first, and presence must not come before the
    /// welcome (one instance welcomes in the attach step itself, so this never skips there).
    welcomed: bool,
}

/// Where the hub's effects go besides the clients: the chat store (one instance), or the
/// cluster edge (cluster mode, whose history is in Redis).
struct Outlets {
    store: Option<StoreHandle>,
    cluster: Option<mpsc::UnboundedSender<Op>>,
}

/// Start the hub task (in cluster mode with its `cluster` link). It ends when every
/// [`HubHandle`] is dropped, and then lets go of the link.
pub fn spawn(
    hub: Hub,
    expire_every: Duration,
    store: Option<StoreHandle>,
    cluster: Option<Link>,
) -> HubHandle {
    let (tx, rx) = mpsc::unbounded_channel();
    let (ops, inputs) = match cluster {
        Some(link) => (Some(link.ops), Some(link.inputs)),
        None => (None, None),
    };
    let outlets = Outlets {
        store,
        cluster: ops,
    };
    tokio::spawn(run(hub, rx, expire_every, outlets, inputs));
    HubHandle { tx }
}

impl Command {
    /// The connection a request after `hello` comes from (`None` for attach and detach).
    fn request_of(&self) -> Option<ConnId> {
        match self {
            Command::Attach { .. } | Command::Detach { .. } => None,
            Command::Join { conn, .. }
            | Command::Leave { conn }
            | Command::VoiceState { conn, .. }
            | Command::Relay { conn, .. }
            | Command::Watch { conn, .. }
            | Command::Say { conn, .. }
            | Command::History { conn, .. } => Some(*conn),
        }
    }
}

async fn run(
    mut hub: Hub,
    mut rx: mpsc::UnboundedReceiver<Command>,
    expire_every: Duration,
    outlets: Outlets,
    mut inputs: Option<mpsc::UnboundedReceiver<Input>>,
) {
    let mut conns: HashMap<ConnId, Registered> = HashMap::new();
    // Requests of connections not welcomed yet (cluster mode: waiting for Redis), in order,
    // carried out once they are (a client may send `join` right behind `hello`).
    let mut held: HashMap<ConnId, Vec<Command>> = HashMap::new();
    let mut expire = tokio::time::interval(expire_every);
    loop {
        tokio::select! {
            cmd = rx.recv() => {
                let Some(cmd) = cmd else { break };
                if let Command::Detach { conn } = &cmd {
                    held.remove(conn);
                }
                if let Some(conn) = cmd.request_of().filter(|&c| hub.is_pending(c)) {
                    held.entry(conn).or_default().push(cmd);
                    continue;
                }
                let effects = apply(&mut hub, &mut conns, cmd);
                carry_out(&mut hub, &mut conns, &outlets, effects);
                ask_cluster(&mut hub, &outlets);
            }
            Some(input) = next_input(&mut inputs) => {
                let effects = hub.cluster_input(input, Instant::now());
                carry_out(&mut hub, &mut conns, &outlets, effects);
                let ready: Vec<ConnId> =
                    held.keys().copied().filter(|&c| !hub.is_pending(c)).collect();
                for conn in ready {
                    for cmd in held.remove(&conn).unwrap_or_default() {
                        let effects = apply(&mut hub, &mut conns, cmd);
                        carry_out(&mut hub, &mut conns, &outlets, effects);
                    }
                }
                ask_cluster(&mut hub, &outlets);
            }
            _ = expire.tick() => {
                hub.expire(Instant::now());
                // Names no session holds any more are given back at once.
                ask_cluster(&mut hub, &outlets);
            }
        }
    }
    tracing::debug!("hub task finished");
}

/// Hand what the hub's last step asks of Redis to the cluster edge, in order.
fn ask_cluster(hub: &mut Hub, outlets: &Outlets) {
    let Some(edge) = &outlets.cluster else { return };
    for op in hub.take_cluster_ops() {
        // The edge ends only after the hub; a failed send means shutdown.
        let _ = edge.send(op);
    }
}

/// The cluster edge's next report; never, without a cluster (or once the edge is gone).
async fn next_input(inputs: &mut Option<mpsc::UnboundedReceiver<Input>>) -> Option<Input> {
    match inputs {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

fn apply(hub: &mut Hub, conns: &mut HashMap<ConnId, Registered>, cmd: Command) -> Vec<Effect> {
    match cmd {
        Command::Attach {
            attach,
            outbound,
            kick,
        } => {
            conns.insert(
                attach.conn,
                Registered {
                    outbound,
                    kick,
                    welcomed: false,
                },
            );
            hub.attach(*attach, Instant::now())
        }
        Command::Detach { conn } => {
            conns.remove(&conn);
            hub.detach(conn, Instant::now())
        }
        Command::Join { conn, channel, ice } => hub.join(conn, channel, ice),
        Command::Leave { conn } => hub.leave(conn),
        Command::VoiceState { conn, flags } => hub.voice_state(conn, flags),
        Command::Relay { conn, to, signal } => hub.relay(conn, &to, signal),
        Command::Watch { conn, channel } => hub.watch(conn, channel),
        Command::Say {
            conn,
            channel,
            text,
        } => hub.say(conn, channel, &text, unix_ms()),
        Command::History {
            conn,
            channel,
            before,
            limit,
        } => hub.history(conn, channel, before, limit),
    }
}

/// The wall clock, Unix milliseconds: chat messages' time.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Carry out `effects` in order. Clients found too slow are kicked and detached afterwards,
/// and what their detach causes (the `leave` of their seat) is carried out in turn.
fn carry_out(
    hub: &mut Hub,
    conns: &mut HashMap<ConnId, Registered>,
    outlets: &Outlets,
    effects: Vec<Effect>,
) {
    let mut effects = effects;
    loop {
        let slow = deliver_all(conns, outlets, effects);
        if slow.is_empty() {
            return;
        }
        effects = Vec::new();
        for conn in slow {
            if conns.contains_key(&conn) {
                tracing::warn!(conn, "client not reading its messages; dropping it");
                kick(conns, conn, ErrorReason::SlowConsumer);
                effects.extend(hub.detach(conn, Instant::now()));
            }
        }
    }
}

/// Carry out one batch of effects; the connections whose queue was full.
fn deliver_all(
    conns: &mut HashMap<ConnId, Registered>,
    outlets: &Outlets,
    effects: Vec<Effect>,
) -> Vec<ConnId> {
    let store = outlets.store.as_ref();
    let mut slow = Vec::new();
    for effect in effects {
        match effect {
            Effect::Send(conn, msg) => {
                if let Some(r) = conns.get_mut(&conn) {
                    r.welcomed |= matches!(msg, ServerMsg::Welcome { .. });
                    if !deliver(r, encode(&msg)) {
                        slow.push(conn);
                    }
                }
            }
            Effect::Broadcast(msg) => {
                let text = encode(&msg);
                for (conn, r) in conns.iter().filter(|(_, r)| r.welcomed) {
                    if !deliver(r, text.clone()) {
                        slow.push(*conn);
                    }
                }
            }
            Effect::Close(conn, reason) => kick(conns, conn, reason),
            Effect::SendMany(to, msg) => {
                let text = encode(&msg);
                for conn in to {
                    if let Some(r) = conns.get(&conn)
                        && !deliver(r, text.clone())
                    {
                        slow.push(conn);
                    }
                }
            }
            // The hub asks for neither in cluster mode (no store there).
            Effect::Store(message) => {
                if let Some(store) = store {
                    store.send(Job::Insert(message));
                }
            }
            Effect::Page {
                conn,
                channel,
                before,
                limit,
            } => {
                let (Some(r), Some(store)) = (conns.get(&conn), store) else {
                    continue;
                };
                let outbound = r.outbound.clone();
                store.send(Job::Page {
                    channel,
                    before,
                    limit,
                    reply: Box::new(move |page| {
                        let msg = match page {
                            Ok((messages, more)) => ServerMsg::History {
                                channel,
                                messages,
                                more,
                            },
                            Err(e) => {
                                tracing::error!(error = %e, "chat history not read");
                                ServerMsg::error_in(
                                    ErrorReason::HistoryUnavailable,
                                    "the chat history cannot be read now",
                                    Some(channel),
                                )
                            }
                        };
                        // A client too slow to take it is dropped by the hub's next delivery.
                        let _ = outbound.push(encode(&msg));
                    }),
                });
            }
        }
    }
    slow.sort_unstable();
    slow.dedup();
    slow
}

fn encode(msg: &ServerMsg) -> Utf8Bytes {
    Utf8Bytes::from(msg.to_json())
}

/// False when the client's queue is over its byte budget. A closed queue (connection
/// already ending) is fine.
fn deliver(r: &Registered, text: Utf8Bytes) -> bool {
    r.outbound.push(text).is_ok()
}

fn kick(conns: &mut HashMap<ConnId, Registered>, conn: ConnId, reason: ErrorReason) {
    if let Some(r) = conns.remove(&conn) {
        // The connection may already be gone; then there is nobody to tell.
        let _ = r.kick.send(reason);
    }
}
