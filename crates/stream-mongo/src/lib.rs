//! MongoDB change streams for ultimate-stream.
//!
//! [`MongoSource`] watches a collection, a database or the whole deployment (the narrowest
//! scope that covers [`MongoConfig::filter`]) and yields the same `ChangeEvent`s and positions
//! as the MySQL source: every event's position is its resume token, so resuming from it yields
//! exactly the events after it. Quiet streams still move their position (post-batch resume
//! tokens), `invalidate` is surfaced and the stream restarts after it, a resume point the oplog
//! no longer holds is a final `SourceError::PositionPurged`, and network errors and failovers are
//! resumed with backoff from the last position delivered.
//!
//! ```no_run
//! use futures::StreamExt;
//! use stream_core::{CancellationToken, NamespaceFilter, Source, SourceEvent, StartFrom};
//! use stream_mongo::{FullDocument, MongoConfig, MongoSource};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut config = MongoConfig::from_url("mongodb://app:secret@127.0.0.1:27017/?replicaSet=rs0")?;
//! config.filter = NamespaceFilter::parse("shop.orders", "")?;
//! // Updates carry the whole document by default; `Off` sends the changed fields alone.
//! config.full_document = FullDocument::Off;
//! let opened = MongoSource::new(config)
//!     .open(StartFrom::Latest, CancellationToken::new())
//!     .await?;
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
//! To stop, cancel the token and read the stream to its end: it ends once the source has closed
//! its cursors and connections.
//!
//! Also here: an initial snapshot handed over to the stream (`StartFrom::Snapshot`),
//! [`MongoPollingSource`] for servers without change streams, [`MongoStore`] (CRUD and
//! queries), [`MongoProbe`] (health), and the BSON conversions (nesting capped at
//! [`MAX_DEPTH`]). See `docs/mongodb.md`.

mod bson_value;
mod config;
mod connect;
mod errors;
mod event;
mod hand_over;
mod order;
mod poll;
mod probe;
mod snapshot;
mod source;
mod store;
mod uri;

pub use bson_value::{
    ConvertError, MAX_DEPTH, document_to_row, raw_document_to_row, row_to_document,
    value_from_bson, value_to_bson,
};
pub use config::{ConfigError, FullDocument, MongoConfig, PreImages};
pub use connect::list_collections;
pub use poll::MongoPollingSource;
pub use probe::MongoProbe;
pub use source::MongoSource;
pub use store::MongoStore;

/// The README's example, compiled with the doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
