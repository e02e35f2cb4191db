//! Conversions between BSON and the portable [`Value`]/[`Row`] model of `stream-core`.
//!
//! Reading ([`value_from_bson`], [`document_to_row`]) is total: every BSON type has a [`Value`]
//! variant of its own, so nothing is lost. Writing ([`value_to_bson`], [`row_to_document`]) maps
//! every BSON variant back to exactly the BSON it came from (except that an int64 which fits in
//! 32 bits is written as an int32), and maps the MySQL variants to their nearest BSON type; what
//! BSON cannot hold is a [`ConvertError`] naming the field and the value.
//!
//! Both ways refuse documents and arrays nested deeper than [`MAX_DEPTH`] levels with
//! [`ConvertError::TooDeep`] (the conversions recurse; a deeper document must not overflow the
//! stack). [`raw_document_to_row`] checks the depth on the raw bytes, without recursing past
//! the limit, before anything is decoded.

mod read;
mod write;

pub(crate) use read::{check_depth, decode, decode_checked, raw_path};
pub use read::{document_to_row, raw_document_to_row, value_from_bson};
pub use write::{row_to_document, value_to_bson};

/// How many documents and arrays may nest inside the top-level document: 100, MongoDB's own
/// limit for stored documents, so that nothing a MongoDB server stores is refused. `{"a": 1}`
/// has no nesting, `{"a": {"b": [1]}}` two levels.
pub const MAX_DEPTH: usize = 100;

/// A dotted path shortened for messages: at most a few segments of a very deep path.
pub(crate) fn shown_path(path: &str) -> String {
    const KEEP: usize = 4;
    let segments: Vec<&str> = path.split('.').collect();
    if segments.len() <= 2 * KEEP {
        return path.to_owned();
    }
    format!(
        "{}.….{} ({} levels)",
        segments[..KEEP].join("."),
        segments[segments.len() - 1],
        segments.len()
    )
}

use stream_core::Value;

/// Why a [`Value`] or [`Row`](stream_core::Row) cannot be written as BSON, or BSON cannot be read.
///
/// Every variant carries the dotted path of the field at fault (`a.b`, `tags.2` inside arrays);
/// it is empty when [`value_to_bson`] fails on a top-level value, and [`row_to_document`] fills
/// it in. The message starts with ``field `path`: `` when the path is known.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ConvertError {
    /// An unsigned integer above `i64::MAX`: BSON has no unsigned 64-bit type.
    #[error("{at}unsigned integer {value} is above the BSON int64 maximum {max}", at = at(.field), max = i64::MAX)]
    IntegerOutOfRange {
        /// Dotted path of the field.
        field: String,
        /// The value.
        value: u64,
    },
    /// A value of a kind BSON has no type for (MySQL `TIME`).
    #[error("{at}{kind} value {value} has no BSON equivalent", at = at(.field))]
    Unsupported {
        /// Dotted path of the field.
        field: String,
        /// The kind of value (`time`).
        kind: &'static str,
        /// The value, as its JSON encoding.
        value: String,
    },
    /// A date or time a BSON datetime cannot hold: zero dates, days past the month's end, or
    /// instants out of the 64-bit millisecond range.
    #[error("{at}{kind} {value} cannot be stored as a BSON datetime: {reason}", at = at(.field))]
    Temporal {
        /// Dotted path of the field.
        field: String,
        /// `date`, `datetime` or `timestamp`.
        kind: &'static str,
        /// The value, as its JSON encoding.
        value: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// Decimal text that a Decimal128 cannot hold exactly (more than 34 significant digits, or
    /// an exponent out of range).
    #[error("{at}decimal {value} does not fit a BSON Decimal128: {reason}", at = at(.field))]
    Decimal {
        /// Dotted path of the field.
        field: String,
        /// The decimal text.
        value: String,
        /// The parser's reason.
        reason: String,
    },
    /// A JSON document that is not valid JSON.
    #[error("{at}JSON document cannot be converted to BSON: {reason}", at = at(.field))]
    Json {
        /// Dotted path of the field.
        field: String,
        /// The parser's reason.
        reason: String,
    },
    /// Documents and arrays nested deeper than [`MAX_DEPTH`] levels.
    #[error("{at}documents and arrays nest deeper than {limit} levels (MongoDB's limit for stored documents)", at = at(.field))]
    TooDeep {
        /// Dotted path of the first value past the limit.
        field: String,
        /// The limit, [`MAX_DEPTH`].
        limit: usize,
    },
    /// Something BSON cannot encode: a field name appearing twice, NUL bytes in field names or
    /// regular expressions; or BSON bytes that are not well-formed.
    #[error("{at}{reason}", at = at(.field))]
    Invalid {
        /// Dotted path of the field.
        field: String,
        /// What is wrong.
        reason: String,
    },
}

/// The message prefix naming a field, or nothing for a top-level value.
fn at(field: &str) -> String {
    if field.is_empty() {
        String::new()
    } else {
        format!("field `{}`: ", shown_path(field))
    }
}

impl ConvertError {
    /// The dotted path of the field at fault; empty for a top-level value.
    pub fn field(&self) -> &str {
        match self {
            ConvertError::IntegerOutOfRange { field, .. }
            | ConvertError::Unsupported { field, .. }
            | ConvertError::Temporal { field, .. }
            | ConvertError::Decimal { field, .. }
            | ConvertError::Json { field, .. }
            | ConvertError::TooDeep { field, .. }
            | ConvertError::Invalid { field, .. } => field,
        }
    }

    fn field_mut(&mut self) -> &mut String {
        match self {
            ConvertError::IntegerOutOfRange { field, .. }
            | ConvertError::Unsupported { field, .. }
            | ConvertError::Temporal { field, .. }
            | ConvertError::Decimal { field, .. }
            | ConvertError::Json { field, .. }
            | ConvertError::TooDeep { field, .. }
            | ConvertError::Invalid { field, .. } => field,
        }
    }

    /// The message without the field, for errors that name the field on their own.
    pub(crate) fn reason(&self) -> String {
        let mut bare = self.clone();
        bare.field_mut().clear();
        bare.to_string()
    }

    /// Prefixes the path with the name of the enclosing field or array index.
    pub(crate) fn within(mut self, name: &str) -> Self {
        let field = self.field_mut();
        *field = if field.is_empty() {
            name.to_owned()
        } else {
            format!("{name}.{field}")
        };
        self
    }
}

/// The next nesting level, or [`ConvertError::TooDeep`] past `limit`.
fn deeper(nesting: usize, limit: usize) -> Result<usize, ConvertError> {
    if nesting >= limit {
        Err(ConvertError::TooDeep {
            field: String::new(),
            limit,
        })
    } else {
        Ok(nesting + 1)
    }
}

/// The value as its canonical JSON encoding, for error messages.
fn show(v: &Value) -> String {
    let mut buf = Vec::new();
    stream_core::json::write_value(&mut buf, v);
    String::from_utf8_lossy(&buf).into_owned()
}

/// Regular expression options in alphabetical order, as MongoDB stores them.
fn sorted(options: &str) -> String {
    let mut chars: Vec<char> = options.chars().collect();
    chars.sort_unstable();
    chars.into_iter().collect()
}

#[cfg(test)]
mod tests;
