//! A PostgreSQL replica of MySQL/MariaDB tables and MongoDB collections for ultimate-stream.
//!
//! [`PostgresSink`] keeps one target table per source table or collection, created from the
//! source schema when missing: upserts by primary key, hard or soft deletes, every row with the
//! `_position` of its last change and `_synced_at`. Each batch goes in by binary COPY into a
//! temporary staging table, then one `INSERT ... ON CONFLICT DO UPDATE` and one delete per
//! table, in one transaction that also writes the pipeline's checkpoint
//! (`ustream.checkpoints`): after a crash at any point the target equals the source as of a
//! commit boundary and resumes exactly after it. Only whole source transactions are committed.
//!
//! ```no_run
//! use stream_core::{Batch, Position, SourceEvent};
//! use stream_postgres::{Deletes, PostgresSink, PostgresSinkConfig};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut config = PostgresSinkConfig::new("postgres://writer:secret@127.0.0.1:5432/replica");
//! config.deletes = Deletes::Soft;
//! let mut sink = PostgresSink::new("replica", config).checkpoint_as("shop-to-pg")?;
//! // Batches come from a source (`stream_mysql::MySqlSource`, `stream_mongo::MongoSource`).
//! let batch = Batch {
//!     events: Vec::<SourceEvent>::new(),
//!     position: "binlog:mysql-bin.000001:4+0".parse::<Position>()?,
//!     state: None,
//! };
//! let applied = sink.apply(&batch).await?;
//! if let Some(checkpoint) = applied.checkpoint {
//!     println!("durable up to {}", checkpoint.position);
//! }
//! # Ok(()) }
//! ```
//!
//! The settings are the sink block of a config file (`deny_unknown_fields`), and never print
//! the URL's password:
//!
//! ```
//! use stream_postgres::{Deletes, Keyless, OnError, PostgresSinkConfig};
//!
//! let config: PostgresSinkConfig = serde_json::from_str(
//!     r#"{"url": "postgres://writer:hunter2@db/replica", "deletes": "soft",
//!         "columns": {"orders": {"total": {"path": "amount.total", "type": "numeric"}}}}"#,
//! )?;
//! assert_eq!(config.deletes, Deletes::Soft);
//! assert_eq!((config.keyless, config.on_error), (Keyless::Refuse, OnError::Stop));
//! assert!(!format!("{config:?}").contains("hunter2"));
//! # Ok::<(), serde_json::Error>(())
//! ```
//!
//! Also here: [`PostgresCheckpointStore`] (the pipeline's resume point, from the same table)
//! and [`PostgresStore`] (read, write, delete and query rows of the replica by key). The type
//! mapping, schema evolution and failure behaviour are in `docs/postgres.md`.

mod checkpoint;
mod config;
mod connect;
mod encode;
mod error;
mod evolve;
mod merge;
mod preview;
mod rows;
mod schema;
mod sink;
mod store;
mod table;
mod txn;
mod types;

pub use checkpoint::PostgresCheckpointStore;
pub use config::{Deletes, ExtractedColumn, ExtractedType, Keyless, OnError, PostgresSinkConfig};
pub use connect::check_login;
pub use encode::NullReason;
pub use error::{PostgresError, TypeChange};
pub use merge::Rejection;
pub use sink::{Applied, PostgresSink};
pub use store::PostgresStore;
pub use types::PgType;
