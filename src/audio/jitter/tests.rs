//! Jitter-buffer behaviour in simulated time: a sender emitting one packet per 20 ms, a network
//! that delays, reorders, duplicates or drops them, and a playout clock popping every 20 ms.

use super::*;
use crate::audio::test_util::Rng;

/// A packet on the simulated wire: frame `index`, sent at `index × 20 ms`.
#[derive(Debug, Clone)]
struct Wire {
    index: u32,
    seq: u16,
    ts: u32,
    arrive_ms: f64,
}

/// Payloads carry the frame index so tests can see what was played (4 bytes: never "DTX").
fn payload(index: u32) -> Vec<u8> {
    index.to_be_bytes().to_vec()
}

fn index_of(payload: &[u8]) -> u32 {
    u32::from_be_bytes(payload.try_into().expect("test payloads are 4 bytes"))
}

/// `n` frames starting at sequence `first_seq`; `delay(i)` is frame i's network delay in ms, or
/// `None` if the network drops it. Sorted by arrival time.
fn send(n: u32, first_seq: u16, mut delay: impl FnMut(u32) -> Option<f64>) -> Vec<Wire> {
    let mut wire: Vec<Wire> = (0..n)
        .filter_map(|i| {
            delay(i).map(|d| Wire {
                index: i,
                seq: first_seq.wrapping_add(i as u16),
                ts: 1_000 + i * 960,
                arrive_ms: f64::from(i) * 20.0 + d,
            })
        })
        .collect();
    wire.sort_by(|a, b| a.arrive_ms.total_cmp(&b.arrive_ms));
    wire
}

struct Popped {
    at_ms: f64,
    /// Depth just before this pop.
    depth: usize,
    playout: Playout,
}

/// Drives a buffer: all arrivals up to each pop time are pushed, then one pop.
struct Sim {
    jb: JitterBuffer,
    t0: Instant,
    wire: Vec<Wire>,
    next_wire: usize,
    next_pop_ms: f64,
    log: Vec<Popped>,
}

impl Sim {
    fn new(wire: Vec<Wire>, pop_phase_ms: f64) -> Self {
        Self::with_buffer(JitterBuffer::default(), wire, pop_phase_ms)
    }

    fn with_buffer(jb: JitterBuffer, wire: Vec<Wire>, pop_phase_ms: f64) -> Self {
        Self {
            jb,
            t0: Instant::now(),
            wire,
            next_wire: 0,
            next_pop_ms: pop_phase_ms,
            log: Vec::new(),
        }
    }

    fn at(&self, ms: f64) -> Instant {
        self.t0 + Duration::from_secs_f64(ms / 1000.0)
    }

    fn run_until(&mut self, end_ms: f64) {
        while self.next_pop_ms <= end_ms {
            while let Some(w) = self.wire.get(self.next_wire) {
                if w.arrive_ms > self.next_pop_ms {
                    break;
                }
                let (seq, ts, p, at) = (w.seq, w.ts, payload(w.index), self.at(w.arrive_ms));
                self.jb.push(seq, ts, p, at);
                self.next_wire += 1;
            }
            let depth = self.jb.stats().depth;
            let playout = self.jb.pop(self.at(self.next_pop_ms));
            self.log.push(Popped {
                at_ms: self.next_pop_ms,
                depth,
                playout,
            });
            self.next_pop_ms += 20.0;
        }
    }

    /// (pop time, frame index) of every played packet.
    fn played(&self) -> Vec<(f64, u32)> {
        self.log
            .iter()
            .filter_map(|p| match &p.playout {
                Playout::Packet(bytes) => Some((p.at_ms, index_of(bytes))),
                _ => None,
            })
            .collect()
    }

    /// Largest depth seen before a pop in `[from_ms, to_ms)`.
    fn max_depth_between(&self, from_ms: f64, to_ms: f64) -> usize {
        self.log
            .iter()
            .filter(|p| (from_ms..to_ms).contains(&p.at_ms))
            .map(|p| p.depth)
            .max()
            .unwrap_or(0)
    }

    /// Send-to-playout latency of each played packet, ms.
    fn latencies_between(&self, from_ms: f64, to_ms: f64) -> Vec<f64> {
        self.played()
            .into_iter()
            .filter(|(at, _)| (from_ms..to_ms).contains(at))
            .map(|(at, i)| at - f64::from(i) * 20.0)
            .collect()
    }
}

fn assert_strictly_increasing(indices: &[u32]) {
    for pair in indices.windows(2) {
        assert!(pair[0] < pair[1], "out of order: {pair:?}");
    }
}

#[test]
fn clean_link_plays_everything_at_one_frame_of_depth() {
    let mut sim = Sim::new(send(500, 1234, |_| Some(30.0)), 7.0);
    sim.run_until(10_400.0);
    let played: Vec<u32> = sim.played().into_iter().map(|(_, i)| i).collect();
    assert_eq!(played, (0..500).collect::<Vec<_>>());
    let stats = sim.jb.stats();
    assert_eq!(
        (stats.lost, stats.late, stats.concealed, stats.dropped),
        (0, 0, 0, 0)
    );
    assert_eq!(stats.target_depth, 1);
    assert_eq!(sim.max_depth_between(0.0, 10_400.0), 1);
    let latency = sim.latencies_between(0.0, f64::MAX);
    assert_eq!(latency.len(), 500);
    assert!(
        latency.iter().all(|&l| (30.0..50.0).contains(&l)),
        "{latency:?}"
    );
}

#[test]
fn depth_grows_under_jitter_and_shrinks_back_when_the_link_calms() {
    let mut rng = Rng::new(42);
    // 0–10 s: 20..80 ms delay (reordering included); then a steady 20 ms.
    let wire = send(2000, 0, |i| {
        let jitter = rng.unit() * 60.0;
        Some(if i < 500 { 20.0 + jitter } else { 20.0 })
    });
    let mut sim = Sim::new(wire, 3.0);

    sim.run_until(5_000.0);
    let early = sim.jb.stats();
    sim.run_until(10_000.0);
    let jittery = sim.jb.stats();
    assert!(
        jittery.jitter_ms > 10.0,
        "jitter estimate {}",
        jittery.jitter_ms
    );
    assert!(jittery.target_depth >= 3, "target {}", jittery.target_depth);
    // Adapted: in the second half of the jittery phase almost nothing is lost or late.
    let bad = (jittery.lost - early.lost) + (jittery.late - early.late);
    assert!(bad <= 5, "{bad} of 250 frames lost/late after adapting");
    let jittery_latency = sim.latencies_between(5_000.0, 10_000.0);
    let mean = jittery_latency.iter().sum::<f64>() / jittery_latency.len() as f64;
    assert!(
        mean > 80.0,
        "mean latency {mean} ms is too low to absorb 60 ms jitter"
    );

    sim.run_until(12_000.0);
    let settled = sim.jb.stats();
    sim.run_until(40_000.0);
    let calm = sim.jb.stats();
    assert_eq!(calm.target_depth, 1);
    assert!(
        sim.max_depth_between(10_000.0, 12_000.0) >= 4,
        "depth was high while jittery"
    );
    assert_eq!(
        sim.max_depth_between(30_000.0, 40_000.0),
        1,
        "depth back to one frame"
    );
    assert_eq!(calm.lost, settled.lost, "losses on a calm link");
    assert_eq!(calm.late, settled.late);
    assert!(
        calm.dropped > settled.dropped,
        "latency was cut by dropping frames"
    );
    let calm_latency = sim.latencies_between(30_000.0, 40_000.0);
    assert_eq!(calm_latency.len(), 500);
    assert!(calm_latency.iter().all(|&l| l < 40.0), "{calm_latency:?}");

    let played: Vec<u32> = sim.played().into_iter().map(|(_, i)| i).collect();
    assert_strictly_increasing(&played);
}

#[test]
fn random_loss_on_a_jittery_link_does_not_ratchet_the_latency_up() {
    // 20 ± 10 ms one-way delay (no reordering: neighbours differ by < 20 ms), with and without
    // 5 % loss. Waiting a frame for each missing packet added a frame of delay per loss, for
    // good (the jitter kept the depth from staying above target long enough to trim): +37 ms
    // here, +34 ms measured by bench/jitter-path.sh. Without lateness there is nothing to
    // wait for.
    //
    // One frame (+20 ms) still comes from a jitter underrun early in the lossy run and stays,
    // and that is the better deal: a lost newest packet makes the depth look a frame short, so
    // the depth never stays above the target for a whole window and the frame is not trimmed;
    // that frame is the look-ahead in-band FEC needs (the packet after a lost one is here when
    // the lost frame is due). Trimming it when every packet played had waited over a frame
    // (tried: 65 → 46 ms here) left 98 of 142 lost frames FEC-recoverable instead of 135, and
    // the real probe (bench/jitter-path.sh) showed no lower latency for it.
    let run = |loss: bool| {
        let mut rng = Rng::new(7);
        let wire = send(3000, 0, |_| {
            let delay = 20.0 + rng.unit() * 20.0 - 10.0;
            let lost = rng.unit() < 0.05;
            (!(loss && lost)).then_some(delay)
        });
        let mut sim = Sim::new(wire, 5.0);
        sim.run_until(60_000.0);
        let latency = sim.latencies_between(20_000.0, 60_000.0);
        let mean = latency.iter().sum::<f64>() / latency.len() as f64;
        let with_fec = sim
            .log
            .iter()
            .filter(|p| matches!(p.playout, Playout::Lost { fec_from: Some(_) }))
            .count() as u64;
        (mean, sim.jb.stats(), with_fec)
    };
    let (clean, clean_stats, _) = run(false);
    let (lossy, lossy_stats, with_fec) = run(true);
    assert!(
        with_fec * 10 >= lossy_stats.lost * 9,
        "only {with_fec} of {} lost frames had the next packet for FEC",
        lossy_stats.lost
    );
    assert!(lossy_stats.lost > 100, "{lossy_stats:?}");
    assert_eq!(lossy_stats.late, 0, "nothing was worth waiting for");
    assert_eq!(
        (clean_stats.underruns, clean_stats.concealed),
        (0, 0),
        "trimming never cost the clean jittery link a frame"
    );
    assert!(
        lossy < clean + 25.0,
        "latency with loss {lossy:.1} ms vs {clean:.1} ms without ({clean_stats:?} / {lossy_stats:?})"
    );
}

#[test]
fn loss_without_jitter_keeps_one_frame_of_look_ahead_for_fec() {
    // A steady 20 ms one-way delay, with and without 5 % loss. Without jitter the buffer plays
    // each packet as it comes; a lost one then left the buffer dry (the next packet not here
    // yet): concealed, never rebuilt from the next packet's FEC — measured through the call
    // (bench/speech-quality.sh): 0 of ~30 lost frames rebuilt, PESQ-WB 2.1 at 5 % loss. Once
    // loss is seen the buffer keeps a frame of look-ahead, so the packet after a lost one is
    // here when the lost frame is due; a clean link keeps its latency.
    let run = |loss: bool| {
        let mut rng = Rng::new(11);
        let wire = send(3000, 0, |_| {
            let lost = rng.unit() < 0.05;
            (!(loss && lost)).then_some(20.0)
        });
        let mut sim = Sim::new(wire, 5.0);
        sim.run_until(60_000.0);
        let latency = sim.latencies_between(20_000.0, 60_000.0);
        let mean = latency.iter().sum::<f64>() / latency.len() as f64;
        let lost_frames = sim
            .log
            .iter()
            .filter(|p| p.at_ms > 20_000.0)
            .filter(|p| !matches!(p.playout, Playout::Packet(_)))
            .count();
        let with_fec = sim
            .log
            .iter()
            .filter(|p| p.at_ms > 20_000.0)
            .filter(|p| matches!(p.playout, Playout::Lost { fec_from: Some(_) }))
            .count();
        (mean, lost_frames, with_fec)
    };
    let (clean, clean_missing, _) = run(false);
    let (lossy, missing, with_fec) = run(true);
    assert_eq!(clean_missing, 0);
    assert!(missing > 50, "{missing}");
    assert!(
        with_fec * 10 >= missing * 9,
        "only {with_fec} of {missing} missing frames were rebuilt from FEC"
    );
    assert!(
        lossy <= clean + 21.0,
        "one frame of look-ahead, no more: {lossy:.1} ms against {clean:.1} ms"
    );
}

#[test]
fn reordered_packets_are_played_in_sequence() {
    let t0 = Instant::now();
    let ms = |m: u64| t0 + Duration::from_millis(m);
    let mut jb = JitterBuffer::default();
    assert_eq!(jb.push(10, 0, payload(10), ms(0)), PushOutcome::Resynced);
    assert_eq!(jb.pop(ms(1)), Playout::Packet(payload(10)));
    assert_eq!(
        jb.push(12, 1920, payload(12), ms(15)),
        PushOutcome::Accepted
    );
    assert_eq!(jb.push(11, 960, payload(11), ms(18)), PushOutcome::Accepted);
    assert_eq!(jb.pop(ms(21)), Playout::Packet(payload(11)));
    assert_eq!(jb.pop(ms(41)), Playout::Packet(payload(12)));
    assert_eq!(jb.pop(ms(61)), Playout::Empty);
    let stats = jb.stats();
    assert_eq!((stats.lost, stats.late, stats.received), (0, 0, 3));
}

#[test]
fn packets_reordered_on_the_wire_play_in_order_without_loss() {
    // Every 10th packet is held back 25 ms: it arrives after its successor.
    let wire = send(300, 0, |i| Some(if i % 10 == 5 { 55.0 } else { 30.0 }));
    assert!(
        wire.windows(2).any(|w| w[0].index > w[1].index),
        "the link really reorders"
    );
    let mut sim = Sim::new(wire, 11.0);
    sim.run_until(7_000.0);
    let played: Vec<u32> = sim.played().into_iter().map(|(_, i)| i).collect();
    assert_strictly_increasing(&played);
    let stats = sim.jb.stats();
    // The first reorder may cost a frame before the target grows; after that, none.
    assert!(stats.lost + stats.late <= 2, "{stats:?}");
    assert!(played.len() >= 298);
}

/// Pushes frames `indices` (sequence = `first_seq + index`) at their nominal arrival times on a
/// clean link (frame i at `t0 + 20·i ms`); returns the buffer and a time after the last arrival.
fn buffer_with(indices: impl IntoIterator<Item = u32>, first_seq: u16) -> (JitterBuffer, Instant) {
    let t0 = Instant::now();
    let mut jb = JitterBuffer::default();
    let mut last = 0;
    for i in indices {
        let at = t0 + Duration::from_millis(u64::from(i) * 20);
        jb.push(first_seq.wrapping_add(i as u16), i * 960, payload(i), at);
        last = last.max(i);
    }
    (jb, t0 + Duration::from_millis(u64::from(last) * 20 + 1))
}

/// `n` pops, 20 ms apart, starting at `start`.
fn pop_n(jb: &mut JitterBuffer, start: Instant, n: u32) -> Vec<Playout> {
    (0..n)
        .map(|k| jb.pop(start + Duration::from_millis(u64::from(k) * 20)))
        .collect()
}

#[test]
fn a_lost_packet_comes_with_the_next_payload_for_fec() {
    let (mut jb, t0) = buffer_with([0, 1, 3, 4, 7, 8], 100);
    let out = pop_n(&mut jb, t0, 10);
    assert_eq!(
        out,
        vec![
            Playout::Packet(payload(0)),
            Playout::Packet(payload(1)),
            Playout::Lost {
                fec_from: Some(payload(3))
            },
            Playout::Packet(payload(3)),
            Playout::Packet(payload(4)),
            Playout::Lost { fec_from: None }, // 5: its successor 6 is lost too
            Playout::Lost {
                fec_from: Some(payload(7))
            },
            Playout::Packet(payload(7)),
            Playout::Packet(payload(8)),
            Playout::Empty,
        ]
    );
    let stats = jb.stats();
    assert_eq!((stats.lost, stats.concealed, stats.underruns), (3, 3, 1));
}

#[test]
fn a_loss_on_a_clean_link_is_concealed_then_recovered_with_fec() {
    let mut sim = Sim::new(send(500, 0, |i| (i != 40).then_some(30.0)), 7.0);
    sim.run_until(10_200.0);
    let around: Vec<&Playout> = sim
        .log
        .iter()
        .skip_while(|p| p.playout != Playout::Packet(payload(39)))
        .map(|p| &p.playout)
        .take(5)
        .collect();
    // Frame 40 is due with nothing newer here yet: run dry (the engine conceals that frame).
    // When 41 arrives the gap is known and 40's time is already spent: 40 is lost. A loss
    // calls for a frame of look-ahead (so the next loss finds the packet after it, with its
    // FEC): 41 waits one frame and the stream plays a frame later — for LOSS_MEMORY, then
    // the extra frame is trimmed.
    assert_eq!(
        around,
        [
            &Playout::Packet(payload(39)),
            &Playout::Empty,
            &Playout::NotReady,
            &Playout::Packet(payload(41)),
            &Playout::Packet(payload(42)),
        ]
    );
    let stats = sim.jb.stats();
    assert_eq!((stats.lost, stats.concealed, stats.late), (1, 0, 0));
    assert_eq!(
        stats.dropped, 1,
        "the look-ahead frame, trimmed once loss was forgotten"
    );
    assert_eq!(sim.played().len(), 498);
    let before = sim.latencies_between(0.0, 700.0);
    let during = sim.latencies_between(1_000.0, 5_000.0);
    let after = sim.latencies_between(8_000.0, 10_000.0);
    assert!(before.windows(2).all(|w| w[0] == w[1]), "{before:?}");
    assert!(during.iter().all(|&l| l == before[0] + 20.0), "{during:?}");
    assert!(after.iter().all(|&l| l == before[0]), "back: {after:?}");
}

#[test]
fn sequence_numbers_wrap_from_65535_to_0() {
    let (mut jb, t0) = buffer_with([0, 1, 2, 3, 4, 5, 7, 8], 65_531); // index 5 = seq 0
    let out = pop_n(&mut jb, t0, 9);
    let expected: Vec<Playout> = (0..=5)
        .map(|i| Playout::Packet(payload(i)))
        .chain([
            Playout::Lost {
                fec_from: Some(payload(7)),
            },
            Playout::Packet(payload(7)),
            Playout::Packet(payload(8)),
        ])
        .collect();
    assert_eq!(out, expected);

    // And in simulated time over a long run crossing the wrap.
    let mut sim = Sim::new(send(400, 65_400, |_| Some(25.0)), 5.0);
    sim.run_until(8_100.0);
    let played: Vec<u32> = sim.played().into_iter().map(|(_, i)| i).collect();
    assert_eq!(played, (0..400).collect::<Vec<_>>());
    assert_eq!(sim.jb.stats().resyncs, 0);
}

#[test]
fn duplicates_are_counted_and_dropped() {
    let t0 = Instant::now();
    let ms = |m: u64| t0 + Duration::from_millis(m);
    let mut jb = JitterBuffer::default();
    jb.push(1, 0, payload(1), ms(0));
    assert_eq!(jb.push(1, 0, payload(1), ms(1)), PushOutcome::Duplicate);
    jb.push(2, 960, payload(2), ms(2));
    assert_eq!(jb.pop(ms(5)), Playout::Packet(payload(1)));
    // A duplicate of an already played packet is still a duplicate, not "late".
    assert_eq!(jb.push(1, 0, payload(1), ms(6)), PushOutcome::Duplicate);
    assert_eq!(jb.pop(ms(25)), Playout::Packet(payload(2)));
    assert_eq!(jb.pop(ms(45)), Playout::Empty);
    let stats = jb.stats();
    assert_eq!((stats.duplicates, stats.late, stats.received), (2, 0, 2));

    // Every packet twice over a lossy-free link: each played once.
    let mut wire = send(200, 0, |_| Some(30.0));
    let copies: Vec<Wire> = wire
        .iter()
        .map(|w| Wire {
            arrive_ms: w.arrive_ms + 3.0,
            ..w.clone()
        })
        .collect();
    wire.extend(copies);
    wire.sort_by(|a, b| a.arrive_ms.total_cmp(&b.arrive_ms));
    let mut sim = Sim::new(wire, 7.0);
    sim.run_until(4_100.0);
    let played: Vec<u32> = sim.played().into_iter().map(|(_, i)| i).collect();
    assert_eq!(played, (0..200).collect::<Vec<_>>());
    assert_eq!(sim.jb.stats().duplicates, 200);
}

#[test]
fn a_packet_arriving_after_its_frame_was_concealed_is_late() {
    let (mut jb, start) = buffer_with([0, 2], 0);
    let out = pop_n(&mut jb, start, 2);
    assert_eq!(
        out[1],
        Playout::Lost {
            fec_from: Some(payload(2))
        }
    );
    let outcome = jb.push(1, 960, payload(1), start + Duration::from_millis(25));
    assert_eq!(outcome, PushOutcome::Late);
    assert_eq!(
        jb.pop(start + Duration::from_millis(40)),
        Playout::Packet(payload(2))
    );
    assert_eq!(jb.pop(start + Duration::from_millis(60)), Playout::Empty);
    let stats = jb.stats();
    assert_eq!((stats.late, stats.lost), (1, 1));
}

#[test]
fn sender_restart_with_a_sequence_jump_resyncs() {
    let t0 = Instant::now();
    let ms = |m: u64| t0 + Duration::from_millis(m);
    let mut jb = JitterBuffer::default();
    for i in 0..5u32 {
        jb.push(100 + i as u16, i * 960, payload(i), ms(u64::from(i) * 20));
        assert_eq!(
            jb.pop(ms(u64::from(i) * 20 + 5)),
            Playout::Packet(payload(i))
        );
    }
    // New stream: sequence +30000, random timestamp base.
    let mut played = Vec::new();
    for i in 0..20u32 {
        let at = 100 + u64::from(i) * 20;
        let outcome = jb.push(
            30_105 + i as u16,
            777_777 + i * 960,
            payload(100 + i),
            ms(at),
        );
        assert_eq!(
            outcome,
            if i == 0 {
                PushOutcome::Resynced
            } else {
                PushOutcome::Accepted
            }
        );
        if let Playout::Packet(p) = jb.pop(ms(at + 5)) {
            played.push(index_of(&p));
        }
    }
    assert_eq!(played, (100..120).collect::<Vec<_>>());
    let stats = jb.stats();
    assert_eq!((stats.resyncs, stats.lost, stats.concealed), (1, 0, 0));
    assert!(
        stats.jitter_ms < 1.0,
        "restart polluted jitter: {}",
        stats.jitter_ms
    );
}

#[test]
fn sender_restart_with_lower_sequence_numbers_resyncs_after_a_stale_run() {
    let mut sim = Sim::new(send(100, 5_000, |_| Some(30.0)), 7.0);
    sim.run_until(2_020.0);
    // The restarted sender counts from 4_000 again (behind what we played).
    let restart: Vec<Wire> = send(100, 4_000, |_| Some(30.0))
        .into_iter()
        .map(|w| Wire {
            index: w.index + 1000,
            arrive_ms: w.arrive_ms + 2_100.0,
            ..w
        })
        .collect();
    sim.wire.extend(restart);
    sim.run_until(4_200.0);
    let played: Vec<u32> = sim.played().into_iter().map(|(_, i)| i).collect();
    let new_stream: Vec<u32> = played.iter().copied().filter(|&i| i >= 1000).collect();
    let stats = sim.jb.stats();
    assert_eq!(stats.resyncs, 1);
    // 200 ms of stale packets (frames 0..=9 of the new stream) before the restart is believed.
    assert_eq!(stats.late, 10);
    assert_eq!(new_stream.first(), Some(&1010));
    assert_eq!(new_stream.last(), Some(&1099));
    assert_strictly_increasing(&new_stream);
}

#[test]
fn a_burst_after_an_outage_is_skipped_to_keep_latency_bounded() {
    // Frames 100..160 are held by a 1.3 s outage and then arrive together.
    let wire = send(1000, 0, |i| {
        Some(if (100..160).contains(&i) {
            30.0 + f64::from(160 - i) * 20.0 + 100.0
        } else {
            30.0
        })
    });
    let mut sim = Sim::new(wire, 7.0);
    sim.run_until(20_000.0);
    let stats = sim.jb.stats();
    assert!(stats.late >= 55, "the burst must not be played: {stats:?}");
    let latency = sim.latencies_between(3_000.0, 20_000.0);
    let max = latency.iter().copied().fold(0.0, f64::max);
    assert!(
        max <= 30.0 + 20.0 * 10.0,
        "latency {max} ms above the max depth"
    );
    // The burst looked like heavy jitter; once it is forgotten, latency is back to normal.
    let after = sim.latencies_between(15_000.0, 20_000.0);
    assert_eq!(after.len(), 250);
    assert!(after.iter().all(|&l| l < 50.0), "{after:?}");
    let played: Vec<u32> = sim.played().into_iter().map(|(_, i)| i).collect();
    assert_strictly_increasing(&played);
}

#[test]
fn dtx_pause_is_silence_not_loss() {
    // Talk 1 s, 2 s of DTX (nothing sent; sequence numbers stay contiguous), talk 1 s.
    let t0 = Instant::now();
    let mut jb = JitterBuffer::default();
    let mut results = Vec::new();
    for slot in 0..200u32 {
        let talking = !(50..150).contains(&slot);
        if talking {
            let seq = if slot < 50 { slot } else { slot - 100 };
            let arrival = t0 + Duration::from_millis(u64::from(slot) * 20 + 30);
            jb.push(seq as u16, slot * 960, payload(slot), arrival);
        }
        results.push(jb.pop(t0 + Duration::from_millis(u64::from(slot) * 20 + 37)));
    }
    let stats = jb.stats();
    assert_eq!((stats.lost, stats.concealed, stats.late), (0, 0, 0));
    assert!(
        stats.jitter_ms < 0.1,
        "DTX gap counted as jitter: {}",
        stats.jitter_ms
    );
    assert!(results[60..150].iter().all(|p| *p == Playout::Empty));
    let played = results
        .iter()
        .filter(|p| matches!(p, Playout::Packet(_)))
        .count();
    assert_eq!(played, 100);
}

#[test]
fn prebuffering_waits_for_the_target_depth_or_its_duration() {
    let t0 = Instant::now();
    let ms = |m: u64| t0 + Duration::from_millis(m);
    let config = JitterConfig {
        min_depth: 3,
        ..JitterConfig::default()
    };
    let mut jb = JitterBuffer::new(config);
    jb.push(0, 0, payload(0), ms(0));
    assert_eq!(jb.pop(ms(5)), Playout::NotReady);
    jb.push(1, 960, payload(1), ms(20));
    assert_eq!(jb.pop(ms(25)), Playout::NotReady);
    jb.push(2, 1920, payload(2), ms(40));
    assert_eq!(
        jb.pop(ms(45)),
        Playout::Packet(payload(0)),
        "depth 3 reached"
    );

    // A lone packet (end of a talk spurt) is not held forever: it plays once it has been held
    // the slack a depth of 3 stands for, 2 frames.
    let mut jb = JitterBuffer::new(config);
    jb.push(0, 0, payload(0), ms(0));
    assert_eq!(jb.pop(ms(20)), Playout::NotReady);
    assert_eq!(jb.pop(ms(39)), Playout::NotReady);
    assert_eq!(jb.pop(ms(40)), Playout::Packet(payload(0)));
    assert_eq!(jb.pop(ms(60)), Playout::Empty);
}

#[test]
fn a_talk_spurt_starts_after_the_measured_jitter_not_a_whole_frame() {
    let t0 = Instant::now();
    let ms = |m: u64| t0 + Duration::from_millis(m);
    let mut jb = JitterBuffer::default();
    // A stream whose packets arrive up to 6 ms off their 20 ms grid: a target of 2 frames.
    let offsets = [0, 6, 0, 5, 1, 6, 0, 4, 0, 6];
    for (i, off) in offsets.iter().enumerate() {
        let seq = i as u16;
        jb.push(
            seq,
            u32::from(seq) * 960,
            payload(i as u32),
            ms(20 * i as u64 + off),
        );
        let _ = jb.pop(ms(20 * i as u64 + 15));
    }
    let stats = jb.stats();
    assert_eq!(stats.target_depth, 2, "{stats:?}");
    let needed = 3.0 * f64::from(stats.jitter_ms);
    // Silence (DTX), then a new spurt: its first packet is held about the needed delay.
    for k in 0..20 {
        let _ = jb.pop(ms(215 + 20 * k));
    }
    let start = 1000;
    // The sender numbers packets without gaps; only the timestamp shows the pause.
    assert_eq!(jb.starts_at(), None, "nothing waits");
    jb.push(10, 50 * 960, payload(10), ms(start));
    assert_eq!(jb.pop(ms(start + 1)), Playout::NotReady, "held a little");
    // It says when it will start, for an engine that plays as soon as it may.
    let starts_at = jb.starts_at().expect("held for the pre-roll");
    assert_eq!(jb.frames_here(starts_at - Duration::from_micros(1)), 0);
    assert_eq!(jb.frames_here(starts_at), 1, "ready then, one frame here");
    let held_until = (start..start + 40)
        .find(|&t| jb.pop(ms(t)) != Playout::NotReady)
        .expect("plays within two frames");
    let held = held_until - start;
    assert!(
        held < 20 && held as f64 >= needed.min(20.0) - 1.0,
        "held {held} ms for a needed delay of {needed:.1} ms"
    );
    assert!(ms(held_until) >= starts_at && ms(held_until - 1) < starts_at);
    assert_eq!(jb.starts_at(), None, "playing");
}

#[test]
fn reordering_before_playout_starts_is_not_late() {
    let t0 = Instant::now();
    let mut jb = JitterBuffer::new(JitterConfig {
        min_depth: 2,
        ..JitterConfig::default()
    });
    jb.push(51, 960, payload(51), t0 + Duration::from_millis(20));
    let arrival = t0 + Duration::from_millis(21);
    assert_eq!(jb.push(50, 0, payload(50), arrival), PushOutcome::Accepted);
    let out = pop_n(&mut jb, arrival, 3);
    assert_eq!(
        out,
        [
            Playout::Packet(payload(50)),
            Playout::Packet(payload(51)),
            Playout::Empty
        ]
    );
}

#[test]
fn latency_trim_prefers_dtx_frames() {
    // Over-buffered by 4 frames on a calm link; the stream mixes speech and DTX payloads.
    let t0 = Instant::now();
    let mut jb = JitterBuffer::default();
    let body = |i: u32| if i % 25 < 20 { payload(i) } else { vec![0xF8] };
    for i in 0..4u32 {
        jb.push(i as u16, i * 960, body(i), t0);
    }
    let mut played = Vec::new();
    for k in 0..300u32 {
        let now = t0 + Duration::from_millis(u64::from(k) * 20 + 10);
        jb.push((k + 4) as u16, (k + 4) * 960, body(k + 4), now);
        if let Playout::Packet(p) = jb.pop(now + Duration::from_millis(5)) {
            played.push(p);
        }
    }
    let stats = jb.stats();
    assert_eq!(stats.dropped, 4, "{stats:?}");
    assert_eq!(
        stats.depth, 0,
        "each frame is played right after it arrives"
    );
    // Every speech frame was played: only DTX frames were cut.
    let speech_played = played.iter().filter(|p| p.len() == 4).count();
    let speech_sent = (0..304u32).filter(|i| i % 25 < 20).count();
    assert_eq!(speech_played, speech_sent);
}

#[test]
fn a_missing_packet_cannot_stall_playout() {
    // Jitter raised the target; then the due packet never comes and the stream pauses, so the
    // depth can never reach the target. Waiting is bounded by the target.
    let t0 = Instant::now();
    let ms = |m: u64| t0 + Duration::from_millis(m);
    let mut jb = JitterBuffer::default();
    for (i, delay) in [0u32, 1, 2, 3].into_iter().zip([0u64, 60, 0, 60]) {
        jb.push(i as u16, i * 960, payload(i), ms(u64::from(i) * 20 + delay));
    }
    jb.push(5, 5 * 960, payload(5), ms(150));
    let target = jb.stats().target_depth;
    assert!(target >= 3, "target {target}");
    let out: Vec<Playout> = (0..12).map(|k| jb.pop(ms(160 + k * 20))).collect();
    let lost_at = out
        .iter()
        .position(|p| matches!(p, Playout::Lost { .. }))
        .expect("frame 4 is eventually given up");
    assert_eq!(
        out[lost_at],
        Playout::Lost {
            fec_from: Some(payload(5))
        }
    );
    assert!(out[lost_at + 1..].contains(&Playout::Packet(payload(5))));
    assert!(out.last() == Some(&Playout::Empty));
}

/// A clean stream of `samples`-long packets, popped one per packet, except that the receiver
/// stalls for 150 ms at 1 s (what was sent meanwhile is read at once when it wakes, and the
/// missed frames are popped at once, as a device speaker demands them): how long after the
/// stall the target depth is back to one packet, in ms.
fn target_back_to_one_after_a_stall(samples: u32) -> u64 {
    let frame = PacketDuration::of_samples(samples as usize).unwrap();
    let mut jb = JitterBuffer::new(JitterConfig::for_frame(frame));
    let t0 = Instant::now();
    let step_us = u64::from(samples) * 125 / 6;
    let at = |us: u64| t0 + Duration::from_micros(us);
    let stall = 1_000_000..1_150_000;
    let mut raised = false;
    for i in 0..(60_000_000 / step_us) as u32 {
        let sent = u64::from(i) * step_us;
        if stall.contains(&sent) {
            continue;
        }
        if sent >= stall.end && sent < stall.end + step_us {
            // Wake-up: everything sent during the stall arrives now, then the missed pops.
            let first = (stall.start / step_us) as u32;
            for k in first..i {
                jb.push(k as u16, k * samples, payload(k), at(stall.end));
            }
            for _ in first..i {
                let _ = jb.pop(at(stall.end));
            }
        }
        jb.push(i as u16, i * samples, payload(i), at(sent));
        let _ = jb.pop(at(sent + 500));
        let target = jb.stats().target_depth;
        raised |= target > 1;
        if sent > stall.end && raised && target == 1 {
            return (sent - stall.end) / 1000;
        }
    }
    panic!("{samples}-sample packets: the target stayed up for a minute");
}

#[test]
fn a_target_a_stall_raised_comes_down_as_fast_with_short_packets() {
    let long = target_back_to_one_after_a_stall(960);
    // Shedding a packet per second, 5 ms packets took four times as long as 20 ms ones to
    // come down from the same spike; now no longer than them (plus a step).
    for samples in [240, 120] {
        let short = target_back_to_one_after_a_stall(samples);
        assert!(
            short <= long + 500,
            "{samples}-sample packets: {short} ms, 20 ms packets: {long} ms"
        );
    }
    assert!(long < 15_000, "20 ms packets: {long} ms");
}
