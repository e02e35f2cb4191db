//! Every integration test of this crate in one binary (one link instead of one per file).

mod seeded;
mod support;

mod mariadb_cdc;
mod mariadb_ddl_storm;
mod mariadb_huge_event;
mod mariadb_json;
mod mariadb_oracle;
mod mariadb_own_server;
mod mariadb_poll;
mod mariadb_probe;
mod mariadb_resume;
mod mariadb_snapshot;
mod mariadb_store;
mod mariadb_types;
