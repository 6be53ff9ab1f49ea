//! A call across two instances of one cluster (issue 21): a real Redis, two `cromulent server`
//! processes sharing it, alice's `cromulent headless` on one and bob's on the other. Seats,
//! presence and the call's signals all cross Redis; the audio itself goes peer to peer, and is
//! checked by its frequency: each hears the other's tone, not its own. (Two instances on two
//! Redis servers, i.e. no shared state, fail this test: alice never finds bob.)

mod support;

use cromulent::audio::analysis::dominant_frequency;
use support::{Redis, Server, ToneCaller, assert_hears_the_others, tone_call};

#[test]
fn two_users_on_two_instances_hear_each_others_tone() {
    let _alone = support::one_call_at_a_time();
    let redis = Redis::start();
    let one = Server::cluster_instance(&redis, "one");
    let two = Server::cluster_instance(&redis, "two");
    let callers = [
        ToneCaller {
            name: "alice",
            url: one.url(),
            hz: 440.0,
            frame_ms: "20",
        },
        ToneCaller {
            name: "bob",
            url: two.url(),
            hz: 660.0,
            frame_ms: "20",
        },
    ];
    let heard = tone_call(&callers);
    for (me, other) in [(0, 1), (1, 0)] {
        assert_hears_the_others(&callers, me, &heard[me], 0.8);
        let f = dominant_frequency(&heard[me], 48_000).expect("a dominant frequency");
        let (name, hz) = (callers[me].name, callers[other].hz);
        assert!((f - hz).abs() <= 5.0, "{name} hears {f} Hz, not {hz} Hz");
    }
}
