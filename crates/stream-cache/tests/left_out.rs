//! Says what a plain `cargo test -p stream-cache` left out: cargo skips `tests/main.rs`
//! without a word when the `redis` feature is off (see `stream_testkit::report_left_out`).

use stream_testkit::{GatedSuite, report_left_out};

fn main() {
    report_left_out(
        "stream-cache",
        &[GatedSuite {
            suite: "the Redis tier's tests (tests/main.rs against STREAM_TEST_REDIS_URL, unit \
                    tests in src/redis_tier.rs)",
            feature: "redis",
            built: cfg!(feature = "redis"),
        }],
    );
}
