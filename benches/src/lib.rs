//! Benchmarks live in `benches/`; run `cargo bench -p ultimate-stream-benches`.
