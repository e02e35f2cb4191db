//! Every integration test of this crate in one binary (one link instead of one per file).

mod support;

mod dead_letters;
mod docs_examples;
mod mariadb_tail;
mod mariadb_tail_ddl_forms;
mod mariadb_tail_network_faults;
mod mariadb_tail_snapshot_restart;
mod mariadb_tail_tls_faults;
mod mongo_tail;
mod mongo_tail_network_faults;
mod postgres_run;
mod run_config;
mod tail_arguments;
mod tail_process;
