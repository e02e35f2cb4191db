//! `ustream run` with PostgreSQL sinks, the built binary driven by a config file: MariaDB and
//! MongoDB into PostgreSQL, schema changes, crashes (SIGKILL at random points) and restarts.

mod support;

mod crash;
mod fanout;
mod login;
mod mariadb;
mod mongo;
mod outage;
mod poll;
mod recopy;
