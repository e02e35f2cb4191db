//! Every integration test of this crate in one binary (one link instead of one per file).

mod support;

mod mongo_cdc;
mod mongo_deep;
mod mongo_first_contact;
mod mongo_own_server;
mod mongo_poll;
mod mongo_probe;
mod mongo_secrets;
mod mongo_snapshot_window;
mod mongo_store;
