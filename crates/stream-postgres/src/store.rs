//! placeholder
pub struct PostgresStore;
