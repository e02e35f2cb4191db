//! Input validation with errors that name the field or path and the value at fault: namespaces,
//! keys, and documents against a JSON Schema.
//!
//! Values quoted in errors are cut to [`MAX_QUOTED_CHARS`] characters (with `…`), so a huge
//! document never ends up in a log line.
//!
//! ```
//! use serde_json::json;
//! use stream_core::{Row, Value};
//! use stream_edge::validate::{self, DocumentSchema};
//!
//! let ns = validate::namespace("shop.orders")?;
//! let key: Row = [("id", Value::Int(7))].into_iter().collect();
//! validate::key(&ns, &key)?;
//!
//! let schema = DocumentSchema::new(&json!({
//!     "type": "object",
//!     "required": ["id"],
//!     "properties": {"id": {"type": "integer"}, "total": {"type": "string"}}
//! }))?;
//! let err = schema.validate(&json!({"id": "seven", "total": 19.9})).unwrap_err();
//! assert_eq!(err.to_string(), concat!(
//!     "document does not match the schema: ",
//!     r#"/id: "seven" is not of type "integer"; /total: 19.9 is not of type "string""#
//! ));
//! # Ok::<(), stream_edge::validate::ValidationError>(())
//! ```

use std::fmt;

use stream_core::{Namespace, Row, Value};

/// Values quoted in errors are cut to this many characters.
pub const MAX_QUOTED_CHARS: usize = 80;

/// Longest database name, in characters (MySQL's and MongoDB's limit).
pub const MAX_DB_CHARS: usize = 64;

/// Longest table or collection name, in bytes (MongoDB's limit on a whole namespace; MySQL's
/// own 64-character limit on table names is left to the server).
pub const MAX_TABLE_BYTES: usize = 255;

/// Input that does not pass validation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValidationError {
    /// A namespace (`db.table`) breaks one of the rules of [`namespace`].
    #[error("invalid namespace `{input}`: {reason}")]
    Namespace {
        /// The text given (cut to [`MAX_QUOTED_CHARS`]).
        input: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// A key breaks one of the rules of [`key`].
    #[error("invalid key for `{namespace}`: field `{field}` = {value}: {reason}")]
    Key {
        /// `db.table`.
        namespace: String,
        /// The field at fault, as a dotted path for nested documents (empty when the key has
        /// no fields at all).
        field: String,
        /// Its value in the canonical JSON encoding (cut to [`MAX_QUOTED_CHARS`]).
        value: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// A document does not match its schema: every violation, in the validator's order.
    #[error("document does not match the schema: {}", Violations(.violations))]
    Document {
        /// Each violation with its JSON pointer path.
        violations: Vec<Violation>,
    },
    /// The schema itself is not a valid JSON Schema.
    #[error("invalid JSON schema at {}: {reason}", pointer(.path))]
    Schema {
        /// JSON pointer to the part of the schema at fault (`/properties/a/type`).
        path: String,
        /// What is wrong.
        reason: String,
    },
}

/// One place where a document breaks its schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// JSON pointer to the value at fault (`/items/0/price`; empty for the whole document).
    pub path: String,
    /// JSON pointer to the schema keyword that failed (`/properties/items/items/...`).
    pub schema_path: String,
    /// The value at fault as compact JSON (cut to [`MAX_QUOTED_CHARS`]).
    pub value: String,
    /// What is wrong, quoting the value.
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", pointer(&self.path), self.message)
    }
}

struct Violations<'a>(&'a [Violation]);

impl fmt::Display for Violations<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, v) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{v}")?;
        }
        Ok(())
    }
}

/// The root pointer `""` reads better as `/`.
fn pointer(path: &str) -> &str {
    if path.is_empty() { "/" } else { path }
}

/// `s` cut to [`MAX_QUOTED_CHARS`] characters, with `…` when cut.
fn truncate(s: &str) -> String {
    match s.char_indices().nth(MAX_QUOTED_CHARS) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_owned(),
    }
}

fn is_glob(c: char) -> bool {
    c == '*' || c == '?'
}

/// Parses and checks a namespace `db.table`.
///
/// Rules (what both MySQL/MariaDB and MongoDB accept, minus what is nearly always a mistake):
/// - the text splits at its **first** `.` into database and table, so MongoDB collections
///   with dots (`app.system.views`) work; both parts must be non-empty;
/// - no NUL or other control character anywhere, no leading or trailing whitespace in either
///   part;
/// - no `*` or `?` (those make a [`stream_core::NamespacePattern`], not a namespace);
/// - the database has at most [`MAX_DB_CHARS`] characters and none of `/ \ " $` or whitespace
///   (MongoDB rejects them in database names);
/// - the table has at most [`MAX_TABLE_BYTES`] bytes and does not start with `$` (MongoDB
///   reserves it for operators and `$cmd`).
pub fn namespace(text: &str) -> Result<Namespace, ValidationError> {
    let err = |reason| ValidationError::Namespace {
        input: truncate(text),
        reason,
    };
    let Some((db, table)) = text.split_once('.') else {
        return Err(err(
            "expected `db.table`, with a `.` between database and table",
        ));
    };
    if db.is_empty() {
        return Err(err("empty database name before `.`"));
    }
    if table.is_empty() {
        return Err(err("empty table or collection name after `.`"));
    }
    if text.contains('\0') {
        return Err(err("contains a NUL character"));
    }
    if text.chars().any(char::is_control) {
        return Err(err("contains a control character"));
    }
    for part in [db, table] {
        if part.trim() != part {
            return Err(err("leading or trailing whitespace around a name"));
        }
    }
    if text.contains(is_glob) {
        return Err(err(
            "contains `*` or `?`: that is a pattern, not a single namespace",
        ));
    }
    if db.chars().count() > MAX_DB_CHARS {
        return Err(err("database name longer than 64 characters"));
    }
    if db.contains(['/', '\\', '"', '$']) || db.contains(char::is_whitespace) {
        return Err(err(
            "database name contains one of `/ \\ \" $` or whitespace",
        ));
    }
    if table.len() > MAX_TABLE_BYTES {
        return Err(err("table or collection name longer than 255 bytes"));
    }
    if table.starts_with('$') {
        return Err(err("table or collection name starts with `$`"));
    }
    Ok(Namespace::new(db, table))
}

/// Checks a key (primary-key columns; MongoDB: `_id`) for `ns`.
///
/// Rules: the key has at least one field; field names are non-empty, unique, without NUL and
/// not starting with `$` (also the names inside embedded documents, checked as dotted paths);
/// no top-level value is NULL (a key column can never be NULL).
pub fn key(ns: &Namespace, key: &Row) -> Result<(), ValidationError> {
    let err = |field: &str, value: &str, reason| ValidationError::Key {
        namespace: ns.to_string(),
        field: truncate(field),
        value: value.to_owned(),
        reason,
    };
    if key.is_empty() {
        return Err(err("", "{}", "the key has no fields"));
    }
    for (i, (name, value)) in key.iter().enumerate() {
        check_field_name(name, name)
            .map_err(|(path, reason)| err(&path, &quote_value(value), reason))?;
        if key.iter().take(i).any(|(n, _)| n == name) {
            return Err(err(
                name,
                &quote_value(value),
                "the field appears twice in the key",
            ));
        }
        if value.is_null() {
            return Err(err(name, "null", "a key field cannot be NULL"));
        }
        check_nested(name, value).map_err(|(path, v, reason)| err(&path, &v, reason))?;
    }
    Ok(())
}

fn check_field_name(name: &str, path: &str) -> Result<(), (String, &'static str)> {
    if name.is_empty() {
        return Err((path.to_owned(), "empty field name"));
    }
    if name.contains('\0') {
        return Err((path.to_owned(), "field name contains a NUL character"));
    }
    if name.starts_with('$') {
        return Err((path.to_owned(), "field name starts with `$`"));
    }
    Ok(())
}

/// Field names inside embedded documents (and documents in arrays), as dotted paths.
fn check_nested(path: &str, value: &Value) -> Result<(), (String, String, &'static str)> {
    match value {
        Value::Document(row) => {
            for (name, v) in row.iter() {
                let child = format!("{path}.{name}");
                check_field_name(name, &child).map_err(|(p, r)| (p, quote_value(v), r))?;
                check_nested(&child, v)?;
            }
            Ok(())
        }
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, v)| check_nested(&format!("{path}.{i}"), v)),
        _ => Ok(()),
    }
}

/// A value in the canonical JSON encoding, cut for quoting.
fn quote_value(value: &Value) -> String {
    let mut buf = Vec::new();
    stream_core::json::write_value(&mut buf, value);
    truncate(&String::from_utf8_lossy(&buf))
}

/// A compiled JSON Schema (drafts 4, 6, 7, 2019-09 and 2020-12, detected from `$schema`;
/// 2020-12 without it) for validating documents.
///
/// `format` is asserted (`"format": "date"` rejects `"nope"`), unknown formats are ignored.
/// Remote `$ref`s are not fetched: a schema must be self-contained (local `#/...` and `$defs`
/// references work).
#[derive(Debug)]
pub struct DocumentSchema {
    validator: jsonschema::Validator,
}

impl DocumentSchema {
    /// Compiles a schema; an invalid schema is a [`ValidationError::Schema`].
    pub fn new(schema: &serde_json::Value) -> Result<Self, ValidationError> {
        let validator = jsonschema::options()
            .should_validate_formats(true)
            .build(schema)
            .map_err(|e| ValidationError::Schema {
                path: e.instance_path.as_str().to_owned(),
                reason: e.masked_with(truncate(&e.instance.to_string())).to_string(),
            })?;
        Ok(Self { validator })
    }

    /// Compiles a schema given as JSON text.
    pub fn parse(text: &str) -> Result<Self, ValidationError> {
        let schema: serde_json::Value =
            serde_json::from_str(text).map_err(|e| ValidationError::Schema {
                path: String::new(),
                reason: format!("not JSON: {e}"),
            })?;
        Self::new(&schema)
    }

    /// Whether the document matches (faster than [`validate`](Self::validate)).
    pub fn is_valid(&self, doc: &serde_json::Value) -> bool {
        self.validator.is_valid(doc)
    }

    /// Checks a document, listing every violation with its JSON pointer path.
    pub fn validate(&self, doc: &serde_json::Value) -> Result<(), ValidationError> {
        if self.validator.is_valid(doc) {
            return Ok(());
        }
        let violations: Vec<Violation> = self
            .validator
            .iter_errors(doc)
            .map(|e| {
                let value = truncate(&e.instance.to_string());
                Violation {
                    path: e.instance_path.as_str().to_owned(),
                    schema_path: e.schema_path.as_str().to_owned(),
                    message: e.masked_with(value.as_str()).to_string(),
                    value,
                }
            })
            .collect();
        Err(ValidationError::Document { violations })
    }

    /// Checks a row or MongoDB document through its canonical JSON encoding
    /// (`docs/event-json.md`): decimals are strings, binaries base64, MongoDB values Extended
    /// JSON, so the schema must describe that encoding.
    pub fn validate_row(&self, row: &Row) -> Result<(), ValidationError> {
        let mut buf = Vec::with_capacity(row.approx_size());
        stream_core::json::write_row(&mut buf, row);
        // The encoder always writes valid JSON; a failure here would be a bug in it.
        let doc: serde_json::Value =
            serde_json::from_slice(&buf).map_err(|e| ValidationError::Document {
                violations: vec![Violation {
                    path: String::new(),
                    schema_path: String::new(),
                    value: truncate(&String::from_utf8_lossy(&buf)),
                    message: format!("the row does not encode to valid JSON: {e}"),
                }],
            })?;
        self.validate(&doc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn good_namespaces_parse_at_the_first_dot() {
        let ns = namespace("shop.orders").expect("valid");
        assert_eq!(ns, Namespace::new("shop", "orders"));
        let ns = namespace("app.system.views").expect("dotted collection");
        assert_eq!((&*ns.db, &*ns.table), ("app", "system.views"));
        assert!(
            namespace("shop.order items").is_ok(),
            "inner spaces in tables are fine"
        );
        assert!(namespace("café.bestellungen").is_ok());
    }

    #[test]
    fn bad_namespaces_name_the_input_and_the_rule() {
        let long_db = "d".repeat(65);
        let long_db_ns = format!("{long_db}.t");
        let long_table = format!("db.{}", "t".repeat(256));
        let cases = [
            ("shop", "expected `db.table`"),
            (".orders", "empty database"),
            ("shop.", "empty table"),
            ("shop.ord\0ers", "NUL"),
            ("shop.ord\ters", "control character"),
            (" shop.orders", "whitespace"),
            ("shop.orders ", "whitespace"),
            ("shop.*", "pattern"),
            ("sh?p.orders", "pattern"),
            (long_db_ns.as_str(), "longer than 64"),
            ("my db.orders", "database name contains"),
            ("a/b.orders", "database name contains"),
            ("a$b.orders", "database name contains"),
            (long_table.as_str(), "longer than 255"),
            ("shop.$cmd", "starts with `$`"),
        ];
        for (input, reason) in cases {
            let err = namespace(input).expect_err(input);
            let text = err.to_string();
            assert!(text.contains(reason), "{input:?}: {text}");
            assert!(text.starts_with("invalid namespace `"), "{text}");
        }
        let err = namespace(&long_table).expect_err("long");
        assert!(err.to_string().contains('…'), "long inputs are cut: {err}");
        assert!(err.to_string().len() < 200);
    }

    fn row(fields: Vec<(&str, Value)>) -> Row {
        fields.into_iter().collect()
    }

    #[test]
    fn keys_must_have_named_non_null_fields() {
        let ns = Namespace::new("shop", "orders");
        key(
            &ns,
            &row(vec![("id", Value::Int(7)), ("line", Value::Int(1))]),
        )
        .expect("valid");
        let nested = row(vec![("a", Value::Int(1)), ("b", Value::Null)]);
        key(&ns, &row(vec![("_id", Value::Document(nested))])).expect("NULL inside _id is fine");

        let cases: Vec<(Row, &str)> = vec![
            (
                Row::new(),
                "invalid key for `shop.orders`: field `` = {}: the key has no fields",
            ),
            (
                row(vec![("id", Value::Null)]),
                "invalid key for `shop.orders`: field `id` = null: a key field cannot be NULL",
            ),
            (
                row(vec![("", Value::Int(1))]),
                "invalid key for `shop.orders`: field `` = 1: empty field name",
            ),
            (
                row(vec![("$id", Value::Int(1))]),
                "invalid key for `shop.orders`: field `$id` = 1: field name starts with `$`",
            ),
            (
                row(vec![("i\0d", Value::from("x"))]),
                "invalid key for `shop.orders`: field `i\0d` = \"x\": field name contains a NUL character",
            ),
            (
                row(vec![("id", Value::Int(1)), ("id", Value::Int(2))]),
                "invalid key for `shop.orders`: field `id` = 2: the field appears twice in the key",
            ),
            (
                row(vec![(
                    "_id",
                    Value::Document(row(vec![("ok", Value::Int(1)), ("$bad", Value::Int(2))])),
                )]),
                "invalid key for `shop.orders`: field `_id.$bad` = 2: field name starts with `$`",
            ),
        ];
        for (k, expected) in cases {
            assert_eq!(key(&ns, &k).expect_err(expected).to_string(), expected);
        }
    }

    #[test]
    fn long_key_values_are_cut_in_errors() {
        let ns = Namespace::new("shop", "orders");
        let long = "x".repeat(10_000);
        let k = row(vec![
            ("id", Value::Int(1)),
            ("id", Value::from(long.as_str())),
        ]);
        let err = key(&ns, &k).expect_err("duplicate");
        let ValidationError::Key { value, .. } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(value.chars().count(), MAX_QUOTED_CHARS + 1);
        assert!(value.ends_with('…'));
    }

    fn order_schema() -> DocumentSchema {
        DocumentSchema::new(&json!({
            "type": "object",
            "required": ["id", "items"],
            "additionalProperties": false,
            "properties": {
                "id": {"type": "integer", "minimum": 1},
                "status": {"enum": ["new", "paid"]},
                "items": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {"sku": {"type": "string", "maxLength": 8}}
                    }
                }
            }
        }))
        .expect("schema")
    }

    #[test]
    fn schema_violations_are_listed_with_their_paths() {
        let schema = order_schema();
        schema
            .validate(&json!({"id": 1, "status": "paid", "items": [{"sku": "A1"}]}))
            .expect("valid");
        let err = schema
            .validate(&json!({
                "id": 0,
                "status": "lost",
                "items": [{"sku": "A1"}, {"sku": "ABCDEFGHIJ"}],
                "note": 1
            }))
            .expect_err("invalid");
        let ValidationError::Document { violations } = &err else {
            panic!("{err:?}")
        };
        let mut paths: Vec<&str> = violations.iter().map(|v| v.path.as_str()).collect();
        paths.sort_unstable();
        assert_eq!(paths, vec!["", "/id", "/items/1/sku", "/status"]);
        let sku = violations
            .iter()
            .find(|v| v.path == "/items/1/sku")
            .expect("sku");
        assert_eq!(sku.value, r#""ABCDEFGHIJ""#);
        assert_eq!(
            sku.schema_path,
            "/properties/items/items/properties/sku/maxLength"
        );
        let text = err.to_string();
        assert!(
            text.starts_with("document does not match the schema: "),
            "{text}"
        );
        assert!(
            text.contains(r#"/items/1/sku: "ABCDEFGHIJ" is longer than 8 characters"#),
            "{text}"
        );
        assert!(
            text.contains("/id: 0 is less than the minimum of 1"),
            "{text}"
        );
        assert!(
            text.contains("/: Additional properties are not allowed ('note'"),
            "{text}"
        );

        let err = schema.validate(&json!({"id": 2})).expect_err("missing");
        assert_eq!(
            err.to_string(),
            r#"document does not match the schema: /: "items" is a required property"#
        );
    }

    #[test]
    fn long_values_are_cut_in_schema_errors() {
        let schema = DocumentSchema::new(&json!({"type": "integer"})).expect("schema");
        let err = schema
            .validate(&json!("y".repeat(5000)))
            .expect_err("string");
        let text = err.to_string();
        assert!(text.len() < 200, "{text}");
        assert!(text.contains("…"), "{text}");
        assert!(text.ends_with(r#"is not of type "integer""#), "{text}");
    }

    #[test]
    fn invalid_schemas_are_rejected_with_their_path() {
        let err = DocumentSchema::new(&json!({"type": "object", "properties": {"a": {"type": 5}}}))
            .expect_err("bad type");
        assert!(matches!(err, ValidationError::Schema { .. }), "{err:?}");
        assert!(
            err.to_string()
                .starts_with("invalid JSON schema at /properties/a/type: 5 "),
            "{err}"
        );
        let err = DocumentSchema::new(&json!({"$ref": "https://example.com/order.json"}))
            .expect_err("remote refs are not fetched");
        assert!(
            err.to_string().contains("https://example.com/order.json"),
            "{err}"
        );
        let err = DocumentSchema::parse("{").expect_err("not JSON");
        assert!(err.to_string().contains("not JSON"), "{err}");
    }

    #[test]
    fn formats_are_asserted() {
        let schema = DocumentSchema::parse(r#"{"properties": {"day": {"format": "date"}}}"#)
            .expect("schema");
        assert!(schema.is_valid(&json!({"day": "2024-02-29"})));
        let err = schema
            .validate(&json!({"day": "nope"}))
            .expect_err("format");
        assert_eq!(
            err.to_string(),
            r#"document does not match the schema: /day: "nope" is not a "date""#
        );
    }

    #[test]
    fn rows_validate_through_their_canonical_json() {
        let schema = order_schema();
        let item = row(vec![("sku", Value::from("TOO-LONG-SKU"))]);
        let r = row(vec![
            ("id", Value::Int(3)),
            ("items", Value::Array(vec![Value::Document(item)])),
        ]);
        let err = schema.validate_row(&r).expect_err("sku too long");
        assert!(err.to_string().contains("/items/0/sku"), "{err}");
        let good = row(vec![
            ("id", Value::UInt(3)),
            ("items", Value::Array(vec![])),
        ]);
        schema.validate_row(&good).expect("valid");
    }
}
