//! Says what a plain `cargo test -p ultimate-stream` left out: cargo skips `tests/main.rs`
//! without a word unless the `full` feature is on (see `stream_testkit::report_left_out`).

use stream_testkit::{GatedSuite, report_left_out};

fn main() {
    report_left_out(
        "ultimate-stream",
        &[GatedSuite {
            suite: "the Streamer's integration tests (tests/main.rs against MariaDB, the MongoDB \
                    stand-in and Redis)",
            feature: "full",
            built: cfg!(feature = "full"),
        }],
    );
}
