//! The chat history's storage: one SQLite file (rusqlite with SQLite bundled), in WAL mode,
//! schema versions applied in order (`PRAGMA user_version`), written by this server alone
//! (message ids are assigned in the hub's memory, so two servers must never share a file: an
//! advisory lock on `<file>.lock` is held while it is open; readers such as a backup with the
//! `sqlite3` tool may still open the file), and trimmed to the retention settings. `:memory:`
//! keeps history for the process's life (tests, the demo).
//!
//! One thread owns the connection ([`spawn`]): the hub hands it inserts and page requests in
//! one FIFO, so a page asked for after a message was sent always holds it, and the hub never
//! waits on the disk. Inserts that arrive together are written in one transaction.
//! Must never panic on a bad file: every failure at start is a [`StoreError`] that says what
//! to do, and at run time a failed write is logged and a failed read answered
//! `history_unavailable`.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use cromulent_protocol::{ChannelId, ChatMessage, MessageId};
use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, params};

/// Where the history lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// Nowhere but this process's memory: gone when it ends.
    Memory,
    /// A database file (created with its directory when missing).
    File(PathBuf),
}

/// How much history is kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    /// The newest this many messages of each channel; older ones are deleted.
    pub per_channel: Option<u64>,
    /// Messages older than this are deleted.
    pub max_age: Option<Duration>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create the chat data directory {path}: {source}")]
    CreateDir {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "cannot open the chat database {path} for writing ({source}); check the path and its permissions, or set chat.database"
    )]
    Unwritable {
        path: String,
        source: rusqlite::Error,
    },
    #[error(
        "the chat database {path} is locked by another process: is another cromulent-server using it? (each server needs its own chat.database)"
    )]
    Locked { path: String },
    #[error(
        "the chat database {path} is damaged or not a database ({source}); move it away to start a new history"
    )]
    Corrupt {
        path: String,
        source: rusqlite::Error,
    },
    #[error(
        "the chat database {path} has schema version {found}; this server knows up to {known}: use a newer server"
    )]
    TooNew {
        path: String,
        found: i64,
        known: i64,
    },
    #[error("chat database {path}: {source}")]
    Sql {
        path: String,
        source: rusqlite::Error,
    },
}

/// The schema, one step per version; version N is the N-th entry.
const MIGRATIONS: &[&str] = &[
    // 1: messages, read newest-first per channel.
    "CREATE TABLE messages (
         id      INTEGER PRIMARY KEY,
         channel INTEGER NOT NULL,
         user    TEXT    NOT NULL,
         name    TEXT    NOT NULL,
         time    INTEGER NOT NULL,
         text    TEXT    NOT NULL
     );
     CREATE INDEX messages_by_channel ON messages (channel, id);",
];

/// An open history.
pub struct Store {
    conn: Connection,
    label: String,
    retention: Retention,
    /// The writer's lock on `<file>.lock`, held as long as the store is open.
    _writer: Option<std::fs::File>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.label).finish()
    }
}

impl Store {
    /// Open (creating when missing), take the file for this server alone, bring the schema up
    /// to date.
    pub fn open(location: &Location, retention: Retention) -> Result<Self, StoreError> {
        let (conn, label, writer) = match location {
            Location::Memory => {
                let conn = Connection::open_in_memory().map_err(|source| StoreError::Sql {
                    path: ":memory:".into(),
                    source,
                })?;
                (conn, ":memory:".to_owned(), None)
            }
            Location::File(path) => {
                let writer = take_writer_lock(path)?;
                (open_file(path)?, path.display().to_string(), Some(writer))
            }
        };
        let mut store = Self {
            conn,
            label,
            retention,
            _writer: writer,
        };
        store.prepare(location)?;
        Ok(store)
    }

    fn classify(&self, source: rusqlite::Error) -> StoreError {
        classify(&self.label, source)
    }

    fn prepare(&mut self, location: &Location) -> Result<(), StoreError> {
        if matches!(location, Location::File(_)) {
            let mode: String = self
                .conn
                .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
                .map_err(|e| self.classify(e))?;
            if !mode.eq_ignore_ascii_case("wal") {
                tracing::warn!(path = %self.label, mode, "chat database not in WAL mode");
            }
            self.conn
                .pragma_update(None, "synchronous", "NORMAL")
                .map_err(|e| self.classify(e))?;
        }
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| classify(&self.label, e))?;
        let version: i64 = tx
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| classify(&self.label, e))?;
        let known = MIGRATIONS.len() as i64;
        if version > known {
            return Err(StoreError::TooNew {
                path: self.label.clone(),
                found: version,
                known,
            });
        }
        for (i, step) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            tx.execute_batch(step)
                .map_err(|e| classify(&self.label, e))?;
            tx.pragma_update(None, "user_version", i as i64 + 1)
                .map_err(|e| classify(&self.label, e))?;
        }
        tx.commit().map_err(|e| classify(&self.label, e))?;
        if version < known {
            tracing::info!(path = %self.label, from = version, to = known, "chat database schema updated");
        }
        Ok(())
    }

    /// The id the next message takes: one past the largest ever stored.
    pub fn next_id(&self) -> Result<MessageId, StoreError> {
        let max: Option<i64> = self
            .conn
            .query_row("SELECT max(id) FROM messages", [], |r| r.get(0))
            .map_err(|e| self.classify(e))?;
        Ok(max.map_or(1, |m| m as MessageId + 1))
    }

    /// The channels that have messages, in order.
    pub fn channels(&self) -> Result<Vec<ChannelId>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT DISTINCT channel FROM messages ORDER BY channel")
            .map_err(|e| self.classify(e))?;
        stmt.query_map([], |r| r.get(0))
            .map_err(|e| self.classify(e))?
            .collect::<Result<_, _>>()
            .map_err(|e| self.classify(e))
    }

    /// `channel`'s messages above id `after`, oldest first, the newest `keep` at most (to carry
    /// a history into a cluster's).
    pub fn export(
        &self,
        channel: ChannelId,
        after: MessageId,
        keep: Option<u64>,
    ) -> Result<Vec<ChatMessage>, StoreError> {
        let limit = keep.map_or(i64::MAX, |k| k.min(i64::MAX as u64) as i64);
        let after = after.min(i64::MAX as u64) as i64;
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, channel, user, name, time, text FROM messages
                 WHERE channel = ?1 AND id > ?2 ORDER BY id DESC LIMIT ?3",
            )
            .map_err(|e| self.classify(e))?;
        let mut messages: Vec<ChatMessage> = stmt
            .query_map(params![channel, after, limit], row_message)
            .map_err(|e| self.classify(e))?
            .collect::<Result<_, _>>()
            .map_err(|e| self.classify(e))?;
        messages.reverse();
        Ok(messages)
    }

    /// Store messages, all or none.
    pub fn insert(&mut self, messages: &[ChatMessage]) -> Result<(), StoreError> {
        let label = self.label.clone();
        let tx = self.conn.transaction().map_err(|e| classify(&label, e))?;
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO messages (id, channel, user, name, time, text)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .map_err(|e| classify(&label, e))?;
            for m in messages {
                stmt.execute(params![
                    m.id as i64,
                    m.channel,
                    m.user,
                    m.name,
                    m.time as i64,
                    m.text
                ])
                .map_err(|e| classify(&label, e))?;
            }
        }
        tx.commit().map_err(|e| classify(&label, e))
    }

    /// Up to `limit` messages of `channel` older than `before` (or the newest), oldest first,
    /// and whether older ones remain.
    pub fn page(
        &self,
        channel: ChannelId,
        before: Option<MessageId>,
        limit: u32,
    ) -> Result<Page, StoreError> {
        let before = before.map_or(i64::MAX, |b| b.min(i64::MAX as u64) as i64);
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, channel, user, name, time, text FROM messages
                 WHERE channel = ?1 AND id < ?2 ORDER BY id DESC LIMIT ?3",
            )
            .map_err(|e| self.classify(e))?;
        let rows = stmt
            .query_map(params![channel, before, i64::from(limit) + 1], row_message)
            .map_err(|e| self.classify(e))?;
        let mut messages = rows
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.classify(e))?;
        let more = messages.len() > limit as usize;
        messages.truncate(limit as usize);
        messages.reverse();
        Ok((messages, more))
    }

    /// Delete what the retention settings no longer keep; how many messages went.
    pub fn prune(&mut self, now_ms: u64) -> Result<usize, StoreError> {
        let mut deleted = 0;
        if let Some(keep) = self.retention.per_channel {
            for channel in self.channels()? {
                let cut: Option<i64> = self
                    .conn
                    .query_row(
                        "SELECT id FROM messages WHERE channel = ?1
                         ORDER BY id DESC LIMIT 1 OFFSET ?2",
                        params![channel, keep.min(i64::MAX as u64) as i64],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(|e| self.classify(e))?;
                if let Some(cut) = cut {
                    deleted += self
                        .conn
                        .execute(
                            "DELETE FROM messages WHERE channel = ?1 AND id <= ?2",
                            params![channel, cut],
                        )
                        .map_err(|e| self.classify(e))?;
                }
            }
        }
        if let Some(age) = self.retention.max_age {
            let cutoff = now_ms.saturating_sub(age.as_millis() as u64);
            // Ids grow with time: delete up to the newest message older than the cutoff.
            let cut: Option<i64> = self
                .conn
                .query_row(
                    "SELECT id FROM messages WHERE time < ?1 ORDER BY id DESC LIMIT 1",
                    params![cutoff as i64],
                    |r| r.get(0),
                )
                .optional()
                .map_err(|e| self.classify(e))?;
            if let Some(cut) = cut {
                deleted += self
                    .conn
                    .execute("DELETE FROM messages WHERE id <= ?1", params![cut])
                    .map_err(|e| self.classify(e))?;
            }
        }
        Ok(deleted)
    }
}

/// Create the database's directory and take the one writer's lock on `<file>.lock`.
fn take_writer_lock(path: &Path) -> Result<std::fs::File, StoreError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
            path: dir.display().to_string(),
            source,
        })?;
    }
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    let lock_path = PathBuf::from(lock_path);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| StoreError::Unwritable {
            path: path.display().to_string(),
            source: rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
                Some(format!("{}: {e}", lock_path.display())),
            ),
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::Locked {
            path: path.display().to_string(),
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(StoreError::Unwritable {
            path: path.display().to_string(),
            source: rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
                Some(format!("cannot lock {}: {e}", lock_path.display())),
            ),
        }),
    }
}

fn open_file(path: &Path) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    Connection::open_with_flags(path, flags).map_err(|e| classify(&path.display().to_string(), e))
}

/// Name an SQLite failure by what the operator must do about it.
fn classify(path: &str, source: rusqlite::Error) -> StoreError {
    let path = path.to_owned();
    match source.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StoreError::Locked { path },
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => {
            StoreError::Corrupt { path, source }
        }
        Some(
            ErrorCode::CannotOpen
            | ErrorCode::ReadOnly
            | ErrorCode::PermissionDenied
            | ErrorCode::DiskFull
            | ErrorCode::SystemIoFailure,
        ) => StoreError::Unwritable { path, source },
        _ => StoreError::Sql { path, source },
    }
}

/// A page of history: the messages, oldest first, and whether older ones remain.
pub type Page = (Vec<ChatMessage>, bool);

/// Called on the store thread with a page (or the failure).
pub type PageReply = Box<dyn FnOnce(Result<Page, StoreError>) + Send>;

/// What the store thread is asked to do.
pub enum Job {
    Insert(ChatMessage),
    Page {
        channel: ChannelId,
        before: Option<MessageId>,
        limit: u32,
        reply: PageReply,
    },
}

/// The way in to the store thread. Dropping every handle lets the thread finish what is
/// queued, then end.
#[derive(Clone)]
pub struct StoreHandle {
    tx: mpsc::Sender<Job>,
}

impl StoreHandle {
    pub fn send(&self, job: Job) {
        // The thread ends only when every handle is gone.
        let _ = self.tx.send(job);
    }
}

/// A `messages` row (id, channel, user, name, time, text).
fn row_message(r: &rusqlite::Row<'_>) -> rusqlite::Result<ChatMessage> {
    Ok(ChatMessage {
        id: r.get::<_, i64>(0)? as MessageId,
        channel: r.get(1)?,
        user: r.get(2)?,
        name: r.get(3)?,
        time: r.get::<_, i64>(4)? as u64,
        text: r.get(5)?,
    })
}

/// How often retention runs (and after how many inserts at most).
const PRUNE_EVERY: Duration = Duration::from_secs(600);
const PRUNE_AFTER_INSERTS: usize = 1_000;

/// Run `store` on a thread of its own; `now_ms` is the wall clock (Unix ms) for retention.
pub fn spawn(
    mut store: Store,
    now_ms: fn() -> u64,
) -> std::io::Result<(StoreHandle, std::thread::JoinHandle<()>)> {
    let (tx, rx) = mpsc::channel::<Job>();
    let thread = std::thread::Builder::new()
        .name("chat-store".into())
        .spawn(move || {
            prune(&mut store, now_ms());
            let mut last_prune = Instant::now();
            let mut since_prune = 0usize;
            let mut batch = Vec::new();
            while let Ok(job) = rx.recv() {
                let mut next = Some(job);
                while let Some(job) = next {
                    match job {
                        Job::Insert(m) => batch.push(m),
                        Job::Page {
                            channel,
                            before,
                            limit,
                            reply,
                        } => {
                            since_prune += flush(&mut store, &mut batch);
                            reply(store.page(channel, before, limit));
                        }
                    }
                    next = rx.try_recv().ok();
                }
                since_prune += flush(&mut store, &mut batch);
                if since_prune >= PRUNE_AFTER_INSERTS || last_prune.elapsed() >= PRUNE_EVERY {
                    prune(&mut store, now_ms());
                    last_prune = Instant::now();
                    since_prune = 0;
                }
            }
            tracing::debug!("chat store finished");
        })?;
    Ok((StoreHandle { tx }, thread))
}

/// Write the batch; how many messages it held.
fn flush(store: &mut Store, batch: &mut Vec<ChatMessage>) -> usize {
    if batch.is_empty() {
        return 0;
    }
    let n = batch.len();
    if let Err(e) = store.insert(batch) {
        tracing::error!(error = %e, messages = n, "chat messages not stored");
    }
    batch.clear();
    n
}

fn prune(store: &mut Store, now_ms: u64) {
    match store.prune(now_ms) {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            deleted = n,
            "chat history trimmed to the retention settings"
        ),
        Err(e) => tracing::error!(error = %e, "chat retention failed"),
    }
}

#[cfg(test)]
mod tests;
