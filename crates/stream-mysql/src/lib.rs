//! MySQL and MariaDB binlog change data capture for ultimate-stream.
//!
//! [`MySqlSource`] reads the binlog over the replication protocol (`mysql_async`'s binlog
//! stream) and decodes rows with its own decoder, straight from the event bytes. Every event's
//! position resumes exactly after it, also in the middle of a transaction.
//!
//! ```no_run
//! use futures::StreamExt;
//! use stream_core::{CancellationToken, Source, SourceEvent, StartFrom};
//! use stream_mysql::{MySqlConfig, MySqlSource};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = MySqlConfig::from_url("mysql://repl:secret@127.0.0.1:3306/shop")?;
//! let mut source = MySqlSource::new(config);
//! let opened = source.open(StartFrom::Latest, CancellationToken::new()).await?;
//! eprintln!("streaming from {}", opened.start);
//! let mut batches = opened.batches;
//! while let Some(batch) = batches.next().await {
//!     for event in batch?.events {
//!         if let SourceEvent::Change(change) = event {
//!             println!("{}", change.to_json());
//!         }
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! Also here: [`MySqlPollingSource`] (for servers without replication rights; blind to
//! deletes), [`MySqlStore`] (CRUD and queries), [`MySqlProbe`] (health questions for a
//! monitor), an initial snapshot (`StartFrom::Snapshot`), MariaDB GTID positions
//! ([`MySqlConfig::gtid_positions`]) and TLS (`?ssl-mode=`). Both sources reconnect for
//! [`MySqlConfig::reconnect_for`]; everything read from the server is bounds-checked, and a
//! panic in a reader task ends its stream with an error. Not yet: resuming from MySQL GTID
//! sets, MariaDB binlog compression. See `docs/mysql.md`.

#[doc(hidden)]
pub mod bench_support;
mod binary;
mod cells;
mod charset;
mod chunks;
mod config;
mod ddl;
mod decimal;
mod decoder;
mod jsonb;
mod jsoncheck;
mod poll;
mod probe;
mod query;
mod reader;
mod schema;
mod server;
mod snapshot;
mod source;
mod sqltext;
mod start;
mod store;
mod supervise;
mod tablemap;
mod tracker;
mod values;
mod view_filter;
mod wire;
mod wire_tls;

pub use config::{ConfigError, MySqlConfig, PoolLimits, SslMode};
pub use poll::MySqlPollingSource;
pub use probe::MySqlProbe;
pub use server::{estimate_rows, list_tables};
pub use source::MySqlSource;
pub use store::MySqlStore;
