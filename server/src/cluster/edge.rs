//! The cluster's I/O: two tasks between the hub and Redis. `commands` carries out the hub's
//! [`Op`]s in order on one reconnecting connection, those queued together pipelined in one
//! round trip and renews this node's lease (reaping
//! lapsed ones) every `renew_ms`; `subscription` listens to the presence events and this
//! node's inbox, and after every (re)subscription hands the hub a fresh snapshot, so a lost
//! connection costs a resync, never a wrong replica.
//!
//! Redis being down never ends either task or any client connection: requests fail (a join
//! is answered `cluster_unavailable`), failures are logged, and both tasks try again. It must
//! never hold a seat rule: that is the hub's and the scripts'.

use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::board::{Board, Keys};
use super::wire::{Claim, Inbox, Input, NameOutcome, NodeId, Op, SeatOutcome, SessionId, Why};
use std::path::Path;

use crate::chat_store::{Location, Retention, Store};
use crate::config::ClusterConfig;

/// Pause before subscribing again after the subscription failed or ended.
const RESUBSCRIBE_AFTER: Duration = Duration::from_millis(250);

/// How often the subscription's connection is checked with a PING.
const PING_EVERY: Duration = Duration::from_secs(5);

/// How long Redis may take to accept the subscription's connection or answer its PING.
const ANSWER_WITHIN: Duration = Duration::from_secs(2);

/// Most requests sent to Redis together (see [`batch_from`]).
const MAX_BATCH: usize = 64;

/// The hub's two ends of its link to the cluster edge.
pub struct Link {
    pub ops: mpsc::UnboundedSender<Op>,
    pub inputs: mpsc::UnboundedReceiver<Input>,
}

/// The running edge; [`Edge::stop`] ends it.
pub struct Edge {
    commands: JoinHandle<()>,
    subscription: JoinHandle<()>,
}

/// Start the edge for a new node of `config`'s cluster. Fails only for a URL that is not a
/// Redis URL (checked by config validation already); Redis itself is reached later.
/// The chat history lives in Redis too, kept to `retention`.
pub fn start(
    config: &ClusterConfig,
    retention: Retention,
) -> redis::RedisResult<(NodeId, Link, Edge)> {
    let node = format!("{}-{:08x}", config.instance_id, rand::random::<u32>());
    let client = redis::Client::open(config.redis_url.as_str())?;
    let board = Board::new(&client, config, retention, &node)?;
    let (ops_tx, ops_rx) = mpsc::unbounded_channel();
    let (inputs_tx, inputs_rx) = mpsc::unbounded_channel();
    tracing::info!(
        node,
        "cluster mode: sharing seats and presence through Redis"
    );
    let commands = tokio::spawn(commands(
        board.clone(),
        ops_rx,
        inputs_tx.clone(),
        config.renew_every(),
    ));
    let subscription = tokio::spawn(subscription(client, board, inputs_tx));
    let link = Link {
        ops: ops_tx,
        inputs: inputs_rx,
    };
    Ok((
        node,
        link,
        Edge {
            commands,
            subscription,
        },
    ))
}

/// Carry the history of a single server's chat file at `path` into the cluster's (the
/// first start of a former single server in cluster mode): each channel's messages newer
/// than what Redis holds for it, the newest `retention.per_channel` at most. Starting again
/// adds nothing. Never fails the start: a file it cannot read or a Redis it cannot reach
/// (within `ANSWER_WITHIN` per request) is logged and skipped; the file is left as it is.
pub async fn import_history(config: &ClusterConfig, retention: Retention, path: &Path) {
    let carried = async {
        let location = Location::File(path.to_owned());
        let (store, channels) = blocking(move || {
            let store = Store::open(&location, retention)?;
            let channels = store.channels()?;
            Ok((store, channels))
        })
        .await?;
        let client = redis::Client::open(config.redis_url.as_str()).map_err(|e| e.to_string())?;
        let mut board =
            Board::new(&client, config, retention, "import").map_err(|e| e.to_string())?;
        // Only what Redis does not hold yet is read: a start after the first reads nothing.
        let mut newest = Vec::new();
        for channel in channels {
            newest.push((
                channel,
                board.newest(channel).await.map_err(|e| e.to_string())?,
            ));
        }
        let keep = retention.per_channel;
        let exported = blocking(move || {
            newest
                .into_iter()
                .map(|(channel, after)| Ok((channel, store.export(channel, after, keep)?)))
                .collect::<Result<Vec<_>, _>>()
        })
        .await?;
        let mut added = 0;
        for (channel, messages) in &exported {
            added += board
                .import(*channel, messages)
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok::<_, String>(added)
    };
    match carried.await {
        Ok(0) => {}
        Ok(added) => tracing::info!(
            added,
            file = %path.display(),
            "cluster: the chat file's history carried into Redis"
        ),
        Err(error) => tracing::warn!(
            %error,
            file = %path.display(),
            "cluster: the chat file's history not carried into Redis"
        ),
    }
}

/// Run a step on the chat file off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, crate::chat_store::StoreError> + Send + 'static,
) -> Result<T, String> {
    match tokio::task::spawn_blocking(f).await {
        Ok(done) => done.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

impl Edge {
    /// Stop listening; wait (at most `deadline`) for the commands still queued and the
    /// release of this node's seats, which follow once the hub has let go of its link.
    pub async fn stop(self, deadline: Duration) {
        self.subscription.abort();
        if tokio::time::timeout(deadline, self.commands).await.is_err() {
            tracing::warn!("cluster: queued Redis commands not finished in time");
        }
    }
}

async fn commands(
    mut board: Board,
    mut ops: mpsc::UnboundedReceiver<Op>,
    inputs: mpsc::UnboundedSender<Input>,
    renew_every: Duration,
) {
    let mut renew = tokio::time::interval(renew_every);
    renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut snapshot_wanted = false;
    // An op taken from the queue that belongs to the next batch.
    let mut carried: Option<Op> = None;
    loop {
        tokio::select! {
            // The lease first: at start, no seat is asked for before it exists.
            biased;
            _ = renew.tick() => {
                match board.keep_alive().await {
                    Ok(0) => {}
                    Ok(released) => tracing::info!(released, "cluster: released the seats of lapsed instances"),
                    Err(e) => tracing::warn!(error = %e, "cluster: cannot renew this instance's lease"),
                }
                if snapshot_wanted {
                    snapshot_wanted = !send_snapshot(&mut board, &inputs).await;
                }
            }
            op = next_op(&mut carried, &mut ops) => {
                let Some(op) = op else { break };
                if let Op::Snapshot = op {
                    snapshot_wanted = !send_snapshot(&mut board, &inputs).await;
                    continue;
                }
                let batch = batch_from(op, &mut ops, &mut carried);
                let done = futures_util::future::join_all(
                    batch.into_iter().map(|op| perform(board.clone(), op, &inputs)),
                )
                .await;
                if done.contains(&false) {
                    // A change that did not reach Redis (a leave, flags, a park) leaves the
                    // hub's replica and Redis apart: the next renewal brings a snapshot, and
                    // the hub brings its sessions and Redis back in line from it.
                    snapshot_wanted = true;
                }
            }
        }
    }
    match board.retire().await {
        Ok(released) => tracing::info!(released, "cluster: left the cluster"),
        Err(e) => {
            tracing::warn!(error = %e, "cluster: could not release this instance's seats; they lapse with its lease")
        }
    }
}

/// The op carried over from the last batch, else the next in the queue.
async fn next_op(carried: &mut Option<Op>, ops: &mut mpsc::UnboundedReceiver<Op>) -> Option<Op> {
    match carried.take() {
        Some(op) => Some(op),
        None => ops.recv().await,
    }
}

/// `first` and the ops queued behind it, to be sent to Redis together (pipelined on the one
/// connection, so one round trip serves them all instead of one each). Redis runs them in the
/// order they are sent; a batch still never holds two ops of one user, token, sender or
/// destination (the second waits for the next batch), so that a seat asked again after a
/// lapsed lease, or a reconnection in the middle of a batch, cannot reorder what one client
/// asked. It ends before a snapshot (which runs alone) and at [`MAX_BATCH`] ops.
fn batch_from(
    first: Op,
    ops: &mut mpsc::UnboundedReceiver<Op>,
    carried: &mut Option<Op>,
) -> Vec<Op> {
    if order_key(&first) == OrderKey::Alone {
        return vec![first];
    }
    let mut batch = vec![first];
    while batch.len() < MAX_BATCH {
        let Ok(op) = ops.try_recv() else { break };
        let key = order_key(&op);
        if key == OrderKey::Alone || batch.iter().any(|b| order_key(b) == key) {
            *carried = Some(op);
            break;
        }
        batch.push(op);
    }
    batch
}

/// What must stay in order among a batch's ops: a user's seat, a sender's chat, a resume
/// token, the signals to one instance.
#[derive(PartialEq)]
enum OrderKey<'a> {
    User(&'a str),
    Sender(SessionId),
    Token(&'a str),
    Node(&'a str),
    Alone,
}

fn order_key(op: &Op) -> OrderKey<'_> {
    match op {
        Op::Seat { user, .. } | Op::Unseat { user, .. } | Op::Update { user, .. } => {
            OrderKey::User(user)
        }
        // A page asked for after a say holds the message.
        Op::Say { chat, .. } => OrderKey::Sender(chat.session),
        Op::History { session, .. } => OrderKey::Sender(*session),
        Op::Name { user, .. } | Op::Unname { user, .. } => OrderKey::User(user),
        // Replaces every name of this node: never beside another change of them.
        Op::Names { .. } => OrderKey::Alone,
        Op::Park { token, .. } | Op::Claim { token, .. } => OrderKey::Token(token),
        Op::Forward { node, .. } | Op::Forget { node, .. } => OrderKey::Node(node),
        Op::Snapshot => OrderKey::Alone,
    }
}

/// Carry out `op`; false when Redis could not be reached for it.
async fn perform(mut board: Board, op: Op, inputs: &mpsc::UnboundedSender<Input>) -> bool {
    let board = &mut board;
    let done = match op {
        Op::Seat {
            session,
            user,
            channel,
            member,
        } => {
            let mut outcome = board.seat(session, &user, channel, &member).await;
            if let Ok(SeatOutcome::Unavailable) = outcome {
                // This node's lease is gone (Redis restarted empty, or it lapsed and its seats
                // were released): this node is alive, so take a new one and ask again.
                if board.keep_alive().await.is_ok() {
                    outcome = board.seat(session, &user, channel, &member).await;
                }
            }
            let (outcome, done) = match outcome {
                Ok(outcome) => (outcome, Ok(())),
                Err(e) => (SeatOutcome::Unavailable, Err(e)),
            };
            let _ = inputs.send(Input::Seat {
                session,
                channel,
                outcome,
            });
            done
        }
        Op::Unseat { session, user, why } => {
            let done = board.unseat(session, &user, why).await;
            if done.is_err() && why == Why::Requested {
                let _ = inputs.send(Input::LeaveFailed { session });
            }
            done
        }
        Op::Update {
            session,
            user,
            member,
            fresh,
        } => board.update(session, &user, &member, fresh).await,
        Op::Forward { node, forward } => board.send_to(&node, &Inbox::Signal(forward)).await,
        Op::Forget { node, session } => board.send_to(&node, &Inbox::Forget { session }).await,
        Op::Park {
            token,
            parked,
            ttl_ms,
        } => board.park(&token, &parked, ttl_ms).await,
        Op::Claim { conn, token } => {
            let claimed = board.claim(&token).await;
            let claim = match &claimed {
                Ok(Some(parked)) => Claim::Won(parked.clone()),
                Ok(None) => Claim::Lost,
                Err(_) => Claim::Unreachable,
            };
            let _ = inputs.send(Input::Claimed { conn, claim });
            claimed.map(|_| ())
        }
        Op::Say { chat, floor } => match board.say(&chat, floor).await {
            Ok(_) => Ok(()),
            Err(e) => {
                let _ = inputs.send(Input::SayFailed {
                    session: chat.session,
                    channel: chat.message.channel,
                });
                Err(e)
            }
        },
        Op::Name {
            conn,
            user,
            skeletons,
        } => {
            let (outcome, done) = match board.name(&user, &skeletons).await {
                Ok(outcome) => (outcome, Ok(())),
                Err(e) => (NameOutcome::Unavailable, Err(e)),
            };
            if let Some(conn) = conn {
                let _ = inputs.send(Input::Named {
                    conn,
                    user,
                    skeletons,
                    outcome,
                });
            }
            done
        }
        Op::Unname { user, skeletons } => board.unname(&user, &skeletons).await,
        Op::Names { names } => board.set_names(&names).await,
        Op::History {
            conn,
            channel,
            before,
            limit,
            ..
        } => {
            let (page, done) = match board
                .history(channel, before, limit, crate::hub_actor::unix_ms())
                .await
            {
                Ok(page) => (Some(page), Ok(())),
                Err(e) => (None, Err(e)),
            };
            let _ = inputs.send(Input::History {
                conn,
                channel,
                page,
            });
            done
        }
        Op::Snapshot => Ok(()),
    };
    if let Err(e) = &done {
        tracing::warn!(error = %e, "cluster: a Redis request failed");
    }
    done.is_ok()
}

/// True when the snapshot reached the hub.
async fn send_snapshot(board: &mut Board, inputs: &mpsc::UnboundedSender<Input>) -> bool {
    match board.snapshot().await {
        Ok(snapshot) => {
            let _ = inputs.send(Input::Snapshot(snapshot));
            true
        }
        Err(e) => {
            tracing::warn!(error = %e, "cluster: cannot read the seats; trying again");
            false
        }
    }
}

async fn subscription(
    client: redis::Client,
    mut board: Board,
    inputs: mpsc::UnboundedSender<Input>,
) {
    while !inputs.is_closed() {
        if let Err(e) = listen(&client, &mut board, &inputs).await {
            tracing::warn!(error = %e, "cluster: presence subscription failed; subscribing again");
        } else {
            tracing::warn!("cluster: presence subscription ended; subscribing again");
        }
        tokio::time::sleep(RESUBSCRIBE_AFTER).await;
    }
}

/// Subscribe, hand the hub a snapshot taken after the subscription began (so no event falls
/// between them), then pass every message on until the connection ends.
async fn listen(
    client: &redis::Client,
    board: &mut Board,
    inputs: &mpsc::UnboundedSender<Input>,
) -> redis::RedisResult<()> {
    let keys: Keys = board.keys.clone();
    let connect = client.get_async_pubsub();
    let mut pubsub = tokio::time::timeout(ANSWER_WITHIN, connect)
        .await
        .map_err(|_| timed_out())??;
    pubsub.subscribe(&keys.presence).await?;
    pubsub.subscribe(&keys.inbox).await?;
    pubsub.subscribe(&keys.chat).await?;
    let snapshot = board.snapshot().await?;
    let _ = inputs.send(Input::Snapshot(snapshot));
    let (mut sink, mut messages) = pubsub.split();
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY);
    loop {
        tokio::select! {
            msg = messages.next() => {
                let Some(msg) = msg else { return Ok(()) };
                let channel = msg.get_channel_name();
                match decode(&keys, channel, msg.get_payload_bytes()) {
                    Ok(input) => {
                        if inputs.send(input).is_err() {
                            return Ok(());
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, channel, "cluster: skipping a message that does not decode")
                    }
                }
            }
            // A connection that went silent without closing (a hung Redis, a cut network)
            // is given up, so that the next one brings a fresh snapshot.
            _ = ping.tick() => {
                tokio::time::timeout(ANSWER_WITHIN, sink.ping::<redis::Value>())
                    .await
                    .map_err(|_| timed_out())??;
            }
        }
    }
}

fn timed_out() -> redis::RedisError {
    std::io::Error::from(std::io::ErrorKind::TimedOut).into()
}

/// What a message on one of our pub/sub channels says.
fn decode(keys: &Keys, channel: &str, payload: &[u8]) -> Result<Input, String> {
    if channel == keys.presence {
        return serde_json::from_slice(payload)
            .map(Input::Event)
            .map_err(|e| e.to_string());
    }
    if channel == keys.chat {
        // "<id> <Chat JSON>" (see lua/say.lua).
        let text = std::str::from_utf8(payload).map_err(|e| e.to_string())?;
        let (id, json) = text.split_once(' ').ok_or("no id before the message")?;
        let mut chat: super::wire::Chat = serde_json::from_str(json).map_err(|e| e.to_string())?;
        chat.message.id = id.parse().map_err(|e| format!("bad id {id:?}: {e}"))?;
        return Ok(Input::Chat(chat));
    }
    match serde_json::from_slice(payload).map_err(|e| e.to_string())? {
        Inbox::Signal(forward) => Ok(Input::Forwarded(forward)),
        Inbox::Forget { session } => Ok(Input::Forget { session }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unseat(session: SessionId, user: &str) -> Op {
        Op::Unseat {
            session,
            user: user.into(),
            why: Why::Requested,
        }
    }

    fn claim(conn: u64, token: &str) -> Op {
        Op::Claim {
            conn,
            token: token.into(),
        }
    }

    /// The batches `batch_from` makes of `queued`, in order.
    fn batches(queued: Vec<Op>) -> Vec<Vec<Op>> {
        let (tx, mut rx) = mpsc::unbounded_channel();
        for op in queued {
            tx.send(op).unwrap();
        }
        drop(tx);
        let mut carried = None;
        let mut out = Vec::new();
        while let Some(first) = carried.take().or_else(|| rx.try_recv().ok()) {
            out.push(batch_from(first, &mut rx, &mut carried));
        }
        out
    }

    #[test]
    fn queued_ops_go_together_until_one_would_reorder_a_users_requests() {
        let got = batches(vec![
            unseat(1, "ann"),
            unseat(2, "bob"),
            claim(7, "t1"),
            unseat(3, "ann"),
            unseat(4, "cy"),
        ]);
        assert_eq!(
            got,
            [
                vec![unseat(1, "ann"), unseat(2, "bob"), claim(7, "t1")],
                vec![unseat(3, "ann"), unseat(4, "cy")],
            ]
        );
    }

    #[test]
    fn a_snapshot_ends_a_batch_and_a_batch_has_a_bound() {
        let got = batches(vec![unseat(1, "ann"), Op::Snapshot, claim(7, "t1")]);
        assert_eq!(
            got,
            [
                vec![unseat(1, "ann")],
                vec![Op::Snapshot],
                vec![claim(7, "t1")]
            ]
        );
        let many: Vec<Op> = (0..MAX_BATCH as u64 + 1)
            .map(|i| unseat(i, &format!("u{i}")))
            .collect();
        let sizes: Vec<usize> = batches(many).iter().map(Vec::len).collect();
        assert_eq!(sizes, [MAX_BATCH, 1]);
    }
}
