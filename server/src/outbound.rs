//! A connection's outbound queue, bounded in bytes: the hub pushes encoded frames without ever
//! waiting, the connection task pops and writes them. When a push would take the queue past
//! its budget the push fails and the hub drops the client as a slow consumer, so a client that
//! stops reading pins at most `limits.outbound_queue_bytes` of server memory (plus one frame:
//! a frame larger than the whole budget still goes to an empty queue, so a big presence
//! snapshot always fits). Producers: the hub task, and the chat store's thread answering a
//! history request; one consumer (the connection task). `push` must never wait: the hub task
//! serves every connection and cannot block on one.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Utf8Bytes;

/// The hub's end.
#[derive(Debug, Clone)]
pub struct OutboundTx {
    tx: mpsc::UnboundedSender<Utf8Bytes>,
    queued: Arc<AtomicUsize>,
    max_bytes: usize,
}

/// The connection's end.
#[derive(Debug)]
pub struct OutboundRx {
    rx: mpsc::UnboundedReceiver<Utf8Bytes>,
    queued: Arc<AtomicUsize>,
}

/// The queue would pass its byte budget; the frame was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

/// A queue holding at most `max_bytes` of frames (see the module docs).
pub fn outbound(max_bytes: usize) -> (OutboundTx, OutboundRx) {
    let (tx, rx) = mpsc::unbounded_channel();
    let queued = Arc::new(AtomicUsize::new(0));
    (
        OutboundTx {
            tx,
            queued: queued.clone(),
            max_bytes,
        },
        OutboundRx { rx, queued },
    )
}

impl OutboundTx {
    /// Queue a frame. A closed queue (the connection is ending) takes it silently.
    pub fn push(&self, text: Utf8Bytes) -> Result<(), Full> {
        let len = text.len();
        let before = self.queued.fetch_add(len, Ordering::AcqRel);
        if before > 0 && before + len > self.max_bytes {
            self.queued.fetch_sub(len, Ordering::AcqRel);
            return Err(Full);
        }
        if let Err(unsent) = self.tx.send(text) {
            self.queued.fetch_sub(unsent.0.len(), Ordering::AcqRel);
        }
        Ok(())
    }

    /// Bytes queued and not yet taken by the connection.
    pub fn queued_bytes(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }
}

impl OutboundRx {
    /// The next frame; `None` once the hub has let go of this connection and the queue is
    /// empty.
    pub async fn recv(&mut self) -> Option<Utf8Bytes> {
        let text = self.rx.recv().await?;
        self.queued.fetch_sub(text.len(), Ordering::AcqRel);
        Some(text)
    }

    /// The next frame if one is queued.
    pub fn try_recv(&mut self) -> Option<Utf8Bytes> {
        let text = self.rx.try_recv().ok()?;
        self.queued.fetch_sub(text.len(), Ordering::AcqRel);
        Some(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(len: usize) -> Utf8Bytes {
        Utf8Bytes::from("x".repeat(len))
    }

    #[tokio::test]
    async fn the_budget_is_in_bytes_and_freed_as_frames_are_taken() {
        let (tx, mut rx) = outbound(100);
        tx.push(frame(60)).unwrap();
        tx.push(frame(40)).unwrap();
        assert_eq!(tx.push(frame(1)), Err(Full), "100 of 100 bytes queued");
        assert_eq!(tx.queued_bytes(), 100);
        assert_eq!(rx.recv().await.unwrap().len(), 60);
        tx.push(frame(50)).unwrap();
        assert_eq!(tx.queued_bytes(), 90);
        assert_eq!(rx.try_recv().unwrap().len(), 40);
        assert_eq!(rx.try_recv().unwrap().len(), 50);
        assert!(rx.try_recv().is_none());
        assert_eq!(tx.queued_bytes(), 0);
    }

    #[test]
    fn a_frame_bigger_than_the_budget_fits_an_empty_queue_only() {
        let (tx, _rx) = outbound(100);
        tx.push(frame(500)).unwrap();
        assert_eq!(tx.push(frame(1)), Err(Full));
    }

    #[test]
    fn a_closed_queue_takes_frames_without_counting_them() {
        let (tx, rx) = outbound(100);
        drop(rx);
        tx.push(frame(80)).unwrap();
        tx.push(frame(80)).unwrap();
        assert_eq!(tx.queued_bytes(), 0);
    }
}
