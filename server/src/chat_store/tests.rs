use super::*;
use cromulent_test_support::process::TempDir;

fn msg(id: MessageId, channel: ChannelId, time: u64) -> ChatMessage {
    ChatMessage {
        id,
        channel,
        user: "alice".into(),
        name: "Alice".into(),
        time,
        text: format!("message {id}"),
    }
}

fn memory(retention: Retention) -> Store {
    Store::open(&Location::Memory, retention).unwrap()
}

fn ids(page: &[ChatMessage]) -> Vec<MessageId> {
    page.iter().map(|m| m.id).collect()
}

#[test]
fn pages_are_oldest_first_per_channel_with_more_when_older_remain() {
    let mut s = memory(Retention::default());
    assert_eq!(s.next_id().unwrap(), 1);
    let all: Vec<_> = (1..=10)
        .map(|i| msg(i, if i % 2 == 0 { 1 } else { 2 }, i))
        .collect();
    s.insert(&all).unwrap();
    assert_eq!(s.next_id().unwrap(), 11);
    let (page, more) = s.page(1, None, 3).unwrap();
    assert_eq!((ids(&page), more), (vec![6, 8, 10], true));
    let (page, more) = s.page(1, Some(6), 3).unwrap();
    assert_eq!((ids(&page), more), (vec![2, 4], false));
    let (page, more) = s.page(3, None, 50).unwrap();
    assert!(page.is_empty() && !more);
    assert_eq!(ids(&s.page(2, Some(2), 5).unwrap().0), vec![1]);
    assert_eq!(
        ids(&s.page(2, Some(1), 5).unwrap().0),
        Vec::<MessageId>::new()
    );
    assert_eq!(s.page(1, None, 1).unwrap().0[0], all[9]);
}

#[test]
fn retention_keeps_the_newest_per_channel_and_drops_the_old() {
    let mut s = memory(Retention {
        per_channel: Some(3),
        max_age: None,
    });
    let all: Vec<_> = (1..=10)
        .map(|i| msg(i, if i <= 8 { 1 } else { 2 }, i))
        .collect();
    s.insert(&all).unwrap();
    assert_eq!(s.prune(100).unwrap(), 5);
    assert_eq!(ids(&s.page(1, None, 50).unwrap().0), vec![6, 7, 8]);
    assert_eq!(ids(&s.page(2, None, 50).unwrap().0), vec![9, 10]);
    assert_eq!(s.next_id().unwrap(), 11, "ids are never reused");

    let mut s = memory(Retention {
        per_channel: None,
        max_age: Some(Duration::from_millis(100)),
    });
    let all: Vec<_> = (1..=10).map(|i| msg(i, 1, i * 50)).collect();
    s.insert(&all).unwrap();
    // At 500 ms, messages older than 400 ms (time < 400) go: ids 1..=7.
    assert_eq!(s.prune(500).unwrap(), 7);
    assert_eq!(ids(&s.page(1, None, 50).unwrap().0), vec![8, 9, 10]);
}

#[test]
fn a_file_keeps_its_history_across_opens_and_records_its_schema() {
    let dir = TempDir::new("chat-store");
    let path = dir.root().join("nested/dir/chat.sqlite3");
    let location = Location::File(path.clone());
    {
        let mut s = Store::open(&location, Retention::default()).unwrap();
        s.insert(&[msg(1, 1, 1), msg(2, 1, 2)]).unwrap();
    }
    let s = Store::open(&location, Retention::default()).unwrap();
    assert_eq!(ids(&s.page(1, None, 50).unwrap().0), vec![1, 2]);
    assert_eq!(s.next_id().unwrap(), 3);
    let version: i64 = s
        .conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, MIGRATIONS.len() as i64);
    let mode: String = s
        .conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[test]
fn a_second_server_on_the_same_file_is_told_it_is_locked() {
    let dir = TempDir::new("chat-store");
    let location = Location::File(dir.root().join("chat.sqlite3"));
    let _first = Store::open(&location, Retention::default()).unwrap();
    let err = Store::open(&location, Retention::default()).unwrap_err();
    assert!(matches!(err, StoreError::Locked { .. }), "{err:?}");
    assert!(
        err.to_string().contains("another cromulent-server"),
        "{err}"
    );
}

#[test]
fn a_file_that_is_not_a_database_is_a_clear_error() {
    let dir = TempDir::new("chat-store");
    let path = dir.root().join("chat.sqlite3");
    std::fs::write(
        &path,
        b"this is not an SQLite database, just some bytes........",
    )
    .unwrap();
    let err = Store::open(&Location::File(path), Retention::default()).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    assert!(err.to_string().contains("move it away"), "{err}");
}

#[test]
fn a_path_that_cannot_hold_a_database_is_a_clear_error() {
    let dir = TempDir::new("chat-store");
    // A directory where the file should be (inside the temporary directory, so the lock file
    // beside it goes with it).
    let directory = dir.root().join("a-directory");
    std::fs::create_dir(&directory).unwrap();
    let err = Store::open(&Location::File(directory), Retention::default()).unwrap_err();
    assert!(matches!(err, StoreError::Unwritable { .. }), "{err:?}");
    // A regular file where the directory should be.
    let file = dir.root().join("plain");
    std::fs::write(&file, b"x").unwrap();
    let err = Store::open(
        &Location::File(file.join("chat.sqlite3")),
        Retention::default(),
    )
    .unwrap_err();
    assert!(matches!(err, StoreError::CreateDir { .. }), "{err:?}");
}

#[test]
fn a_schema_newer_than_this_server_is_refused() {
    let dir = TempDir::new("chat-store");
    let path = dir.root().join("chat.sqlite3");
    {
        let c = Connection::open(&path).unwrap();
        c.pragma_update(None, "user_version", 99).unwrap();
    }
    let err = Store::open(&Location::File(path), Retention::default()).unwrap_err();
    assert!(
        matches!(err, StoreError::TooNew { found: 99, .. }),
        "{err:?}"
    );
}

#[test]
fn the_thread_answers_a_page_with_every_message_sent_before_it() {
    let (handle, thread) = spawn(memory(Retention::default()), || 0).unwrap();
    for i in 1..=5 {
        handle.send(Job::Insert(msg(i, 1, i)));
    }
    let (tx, rx) = mpsc::channel();
    handle.send(Job::Page {
        channel: 1,
        before: None,
        limit: 10,
        reply: Box::new(move |r| tx.send(r.map(|(p, more)| (ids(&p), more))).unwrap()),
    });
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(5)).unwrap().unwrap(),
        (vec![1, 2, 3, 4, 5], false)
    );
    drop(handle);
    thread.join().unwrap();
}
