//! A single-producer single-consumer ring of `f32` samples: the hand-off between a sound
//! device's callback thread and the engine's 20 ms frame tick.
//!
//! Lock-free and wait-free, allocation-free after construction, and without `unsafe`: each
//! slot is an `AtomicU32` holding the sample's bits. The producer owns `head`, the consumer
//! owns `tail`; both are free-running counters (wrapping), so `head - tail` is the fill level.
//! The producer writes samples with relaxed stores and then publishes them with a release
//! store of `head`; the consumer acquires `head` before reading them, and releases `tail`
//! after it, which the producer acquires before reusing those slots.
//!
//! Must never lock, wait or allocate once built: one end runs on a device thread that may not
//! block. A full ring drops what does not fit, a dry one gives back fewer samples.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

struct Shared {
    slots: Box<[AtomicU32]>,
    /// Samples written so far (wrapping); only the producer stores it.
    head: AtomicUsize,
    /// Samples read so far (wrapping); only the consumer stores it.
    tail: AtomicUsize,
}

impl Shared {
    fn capacity(&self) -> usize {
        self.slots.len()
    }

    fn slot(&self, counter: usize) -> &AtomicU32 {
        &self.slots[counter % self.slots.len()]
    }
}

/// The writing end. Not `Clone`: there is exactly one producer.
pub struct Producer {
    shared: Arc<Shared>,
}

/// The reading end. Not `Clone`: there is exactly one consumer.
pub struct Consumer {
    shared: Arc<Shared>,
}

/// A ring holding up to `capacity` samples (at least 1).
pub fn ring(capacity: usize) -> (Producer, Consumer) {
    let slots = (0..capacity.max(1)).map(|_| AtomicU32::new(0)).collect();
    let shared = Arc::new(Shared {
        slots,
        head: AtomicUsize::new(0),
        tail: AtomicUsize::new(0),
    });
    (
        Producer {
            shared: shared.clone(),
        },
        Consumer { shared },
    )
}

impl Producer {
    /// Appends as many of `samples` as fit; returns how many did.
    pub fn push_slice(&mut self, samples: &[f32]) -> usize {
        let s = &*self.shared;
        let head = s.head.load(Ordering::Relaxed);
        let tail = s.tail.load(Ordering::Acquire);
        let free = s.capacity() - head.wrapping_sub(tail);
        let n = free.min(samples.len());
        for (i, x) in samples[..n].iter().enumerate() {
            s.slot(head.wrapping_add(i))
                .store(x.to_bits(), Ordering::Relaxed);
        }
        s.head.store(head.wrapping_add(n), Ordering::Release);
        n
    }

    /// Samples ever written (wrapping): the position the next sample is written at, for
    /// [`Consumer::skip_to`].
    pub fn written(&self) -> usize {
        self.shared.head.load(Ordering::Relaxed)
    }

    /// Appends one sample; false if the ring is full.
    pub fn push(&mut self, sample: f32) -> bool {
        self.push_slice(&[sample]) == 1
    }

    /// Samples waiting to be read.
    pub fn len(&self) -> usize {
        let s = &*self.shared;
        s.head
            .load(Ordering::Relaxed)
            .wrapping_sub(s.tail.load(Ordering::Acquire))
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn capacity(&self) -> usize {
        self.shared.capacity()
    }
}

impl Consumer {
    /// Takes up to `out.len()` samples into the front of `out`; returns how many.
    pub fn pop_slice(&mut self, out: &mut [f32]) -> usize {
        let s = &*self.shared;
        let tail = s.tail.load(Ordering::Relaxed);
        let head = s.head.load(Ordering::Acquire);
        let n = head.wrapping_sub(tail).min(out.len());
        for (i, x) in out[..n].iter_mut().enumerate() {
            *x = f32::from_bits(s.slot(tail.wrapping_add(i)).load(Ordering::Relaxed));
        }
        s.tail.store(tail.wrapping_add(n), Ordering::Release);
        n
    }

    /// Takes one sample, if any.
    pub fn pop(&mut self) -> Option<f32> {
        let mut one = [0.0];
        (self.pop_slice(&mut one) == 1).then_some(one[0])
    }

    /// Drops up to `n` of the oldest samples (to bound latency); returns how many.
    pub fn skip(&mut self, n: usize) -> usize {
        let s = &*self.shared;
        let tail = s.tail.load(Ordering::Relaxed);
        let head = s.head.load(Ordering::Acquire);
        let n = head.wrapping_sub(tail).min(n);
        s.tail.store(tail.wrapping_add(n), Ordering::Release);
        n
    }

    /// Drops the samples before position `pos` (a [`Producer::written`] value) that are still
    /// waiting; nothing if they were read already or `pos` is not written yet. Returns how
    /// many were dropped.
    pub fn skip_to(&mut self, pos: usize) -> usize {
        let s = &*self.shared;
        let tail = s.tail.load(Ordering::Relaxed);
        let head = s.head.load(Ordering::Acquire);
        let n = pos.wrapping_sub(tail);
        if n > head.wrapping_sub(tail) {
            return 0;
        }
        s.tail.store(pos, Ordering::Release);
        n
    }

    /// Samples waiting to be read.
    pub fn len(&self) -> usize {
        let s = &*self.shared;
        s.head
            .load(Ordering::Acquire)
            .wrapping_sub(s.tail.load(Ordering::Relaxed))
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn capacity(&self) -> usize {
        self.shared.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_order_wraps_around_and_respects_capacity() {
        let (mut p, mut c) = ring(5);
        assert_eq!(p.push_slice(&[1.0, 2.0, 3.0]), 3);
        let mut out = [0.0; 2];
        assert_eq!(c.pop_slice(&mut out), 2);
        assert_eq!(out, [1.0, 2.0]);
        // 1 left, 4 free: only 4 of 6 fit, crossing the end of the slots.
        assert_eq!(p.push_slice(&[4.0, 5.0, 6.0, 7.0, 8.0, 9.0]), 4);
        assert!(!p.push(10.0), "full");
        assert_eq!((p.len(), c.len()), (5, 5));
        let mut out = [0.0; 8];
        assert_eq!(c.pop_slice(&mut out), 5);
        assert_eq!(&out[..5], &[3.0, 4.0, 5.0, 6.0, 7.0]);
        assert_eq!(c.pop(), None);
        assert!(c.is_empty() && p.is_empty());
    }

    #[test]
    fn skip_drops_the_oldest() {
        let (mut p, mut c) = ring(8);
        p.push_slice(&[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(c.skip(3), 3);
        assert_eq!(c.pop(), Some(4.0));
        assert_eq!(c.skip(10), 0);
    }

    #[test]
    fn skip_to_drops_what_waits_before_a_written_position_and_nothing_else() {
        let (mut p, mut c) = ring(8);
        p.push_slice(&[1.0, 2.0, 3.0]);
        let mark = p.written();
        p.push_slice(&[4.0, 5.0]);
        assert_eq!(c.pop(), Some(1.0));
        assert_eq!(c.skip_to(mark), 2, "2 and 3 dropped");
        assert_eq!(c.skip_to(mark), 0, "already there");
        assert_eq!(c.pop(), Some(4.0));
        assert_eq!(c.skip_to(mark), 0, "read past it: nothing");
        assert_eq!(c.skip_to(p.written() + 3), 0, "not written yet: nothing");
        assert_eq!(c.pop(), Some(5.0));
        // Across the wrap of the free-running counters.
        for _ in 0..5 {
            p.push_slice(&[0.0; 7]);
            let mark = p.written();
            p.push(9.0);
            assert_eq!(c.skip_to(mark), 7);
            assert_eq!(c.pop(), Some(9.0));
        }
    }

    #[test]
    fn bits_survive_exactly() {
        let (mut p, mut c) = ring(4);
        let weird = [f32::MIN_POSITIVE, -0.0, 1.0e-30, -1.0];
        p.push_slice(&weird);
        let mut out = [0.0; 4];
        c.pop_slice(&mut out);
        for (a, b) in weird.iter().zip(out) {
            assert_eq!(a.to_bits(), b.to_bits());
        }
    }

    #[test]
    fn a_producer_thread_and_a_consumer_thread_see_every_sample_in_order() {
        // A counting sequence through a small ring: any lost, duplicated or torn sample, or
        // a read of a slot before it was published, breaks the sequence.
        const TOTAL: usize = 200_000;
        let (mut p, mut c) = ring(97);
        let writer = std::thread::spawn(move || {
            let mut next = 0usize;
            let mut chunk = [0.0f32; 13];
            while next < TOTAL {
                let n = chunk.len().min(TOTAL - next);
                for (i, x) in chunk[..n].iter_mut().enumerate() {
                    *x = (next + i) as f32;
                }
                let pushed = p.push_slice(&chunk[..n]);
                next += pushed;
                if pushed == 0 {
                    std::thread::yield_now();
                }
            }
        });
        let mut expected = 0usize;
        let mut buf = [0.0f32; 17];
        while expected < TOTAL {
            let n = c.pop_slice(&mut buf);
            for x in &buf[..n] {
                assert_eq!(*x, expected as f32);
                expected += 1;
            }
            if n == 0 {
                std::thread::yield_now();
            }
        }
        writer.join().unwrap();
    }
}
