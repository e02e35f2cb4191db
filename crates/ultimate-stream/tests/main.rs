//! Every integration test of this crate in one binary (one link instead of one per file).

mod support;

mod docs_examples;
mod mariadb_examples;
mod mariadb_first_contact;
mod mariadb_never_lose;
mod mariadb_sinks;
mod mariadb_snapshot_checkpoint;
mod mariadb_streamer;
mod mongo_streamer;
mod streamer_api;
