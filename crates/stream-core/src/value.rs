//! Column and field values, rows and documents.
//!
//! One [`Value`] type covers every MySQL/MariaDB column type and every BSON type named in
//! `docs/event-json.md`. Integers and decimals are exact; temporal values keep the precision
//! (`fsp`) the column declares so that the JSON encoding can print exactly that many fraction
//! digits.

use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;

/// A field or column name. Shared, because every row of a table repeats the same names.
pub type Name = Arc<str>;

/// A single value of a row (MySQL) or document (MongoDB).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Value {
    /// SQL `NULL`, BSON null.
    Null,
    /// BSON boolean.
    Bool(bool),
    /// Any signed integer: TINYINT … BIGINT, YEAR, BSON int32/int64.
    Int(i64),
    /// Any unsigned integer: `BIGINT UNSIGNED` up to `u64::MAX`, BIT(n).
    UInt(u64),
    /// MySQL `FLOAT` (single precision): printed in the shortest form that reads back as `f32`.
    Float(f32),
    /// MySQL `DOUBLE`, BSON double.
    Double(f64),
    /// MySQL `DECIMAL(p,s)`: exact text with exactly `s` fraction digits.
    Decimal(Decimal),
    /// Text, already decoded from the column's character set.
    String(String),
    /// Binary strings, BLOBs, GEOMETRY (WKB): printed as standard base64.
    Bytes(Vec<u8>),
    /// A JSON document (MySQL JSON, MariaDB JSON columns): printed as JSON, not as a string.
    Json(Json),
    /// `DATE`, zero dates allowed.
    Date(Date),
    /// `DATETIME(fsp)`, no zone.
    DateTime(DateTime),
    /// `TIMESTAMP(fsp)`, a UTC instant.
    Timestamp(Timestamp),
    /// `TIME(fsp)`, a signed duration of up to 838 hours.
    Time(Time),
    /// `ENUM` label; the invalid value (index 0) is the empty label.
    Enum(String),
    /// `SET` labels in the column's definition order.
    Set(Vec<String>),
    /// BSON ObjectId.
    ObjectId([u8; 12]),
    /// BSON UTC datetime, milliseconds since the epoch.
    BsonDateTime(i64),
    /// BSON Decimal128, as its canonical string.
    Decimal128(String),
    /// BSON binary with its subtype.
    Binary {
        /// BSON binary subtype (0 = generic, 4 = UUID, …).
        subtype: u8,
        /// The bytes.
        bytes: Vec<u8>,
    },
    /// BSON regular expression.
    Regex {
        /// The pattern.
        pattern: String,
        /// The options, alphabetically sorted.
        options: String,
    },
    /// BSON internal timestamp.
    BsonTimestamp {
        /// Seconds since the epoch.
        t: u32,
        /// Ordinal within the second.
        i: u32,
    },
    /// Embedded document, fields in their stored order.
    Document(Row),
    /// BSON array.
    Array(Vec<Value>),
    /// BSON MinKey.
    MinKey,
    /// BSON MaxKey.
    MaxKey,
    /// BSON undefined (deprecated).
    Undefined,
    /// BSON symbol (deprecated).
    Symbol(String),
    /// BSON JavaScript code.
    JavaScript(String),
    /// BSON JavaScript code with scope (deprecated).
    JavaScriptWithScope {
        /// The code.
        code: String,
        /// The scope document.
        scope: Row,
    },
    /// BSON DBPointer (deprecated).
    DbPointer {
        /// The namespace.
        namespace: String,
        /// The ObjectId.
        id: [u8; 12],
    },
}

/// Why a value could not be built from its parts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValueError {
    /// The text is not a decimal number of the accepted form.
    #[error("invalid decimal `{input}`: {reason}")]
    Decimal {
        /// The rejected text.
        input: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The text is not valid JSON.
    #[error("invalid JSON document: {reason}")]
    Json {
        /// The parser's message.
        reason: String,
    },
    /// A temporal value is out of range.
    #[error("invalid {kind}: {reason}")]
    Temporal {
        /// `date`, `datetime`, `time` or `timestamp`.
        kind: &'static str,
        /// What is out of range.
        reason: String,
    },
}

/// An exact decimal number in plain notation: optional `-`, digits, optional `.` and digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Decimal(Box<str>);

impl Decimal {
    /// Validates `text` as plain decimal notation (no exponent, no `+`, no spaces).
    pub fn parse(text: &str) -> Result<Self, ValueError> {
        let err = |reason| ValueError::Decimal {
            input: text.to_owned(),
            reason,
        };
        let digits = text.strip_prefix('-').unwrap_or(text);
        let (int, frac) = match digits.split_once('.') {
            Some((i, f)) => (i, Some(f)),
            None => (digits, None),
        };
        if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err("expected digits before the decimal point"));
        }
        if let Some(f) = frac
            && (f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(err("expected digits after the decimal point"));
        }
        Ok(Self(text.into()))
    }

    /// Wraps text the caller has produced in plain decimal notation (a decoder's output).
    pub fn from_plain_unchecked(text: String) -> Self {
        Self(text.into_boxed_str())
    }

    /// The decimal as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn to_f64(&self) -> f64 {
        self.0.parse().unwrap_or(f64::NAN)
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A JSON document held as compact, validated JSON text; key order is kept as written.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Json(Box<str>);

impl Json {
    /// Validates `text` as one JSON value and stores it without insignificant whitespace.
    pub fn parse(text: &str) -> Result<Self, ValueError> {
        serde_json::from_str::<serde::de::IgnoredAny>(text).map_err(|e| ValueError::Json {
            reason: e.to_string(),
        })?;
        Ok(Self(minify(text).into_boxed_str()))
    }

    /// Wraps compact JSON text the caller guarantees to be valid (a decoder's own output).
    pub fn from_compact_unchecked(text: String) -> Self {
        Self(text.into_boxed_str())
    }

    /// The compact JSON text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Removes whitespace outside strings from already-validated JSON.
fn minify(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in text.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if !matches!(c, ' ' | '\n' | '\r' | '\t') {
            if c == '"' {
                in_string = true;
            }
            out.push(c);
        }
    }
    out
}

/// A calendar date; MySQL's zero and partly zero dates (`0000-00-00`, `2024-00-10`) are allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    /// Year, 0–9999.
    pub year: u16,
    /// Month, 0–12 (0 only in zero dates).
    pub month: u8,
    /// Day, 0–31 (0 only in zero dates).
    pub day: u8,
}

impl Date {
    /// Builds a date, rejecting fields out of MySQL's range.
    pub fn new(year: u16, month: u8, day: u8) -> Result<Self, ValueError> {
        if year > 9999 || month > 12 || day > 31 {
            return Err(ValueError::Temporal {
                kind: "date",
                reason: format!("{year:04}-{month:02}-{day:02} is out of range"),
            });
        }
        Ok(Self { year, month, day })
    }
}

/// A wall-clock date and time without zone (`DATETIME(fsp)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DateTime {
    /// The date part.
    pub date: Date,
    /// Hour 0–23.
    pub hour: u8,
    /// Minute 0–59.
    pub minute: u8,
    /// Second 0–59.
    pub second: u8,
    /// Microseconds 0–999999.
    pub micros: u32,
    /// Fraction digits to print, 0–6 (the column's fsp).
    pub fsp: u8,
}

impl DateTime {
    /// Builds a datetime, rejecting fields out of range.
    pub fn new(
        date: Date,
        hour: u8,
        minute: u8,
        second: u8,
        micros: u32,
        fsp: u8,
    ) -> Result<Self, ValueError> {
        if hour > 23 || minute > 59 || second > 59 || micros > 999_999 || fsp > 6 {
            return Err(ValueError::Temporal {
                kind: "datetime",
                reason: format!("{hour}:{minute}:{second}.{micros} (fsp {fsp}) is out of range"),
            });
        }
        Ok(Self {
            date,
            hour,
            minute,
            second,
            micros,
            fsp,
        })
    }

    fn key(&self) -> (Date, u8, u8, u8, u32) {
        (self.date, self.hour, self.minute, self.second, self.micros)
    }
}

/// A UTC instant (`TIMESTAMP(fsp)`). Zero seconds and zero micros is MySQL's zero timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Timestamp {
    /// Seconds since the Unix epoch.
    pub secs: i64,
    /// Microseconds 0–999999.
    pub micros: u32,
    /// Fraction digits to print, 0–6.
    pub fsp: u8,
}

impl Timestamp {
    /// Builds a timestamp, rejecting micros or fsp out of range.
    pub fn new(secs: i64, micros: u32, fsp: u8) -> Result<Self, ValueError> {
        if micros > 999_999 || fsp > 6 {
            return Err(ValueError::Temporal {
                kind: "timestamp",
                reason: format!("micros {micros} / fsp {fsp} out of range"),
            });
        }
        Ok(Self { secs, micros, fsp })
    }

    /// Whether this is MySQL's zero timestamp `0000-00-00 00:00:00`.
    pub fn is_zero(&self) -> bool {
        self.secs == 0 && self.micros == 0
    }
}

/// A signed time of day or duration (`TIME(fsp)`, −838:59:59 … 838:59:59).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Time {
    /// Whether the value is negative.
    pub negative: bool,
    /// Hours, 0–838.
    pub hours: u32,
    /// Minutes 0–59.
    pub minutes: u8,
    /// Seconds 0–59.
    pub seconds: u8,
    /// Microseconds 0–999999.
    pub micros: u32,
    /// Fraction digits to print, 0–6.
    pub fsp: u8,
}

impl Time {
    /// Builds a time, rejecting fields out of range.
    pub fn new(
        negative: bool,
        hours: u32,
        minutes: u8,
        seconds: u8,
        micros: u32,
        fsp: u8,
    ) -> Result<Self, ValueError> {
        if hours > 838 || minutes > 59 || seconds > 59 || micros > 999_999 || fsp > 6 {
            return Err(ValueError::Temporal {
                kind: "time",
                reason: format!("{hours}:{minutes}:{seconds}.{micros} (fsp {fsp}) is out of range"),
            });
        }
        Ok(Self {
            negative,
            hours,
            minutes,
            seconds,
            micros,
            fsp,
        })
    }

    fn signed_micros(&self) -> i64 {
        let total = ((i64::from(self.hours) * 60 + i64::from(self.minutes)) * 60
            + i64::from(self.seconds))
            * 1_000_000
            + i64::from(self.micros);
        if self.negative { -total } else { total }
    }
}

/// An ordered list of named values: a table row or a MongoDB document.
///
/// Rows of one table share their column names ([`Row::from_shared`]): building and dropping a
/// row then touches one reference count, not one per column, which matters when rows are made
/// on one thread and dropped on another.
#[derive(Clone, Default)]
pub struct Row {
    names: Names,
    values: Vec<Value>,
}

#[derive(Clone)]
enum Names {
    /// One name per value, the row's own.
    Own(Vec<Name>),
    /// The table's names, shared by its rows (at least as many as values).
    Shared(Arc<[Name]>),
}

impl Default for Names {
    fn default() -> Self {
        Names::Own(Vec::new())
    }
}

impl Names {
    fn as_slice(&self) -> &[Name] {
        match self {
            Names::Own(v) => v,
            Names::Shared(a) => a,
        }
    }
}

impl fmt::Debug for Row {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl PartialEq for Row {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().zip(other.iter()).all(|(a, b)| a == b)
    }
}

impl Row {
    /// An empty row.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty row with room for `n` fields.
    pub fn with_capacity(n: usize) -> Self {
        Self {
            names: Names::Own(Vec::with_capacity(n)),
            values: Vec::with_capacity(n),
        }
    }

    /// A row whose field names are `names` (shared with other rows of the same table), in
    /// order; `values` beyond the names are dropped.
    pub fn from_shared(names: Arc<[Name]>, mut values: Vec<Value>) -> Self {
        values.truncate(names.len());
        Self {
            names: Names::Shared(names),
            values,
        }
    }

    /// Appends a field (names are not deduplicated: callers keep them unique).
    pub fn push(&mut self, name: impl Into<Name>, value: Value) {
        if let Names::Shared(shared) = &self.names {
            self.names = Names::Own(shared[..self.values.len()].to_vec());
        }
        if let Names::Own(names) = &mut self.names {
            names.push(name.into());
        }
        self.values.push(value);
    }

    /// The value of the first field called `name`.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.iter().find(|(n, _)| &***n == name).map(|(_, v)| v)
    }

    /// The value at a dotted path (`a.b.c`) through embedded documents.
    pub fn get_path(&self, path: &str) -> Option<&Value> {
        if let Some(v) = self.get(path) {
            return Some(v);
        }
        let (head, rest) = path.split_once('.')?;
        match self.get(head)? {
            Value::Document(inner) => inner.get_path(rest),
            _ => None,
        }
    }

    /// Fields in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&Name, &Value)> {
        self.names.as_slice().iter().zip(self.values.iter())
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether the row has no fields.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The fields, by value.
    pub fn into_fields(self) -> Vec<(Name, Value)> {
        let names = self.names.as_slice().to_vec();
        names.into_iter().zip(self.values).collect()
    }

    /// A rough in-memory size in bytes, for batching by bytes.
    pub fn approx_size(&self) -> usize {
        self.iter()
            .map(|(n, v)| n.len() + v.approx_size())
            .sum::<usize>()
            + 16
    }
}

impl<N: Into<Name>> FromIterator<(N, Value)> for Row {
    fn from_iter<I: IntoIterator<Item = (N, Value)>>(iter: I) -> Self {
        let (names, values): (Vec<Name>, Vec<Value>) =
            iter.into_iter().map(|(n, v)| (n.into(), v)).unzip();
        Self {
            names: Names::Own(names),
            values,
        }
    }
}

impl Value {
    /// A rough in-memory size in bytes, for batching by bytes.
    pub fn approx_size(&self) -> usize {
        const BASE: usize = 16;
        BASE + match self {
            Value::Decimal(d) => d.0.len(),
            Value::String(s)
            | Value::Enum(s)
            | Value::Decimal128(s)
            | Value::Symbol(s)
            | Value::JavaScript(s) => s.len(),
            Value::Bytes(b) | Value::Binary { bytes: b, .. } => b.len(),
            Value::Json(j) => j.0.len(),
            Value::Set(v) => v.iter().map(String::len).sum(),
            Value::Regex { pattern, options } => pattern.len() + options.len(),
            Value::Document(r) => r.approx_size(),
            Value::JavaScriptWithScope { code, scope } => code.len() + scope.approx_size(),
            Value::Array(a) => a.iter().map(Value::approx_size).sum(),
            Value::DbPointer { namespace, .. } => namespace.len(),
            _ => 0,
        }
    }

    /// Whether this is `Null`.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// Compares two values where an order is meaningful: numbers across integer, float and
    /// decimal kinds, strings, booleans, and temporal values of the same kind. `None` otherwise.
    pub fn compare(&self, other: &Value) -> Option<Ordering> {
        use Value::*;
        match (self, other) {
            (Null, Null) => Some(Ordering::Equal),
            (Bool(a), Bool(b)) => Some(a.cmp(b)),
            (Int(a), Int(b)) => Some(a.cmp(b)),
            (UInt(a), UInt(b)) => Some(a.cmp(b)),
            (Int(a), UInt(b)) => Some(i128::from(*a).cmp(&i128::from(*b))),
            (UInt(a), Int(b)) => Some(i128::from(*a).cmp(&i128::from(*b))),
            (String(a) | Enum(a), String(b) | Enum(b)) => Some(a.cmp(b)),
            (Date(a), Date(b)) => Some(a.cmp(b)),
            (DateTime(a), DateTime(b)) => Some(a.key().cmp(&b.key())),
            (Timestamp(a), Timestamp(b)) => Some((a.secs, a.micros).cmp(&(b.secs, b.micros))),
            (Time(a), Time(b)) => Some(a.signed_micros().cmp(&b.signed_micros())),
            (BsonDateTime(a), BsonDateTime(b)) => Some(a.cmp(b)),
            (ObjectId(a), ObjectId(b)) => Some(a.cmp(b)),
            (Bytes(a), Bytes(b)) => Some(a.cmp(b)),
            (a, b) => match (a.as_f64(), b.as_f64()) {
                (Some(x), Some(y)) => x.partial_cmp(&y),
                _ => (a == b).then_some(Ordering::Equal),
            },
        }
    }

    fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::UInt(u) => Some(*u as f64),
            Value::Float(f) => Some(f64::from(*f)),
            Value::Double(d) => Some(*d),
            Value::Decimal(d) => Some(d.to_f64()),
            Value::Decimal128(d) => d.parse().ok(),
            _ => None,
        }
    }
}

macro_rules! value_from {
    ($($t:ty => $variant:ident via $conv:expr),* $(,)?) => {
        $(impl From<$t> for Value {
            fn from(v: $t) -> Self {
                Value::$variant($conv(v))
            }
        })*
    };
}

value_from! {
    i8 => Int via i64::from,
    i16 => Int via i64::from,
    i32 => Int via i64::from,
    i64 => Int via std::convert::identity,
    u8 => UInt via u64::from,
    u16 => UInt via u64::from,
    u32 => UInt via u64::from,
    u64 => UInt via std::convert::identity,
    f32 => Float via std::convert::identity,
    f64 => Double via std::convert::identity,
    bool => Bool via std::convert::identity,
    String => String via std::convert::identity,
    &str => String via str::to_owned,
    Vec<u8> => Bytes via std::convert::identity,
    Decimal => Decimal via std::convert::identity,
    Json => Json via std::convert::identity,
    Date => Date via std::convert::identity,
    DateTime => DateTime via std::convert::identity,
    Timestamp => Timestamp via std::convert::identity,
    Time => Time via std::convert::identity,
    Row => Document via std::convert::identity,
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_with_shared_names_behave_like_their_own() {
        let names: Arc<[Name]> = vec![Name::from("id"), Name::from("v")].into();
        let shared = Row::from_shared(names.clone(), vec![Value::Int(1), Value::from("a")]);
        let own: Row = [("id", Value::Int(1)), ("v", Value::from("a"))]
            .into_iter()
            .collect();
        assert_eq!(shared, own);
        assert_eq!(shared.get("v"), Some(&Value::from("a")));
        assert_eq!(format!("{shared:?}"), format!("{own:?}"));
        let mut grown = shared.clone();
        grown.push("extra", Value::Bool(true));
        assert_eq!(grown.len(), 3);
        assert_eq!(
            grown.iter().map(|(n, _)| &**n).collect::<Vec<_>>(),
            ["id", "v", "extra"]
        );
        assert_eq!(shared.len(), 2, "the clone it came from is unchanged");
        let short = Row::from_shared(names, vec![Value::Int(1), Value::Null, Value::Null]);
        assert_eq!(short.len(), 2, "values beyond the names are dropped");
        assert_eq!(own.into_fields().len(), 2);
    }

    #[test]
    fn decimal_accepts_plain_notation_only() {
        assert!(Decimal::parse("-12345678901234.123456").is_ok());
        assert!(Decimal::parse("0").is_ok());
        for bad in ["", "-", "1e5", "+1", "1.", ".5", "1.2.3", " 1"] {
            let err = Decimal::parse(bad).expect_err(bad);
            assert!(err.to_string().contains(&format!("`{bad}`")), "{err}");
        }
    }

    #[test]
    fn json_is_validated_and_minified_keeping_key_order() {
        let j = Json::parse("{ \"b\" : [1, 2],\n \"a\": \"x y\\\" z\" }").expect("valid");
        assert_eq!(j.as_str(), r#"{"b":[1,2],"a":"x y\" z"}"#);
        let err = Json::parse("{\"a\":").expect_err("truncated");
        assert!(err.to_string().starts_with("invalid JSON document"));
        assert!(Json::parse("[1] x").is_err());
    }

    #[test]
    fn temporal_constructors_reject_out_of_range_fields() {
        assert!(Date::new(2024, 13, 1).is_err());
        assert!(Time::new(true, 839, 0, 0, 0, 0).is_err());
        assert!(Time::new(true, 838, 59, 59, 0, 0).is_ok());
        assert!(Timestamp::new(0, 1_000_000, 6).is_err());
        let d = Date::new(2024, 2, 29).expect("date");
        assert!(DateTime::new(d, 24, 0, 0, 0, 0).is_err());
        assert!(DateTime::new(d, 23, 59, 59, 999_999, 7).is_err());
    }

    #[test]
    fn compare_orders_numbers_across_kinds() {
        assert_eq!(
            Value::UInt(u64::MAX).compare(&Value::Int(-1)),
            Some(Ordering::Greater)
        );
        assert_eq!(
            Value::Int(2).compare(&Value::Double(2.5)),
            Some(Ordering::Less)
        );
        let dec = Value::Decimal(Decimal::parse("10.50").expect("decimal"));
        assert_eq!(dec.compare(&Value::Int(10)), Some(Ordering::Greater));
        assert_eq!(Value::String("a".into()).compare(&Value::Int(1)), None);
        let neg = Time::new(true, 0, 0, 1, 0, 0).expect("time");
        let pos = Time::new(false, 0, 0, 0, 0, 0).expect("time");
        assert_eq!(
            Value::Time(neg).compare(&Value::Time(pos)),
            Some(Ordering::Less)
        );
    }

    #[test]
    fn row_lookup_by_name_and_dotted_path() {
        let inner: Row = [("b", Value::Int(2))].into_iter().collect();
        let row: Row = [("a", Value::Document(inner)), ("x.y", Value::Int(1))]
            .into_iter()
            .collect();
        assert_eq!(row.get_path("a.b"), Some(&Value::Int(2)));
        assert_eq!(row.get_path("x.y"), Some(&Value::Int(1)));
        assert_eq!(row.get_path("a.c"), None);
        assert_eq!(Value::from(None::<i32>), Value::Null);
    }
}
