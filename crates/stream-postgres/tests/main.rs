//! Every integration test of this crate in one binary. Tests run against the PostgreSQL at
//! `STREAM_TEST_PG_URL`, and MariaDB / MongoDB at `STREAM_TEST_MYSQL_URL` /
//! `STREAM_TEST_MONGO_URL` as sources.

mod support;

mod postgres_basics;
mod postgres_login;
mod postgres_mariadb_types;
mod postgres_mongo;
mod postgres_schema_changes;
mod postgres_shared_schema;
mod postgres_store;
mod postgres_transactions;
