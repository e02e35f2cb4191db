//! Every integration test of this crate in one binary (one link instead of one per file).

mod support;

mod dead_letters;
mod mariadb_tail;
mod mongo_tail;
mod postgres_run;
mod run_config;
