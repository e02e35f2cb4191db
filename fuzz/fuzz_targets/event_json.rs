//! Change events of any shape, built with `arbitrary` through the public constructors: their
//! canonical JSON must be valid JSON of exactly the shape the contract describes (checked by
//! the oracle the property tests use), and equal events must print the same.
#![no_main]

use std::sync::Arc;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use stream_core::{
    ChangeEvent, Date, DateTime, Decimal, GtidSet, Json, MariaDbGtid, MariaDbGtidList,
    MongoPosition, MongoSnapshotProgress, MySqlPosition, Name, Namespace, Op, PollCursor,
    PollProgress, Position, Row, SnapshotProgress, SourceKind, Time, Timestamp, TxnStart,
    UpdateDescription, Value,
};

#[path = "../../crates/stream-core/tests/json_shape.rs"]
mod json_shape;

/// Values nest at most this deep (MongoDB allows 100 levels). A level prints as up to two JSON
/// levels (code with scope), and the JSON parser reading the output back stops at 128.
const MAX_DEPTH: usize = 50;

#[derive(Debug, Arbitrary)]
enum AValue {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f32),
    Double(f64),
    Decimal(bool, Vec<u8>, Option<Vec<u8>>),
    String(String),
    Bytes(Vec<u8>),
    JsonText(String),
    Json(AJson),
    Date(u16, u8, u8),
    DateTime((u16, u8, u8), u8, u8, u8, u32, u8),
    Timestamp(i64, u32, u8),
    Time(bool, u32, u8, u8, u32, u8),
    Enum(String),
    Set(Vec<String>),
    ObjectId([u8; 12]),
    BsonDateTime(i64),
    Decimal128(String),
    Binary(u8, Vec<u8>),
    Regex(String, String),
    BsonTimestamp(u32, u32),
    Document(Vec<(String, AValue)>),
    Array(Vec<AValue>),
    MinKey,
    MaxKey,
    Undefined,
    Symbol(String),
    JavaScript(String),
    JavaScriptWithScope(String, Vec<(String, AValue)>),
    DbPointer(String, [u8; 12]),
}

/// A JSON document, written out with whitespace for `Json::parse` to take out.
#[derive(Debug, Arbitrary)]
enum AJson {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Arr(Vec<AJson>),
    Obj(Vec<(String, AJson)>),
}

impl AJson {
    fn to_serde(&self, depth: usize) -> serde_json::Value {
        use serde_json::Value as J;
        if depth > MAX_DEPTH {
            return J::Null;
        }
        match self {
            AJson::Null => J::Null,
            AJson::Bool(b) => J::Bool(*b),
            AJson::Int(i) => J::from(*i),
            AJson::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            AJson::Str(s) => J::String(s.clone()),
            AJson::Arr(items) => J::Array(items.iter().map(|i| i.to_serde(depth + 1)).collect()),
            AJson::Obj(fields) => J::Object(
                fields
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_serde(depth + 1)))
                    .collect(),
            ),
        }
    }
}

fn digits(d: &[u8]) -> String {
    d.iter().map(|b| char::from(b'0' + b % 10)).collect()
}

impl AValue {
    /// The value through the public constructors; parts they refuse make `Null`.
    fn value(&self, depth: usize) -> Value {
        if depth > MAX_DEPTH {
            return Value::Null;
        }
        let ok = |v: Result<Value, stream_core::ValueError>| v.unwrap_or(Value::Null);
        match self {
            AValue::Null => Value::Null,
            AValue::Bool(b) => Value::Bool(*b),
            AValue::Int(i) => Value::Int(*i),
            AValue::UInt(u) => Value::UInt(*u),
            AValue::Float(f) => Value::Float(*f),
            AValue::Double(d) => Value::Double(*d),
            AValue::Decimal(negative, int, frac) => {
                let mut text = String::from(if *negative { "-" } else { "" });
                text.push_str(&digits(int));
                if let Some(frac) = frac {
                    text.push('.');
                    text.push_str(&digits(frac));
                }
                ok(Decimal::parse(&text).map(Value::Decimal))
            }
            AValue::String(s) => Value::String(s.clone()),
            AValue::Bytes(b) => Value::Bytes(b.clone()),
            AValue::JsonText(text) => ok(Json::parse(text).map(Value::Json)),
            AValue::Json(doc) => {
                let text = serde_json::to_string_pretty(&doc.to_serde(depth)).unwrap_or_default();
                ok(Json::parse(&text).map(Value::Json))
            }
            AValue::Date(y, m, d) => ok(Date::new(*y, *m, *d).map(Value::Date)),
            AValue::DateTime((y, mo, d), h, mi, s, us, fsp) => ok(Date::new(*y, *mo, *d)
                .and_then(|date| DateTime::new(date, *h, *mi, *s, *us, *fsp))
                .map(Value::DateTime)),
            AValue::Timestamp(secs, us, fsp) => {
                ok(Timestamp::new(*secs, *us, *fsp).map(Value::Timestamp))
            }
            AValue::Time(neg, h, m, s, us, fsp) => {
                ok(Time::new(*neg, *h, *m, *s, *us, *fsp).map(Value::Time))
            }
            AValue::Enum(s) => Value::Enum(s.clone()),
            AValue::Set(labels) => Value::Set(labels.clone()),
            AValue::ObjectId(id) => Value::ObjectId(*id),
            AValue::BsonDateTime(ms) => Value::BsonDateTime(*ms),
            AValue::Decimal128(s) => Value::Decimal128(s.clone()),
            AValue::Binary(subtype, bytes) => Value::Binary {
                subtype: *subtype,
                bytes: bytes.clone(),
            },
            AValue::Regex(pattern, options) => Value::Regex {
                pattern: pattern.clone(),
                options: options.clone(),
            },
            AValue::BsonTimestamp(t, i) => Value::BsonTimestamp { t: *t, i: *i },
            AValue::Document(fields) => Value::Document(row(fields, depth + 1, false)),
            AValue::Array(items) => {
                Value::Array(items.iter().map(|i| i.value(depth + 1)).collect())
            }
            AValue::MinKey => Value::MinKey,
            AValue::MaxKey => Value::MaxKey,
            AValue::Undefined => Value::Undefined,
            AValue::Symbol(s) => Value::Symbol(s.clone()),
            AValue::JavaScript(s) => Value::JavaScript(s.clone()),
            AValue::JavaScriptWithScope(code, scope) => Value::JavaScriptWithScope {
                code: code.clone(),
                scope: row(scope, depth + 1, false),
            },
            AValue::DbPointer(namespace, id) => Value::DbPointer {
                namespace: namespace.clone(),
                id: *id,
            },
        }
    }
}

/// A row of these fields, with names of its own or shared (as a table's rows share them).
fn row(fields: &[(String, AValue)], depth: usize, shared: bool) -> Row {
    let values = fields.iter().map(|(_, v)| v.value(depth));
    if shared {
        let names: Arc<[Name]> = fields.iter().map(|(n, _)| Name::from(n.as_str())).collect();
        Row::from_shared(names, values.collect())
    } else {
        fields.iter().map(|(n, _)| n.as_str()).zip(values).collect()
    }
}

#[derive(Debug, Arbitrary)]
enum APosition {
    File(String, u64),
    MariaDbGtid(Vec<(u32, u32, u64)>),
    MySqlGtid(Vec<(String, String, u64, u64)>),
    Snapshot(String, u64, String, Option<String>),
    Poll(Vec<(String, String, Option<String>)>),
    ResumeToken(Vec<u8>),
    ClusterTime(u32, u32),
    MongoSnapshot(u32, u32, String, Option<String>),
    MongoPoll(Vec<(String, String, Option<String>)>),
    App(i64, u64),
}

fn poll(cursors: &[(String, String, Option<String>)]) -> PollProgress {
    PollProgress {
        cursors: cursors
            .iter()
            .map(|(table, at, key)| {
                let cursor = PollCursor {
                    at: at.clone(),
                    key: key.clone(),
                };
                (table.clone(), cursor)
            })
            .collect(),
    }
}

impl APosition {
    fn position(&self, skip: u64) -> Position {
        let mysql = |start| Position::MySql(MySqlPosition { start, skip });
        match self {
            APosition::File(file, offset) => Position::binlog(file.as_str(), *offset, skip),
            APosition::MariaDbGtid(gtids) => {
                let mut list = MariaDbGtidList::default();
                for &(domain, server, sequence) in gtids {
                    list.apply(MariaDbGtid {
                        domain,
                        server,
                        sequence,
                    });
                }
                mysql(TxnStart::MariaDbGtid(list))
            }
            APosition::MySqlGtid(sources) => {
                let mut set = GtidSet::default();
                for (uuid, tag, start, end) in sources {
                    set.add(uuid, tag, *start, *end);
                }
                mysql(TxnStart::MySqlGtid(set))
            }
            APosition::Snapshot(file, offset, table, after) => {
                mysql(TxnStart::Snapshot(SnapshotProgress {
                    file: file.clone(),
                    offset: *offset,
                    table: table.clone(),
                    after: after.clone(),
                }))
            }
            APosition::Poll(cursors) => mysql(TxnStart::Poll(poll(cursors))),
            APosition::ResumeToken(token) => {
                Position::MongoDb(MongoPosition::ResumeToken(token.clone()))
            }
            APosition::ClusterTime(t, i) => {
                Position::MongoDb(MongoPosition::ClusterTime { t: *t, i: *i })
            }
            APosition::MongoSnapshot(t, i, collection, after) => {
                Position::MongoDb(MongoPosition::Snapshot(MongoSnapshotProgress {
                    t: *t,
                    i: *i,
                    collection: collection.clone(),
                    after: after.clone(),
                }))
            }
            APosition::MongoPoll(cursors) => Position::MongoDb(MongoPosition::Poll(poll(cursors))),
            APosition::App(at_ms, seq) => Position::App {
                at_ms: *at_ms,
                seq: *seq,
            },
        }
    }
}

type Fields = Vec<(String, AValue)>;

#[derive(Debug, Arbitrary)]
struct AEvent {
    source: u8,
    db: String,
    table: String,
    op: u8,
    key: Option<Fields>,
    before: Option<Fields>,
    after: Option<Fields>,
    update: Option<(Fields, Vec<String>)>,
    position: APosition,
    skip: u64,
    ts_ms: i64,
    txn: Option<String>,
}

impl AEvent {
    fn event(&self, shared: bool) -> ChangeEvent {
        let rows = |f: &Option<Fields>| f.as_deref().map(|f| row(f, 1, shared));
        ChangeEvent {
            source: [SourceKind::MySql, SourceKind::MongoDb, SourceKind::App]
                [usize::from(self.source % 3)],
            namespace: Namespace::new(self.db.as_str(), self.table.as_str()),
            op: [Op::Insert, Op::Update, Op::Delete, Op::Replace][usize::from(self.op % 4)],
            key: rows(&self.key),
            before: rows(&self.before),
            after: rows(&self.after),
            update: self.update.as_ref().map(|(set, unset)| UpdateDescription {
                set: row(set, 1, shared),
                unset: unset.clone(),
            }),
            position: self.position.position(self.skip),
            ts_ms: self.ts_ms,
            txn: self.txn.as_deref().map(Arc::from),
        }
    }
}

fuzz_target!(|model: AEvent| {
    let (own, shared) = (model.event(false), model.event(true));
    let text = own.to_json();
    assert_eq!(shared.to_json(), text, "equal events printed differently");
    if !text.contains("NaN") {
        assert_eq!(own, shared);
    }
    if let Err(e) = json_shape::check_event(&own, &text) {
        panic!("{e}\n{text}");
    }
});
