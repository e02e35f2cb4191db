//! Every integration test of this crate in one binary (one link instead of one per file).

mod checkpoint_crash;
mod json_shape;
mod proptests;
