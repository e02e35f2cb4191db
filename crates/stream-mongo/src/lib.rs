//! MongoDB change streams for ultimate-stream.

mod bson_value;
mod config;
mod event;
mod snapshot;
mod source;
mod store;

pub use bson_value::{
    ConvertError, document_to_row, row_to_document, value_from_bson, value_to_bson,
};
pub use config::{ConfigError, FullDocument, MongoConfig, PreImages};
pub use source::MongoSource;
pub use store::MongoStore;
