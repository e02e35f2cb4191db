//! Every integration test of this crate in one binary. It needs the `redis` feature (see
//! `required-features` in Cargo.toml); without it, `tests/left_out.rs` says so.

mod redis_tier;
