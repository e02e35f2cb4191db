//! Round-trip properties: every position kind prints and parses back to itself, MariaDB GTID
//! lists and namespace patterns read back as written, and every value and event prints as the
//! JSON the contract describes (checked by the oracle in `json_shape.rs`).

use std::sync::Arc;

use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use stream_core::{
    ChangeEvent, Date, DateTime, Decimal, GtidSet, Json, MariaDbGtid, MariaDbGtidList,
    MongoPosition, MongoSnapshotProgress, MySqlPosition, Name, Namespace, NamespacePattern, Op,
    PollCursor, PollProgress, Position, Row, SnapshotProgress, SourceKind, Time, Timestamp,
    TxnStart, UpdateDescription, Value,
};

use crate::json_shape::{Ordered, check_event, check_value};

/// Text of any characters, with the ones JSON must escape (controls, `"`, `\`) and the
/// unusual ones (DEL, U+2028, astral planes) common.
fn text() -> impl Strategy<Value = String> + Clone {
    prop_oneof![
        "(?s).{0,12}",
        "[\\x00-\\x20\"\\\\/a\u{7f}\u{80}\u{2028}\u{fffd}\u{1f600}]{0,8}",
    ]
}

fn gtid() -> impl Strategy<Value = MariaDbGtid> {
    (any::<u32>(), any::<u32>(), any::<u64>()).prop_map(|(domain, server, sequence)| MariaDbGtid {
        domain,
        server,
        sequence,
    })
}

fn gtid_list() -> impl Strategy<Value = MariaDbGtidList> {
    vec(gtid(), 0..5).prop_map(|gtids| {
        let mut list = MariaDbGtidList::default();
        for g in gtids {
            list.apply(g);
        }
        list
    })
}

/// MySQL GTID sets as `gtid_executed` holds them: server UUIDs, lower-case tags (MySQL
/// normalizes them), transaction numbers from 1.
fn gtid_set() -> impl Strategy<Value = GtidSet> {
    let uuid = "[0-9a-fA-F]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9A-F]{12}";
    let tag = prop_oneof![Just(String::new()), "[a-z_][a-z0-9_]{0,8}"];
    let interval = (1..u64::MAX, 0..1000u64).prop_map(|(s, len)| (s, s.saturating_add(len)));
    vec((uuid, tag, vec(interval, 1..4)), 1..4).prop_map(|sources| {
        let mut set = GtidSet::default();
        for (uuid, tag, intervals) in sources {
            for (start, end) in intervals {
                set.add(&uuid, &tag, start, end);
            }
        }
        set
    })
}

fn poll_progress() -> impl Strategy<Value = PollProgress> {
    let cursor =
        (text(), proptest::option::of(text())).prop_map(|(at, key)| PollCursor { at, key });
    btree_map(text(), cursor, 0..3).prop_map(|cursors| PollProgress { cursors })
}

/// Positions of every kind, with names and payloads of any characters.
fn position() -> impl Strategy<Value = Position> {
    let mysql = |start: BoxedStrategy<TxnStart>| {
        (start, any::<u64>())
            .prop_map(|(start, skip)| Position::MySql(MySqlPosition { start, skip }))
    };
    let file = (
        text().prop_filter("a file has a name", |f| !f.is_empty()),
        any::<u64>(),
    )
        .prop_map(|(file, offset)| TxnStart::File {
            file: file.into(),
            offset,
        })
        .boxed();
    let snapshot = (text(), any::<u64>(), text(), proptest::option::of(text()))
        .prop_map(|(file, offset, table, after)| {
            TxnStart::Snapshot(SnapshotProgress {
                file,
                offset,
                table,
                after,
            })
        })
        .boxed();
    let mongo_snapshot = (
        any::<u32>(),
        any::<u32>(),
        text(),
        proptest::option::of(text()),
    )
        .prop_map(|(t, i, collection, after)| {
            Position::MongoDb(MongoPosition::Snapshot(MongoSnapshotProgress {
                t,
                i,
                collection,
                after,
            }))
        });
    prop_oneof![
        mysql(file),
        mysql(gtid_list().prop_map(TxnStart::MariaDbGtid).boxed()),
        mysql(gtid_set().prop_map(TxnStart::MySqlGtid).boxed()),
        mysql(snapshot),
        mysql(poll_progress().prop_map(TxnStart::Poll).boxed()),
        vec(any::<u8>(), 1..40).prop_map(|t| Position::MongoDb(MongoPosition::ResumeToken(t))),
        (any::<u32>(), any::<u32>())
            .prop_map(|(t, i)| Position::MongoDb(MongoPosition::ClusterTime { t, i })),
        mongo_snapshot,
        poll_progress().prop_map(|p| Position::MongoDb(MongoPosition::Poll(p))),
        (any::<i64>(), any::<u64>()).prop_map(|(at_ms, seq)| Position::App { at_ms, seq }),
    ]
}

fn date() -> impl Strategy<Value = Date> {
    (0..=9999u16, 0..=12u8, 0..=31u8).prop_map(|(y, m, d)| Date::new(y, m, d).expect("in range"))
}

fn fsp() -> impl Strategy<Value = u8> {
    0..=6u8
}

/// JSON documents as MySQL and MariaDB columns hold them, written with insignificant
/// whitespace that the value must drop.
fn json_doc() -> impl Strategy<Value = Json> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>()
            .prop_filter_map("finite", serde_json::Number::from_f64)
            .prop_map(serde_json::Value::Number),
        text().prop_map(serde_json::Value::String),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            btree_map(text(), inner, 0..4)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
    .prop_map(|doc| {
        let text = serde_json::to_string_pretty(&doc).expect("serializable");
        Json::parse(&text).expect("valid JSON")
    })
}

fn leaf_value() -> impl Strategy<Value = Value> {
    let decimal = ("-?[0-9]{1,30}(\\.[0-9]{1,30})?")
        .prop_map(|t| Value::Decimal(Decimal::parse(&t).expect("plain decimal")));
    let datetime = (date(), 0..24u8, 0..60u8, 0..60u8, 0..1_000_000u32, fsp()).prop_map(
        |(d, h, m, s, us, fsp)| Value::DateTime(DateTime::new(d, h, m, s, us, fsp).expect("ok")),
    );
    let timestamp = (
        prop_oneof![0..=i64::from(u32::MAX), any::<i64>()],
        prop_oneof![Just(0u32), 0..1_000_000u32],
        fsp(),
    )
        .prop_map(|(secs, us, fsp)| Value::Timestamp(Timestamp::new(secs, us, fsp).expect("ok")));
    let time = (
        any::<bool>(),
        0..=838u32,
        0..60u8,
        0..60u8,
        0..1_000_000u32,
        fsp(),
    )
        .prop_map(|(neg, h, m, s, us, fsp)| {
            Value::Time(Time::new(neg, h, m, s, us, fsp).expect("ok"))
        });
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        any::<u64>().prop_map(Value::UInt),
        any::<f32>().prop_map(Value::Float),
        any::<f64>().prop_map(Value::Double),
        decimal,
        text().prop_map(Value::String),
        vec(any::<u8>(), 0..40).prop_map(Value::Bytes),
        json_doc().prop_map(Value::Json),
        date().prop_map(Value::Date),
        datetime,
        timestamp,
        time,
        text().prop_map(Value::Enum),
        vec(text(), 0..4).prop_map(Value::Set),
        any::<[u8; 12]>().prop_map(Value::ObjectId),
        any::<i64>().prop_map(Value::BsonDateTime),
        text().prop_map(Value::Decimal128),
        (any::<u8>(), vec(any::<u8>(), 0..20))
            .prop_map(|(subtype, bytes)| Value::Binary { subtype, bytes }),
        (text(), "[imsux]{0,3}").prop_map(|(pattern, options)| Value::Regex { pattern, options }),
        (any::<u32>(), any::<u32>()).prop_map(|(t, i)| Value::BsonTimestamp { t, i }),
        Just(Value::MinKey),
        Just(Value::MaxKey),
        Just(Value::Undefined),
        text().prop_map(Value::Symbol),
        text().prop_map(Value::JavaScript),
        (text(), any::<[u8; 12]>()).prop_map(|(namespace, id)| Value::DbPointer { namespace, id }),
    ]
}

/// Fields of a row or document: names of any characters, duplicates possible.
fn fields(value: impl Strategy<Value = Value>) -> impl Strategy<Value = Fields> {
    vec((text(), value), 0..4)
}

fn value() -> BoxedStrategy<Value> {
    leaf_value()
        .prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                vec(inner.clone(), 0..4).prop_map(Value::Array),
                fields(inner.clone()).prop_map(|f| Value::Document(f.into_iter().collect())),
                (text(), fields(inner)).prop_map(|(code, f)| Value::JavaScriptWithScope {
                    code,
                    scope: f.into_iter().collect(),
                }),
            ]
        })
        .boxed()
}

/// The same fields as a row with its own names and as one sharing its table's names.
fn both_rows(fields: &[(String, Value)]) -> (Row, Row) {
    let own: Row = fields.iter().cloned().collect();
    let names: Arc<[Name]> = fields.iter().map(|(n, _)| Name::from(n.as_str())).collect();
    let shared = Row::from_shared(names, fields.iter().map(|(_, v)| v.clone()).collect());
    (own, shared)
}

/// A row's fields in order.
type Fields = Vec<(String, Value)>;

#[derive(Debug, Clone)]
struct EventParts {
    source: SourceKind,
    db: String,
    table: String,
    op: Op,
    /// Key, before and after.
    rows: [Option<Fields>; 3],
    update: Option<(Fields, Vec<String>)>,
    position: Position,
    ts_ms: i64,
    txn: Option<String>,
}

impl EventParts {
    /// The event, with rows of their own names (`false`) or sharing them (`true`).
    fn event(&self, shared: bool) -> ChangeEvent {
        let row = |f: &Option<Fields>| {
            f.as_deref().map(|f| {
                let (own, shared_row) = both_rows(f);
                if shared { shared_row } else { own }
            })
        };
        ChangeEvent {
            source: self.source,
            namespace: Namespace::new(self.db.as_str(), self.table.as_str()),
            op: self.op,
            key: row(&self.rows[0]),
            before: row(&self.rows[1]),
            after: row(&self.rows[2]),
            update: self.update.as_ref().map(|(set, unset)| UpdateDescription {
                set: row(&Some(set.clone())).unwrap_or_default(),
                unset: unset.clone(),
            }),
            position: self.position.clone(),
            ts_ms: self.ts_ms,
            txn: self.txn.as_deref().map(Arc::from),
        }
    }
}

fn event_parts() -> impl Strategy<Value = EventParts> {
    let source = prop_oneof![
        Just(SourceKind::MySql),
        Just(SourceKind::MongoDb),
        Just(SourceKind::App)
    ];
    let op = prop_oneof![
        Just(Op::Insert),
        Just(Op::Update),
        Just(Op::Delete),
        Just(Op::Replace)
    ];
    let row = || proptest::option::of(fields(value()));
    (
        (source, text(), text(), op),
        [row(), row(), row()],
        proptest::option::of((fields(value()), vec(text(), 0..3))),
        (position(), any::<i64>(), proptest::option::of(text())),
    )
        .prop_map(
            |((source, db, table, op), rows, update, (position, ts_ms, txn))| EventParts {
                source,
                db,
                table,
                op,
                rows,
                update,
                position,
                ts_ms,
                txn,
            },
        )
}

proptest! {
    #[test]
    fn every_position_prints_and_parses_back_to_itself(p in position()) {
        let text = p.to_string();
        let back: Position = text.parse().map_err(|e| TestCaseError::fail(format!("{e}")))?;
        prop_assert_eq!(&back, &p);
        prop_assert_eq!(back.to_string(), text);
        // Equal positions never order before or after each other. (Two equal MySQL polling
        // positions compare as `None`, not `Equal`: harmless where `compare` is used.)
        let order = p.compare(&back);
        prop_assert!(matches!(order, Some(std::cmp::Ordering::Equal) | None), "{:?}", order);
        let json = serde_json::to_string(&p).expect("serializable");
        prop_assert_eq!(serde_json::from_str::<Position>(&json).expect("reads back"), p);
    }

    #[test]
    fn mariadb_gtid_lists_print_and_parse_back(list in gtid_list(), extra in gtid()) {
        let text = list.to_string();
        let back: MariaDbGtidList = text.parse().map_err(|e| TestCaseError::fail(format!("{e}")))?;
        prop_assert_eq!(&back, &list);
        prop_assert_eq!(list.compare(&back), Some(std::cmp::Ordering::Equal));
        // Spaces around entries and empty entries are tolerated and dropped.
        let spaced = list.iter().map(|g| format!(" {g} ")).collect::<Vec<_>>().join(",,");
        prop_assert_eq!(spaced.parse::<MariaDbGtidList>().expect("spaced list"), list.clone());
        // A later GTID in one domain moves the list forward.
        let mut ahead = list.clone();
        let current = list.iter().find(|g| g.domain == extra.domain).map_or(0, |g| g.sequence);
        if current < u64::MAX {
            ahead.apply(MariaDbGtid { sequence: current + 1, ..extra });
            prop_assert_eq!(list.compare(&ahead), Some(std::cmp::Ordering::Less));
            prop_assert_eq!(ahead.compare(&list), Some(std::cmp::Ordering::Greater));
        }
        // A list naming a domain twice is refused.
        if let Some(first) = list.iter().next() {
            let twice = format!("{text},{}-{}-{}", first.domain, first.server, first.sequence);
            prop_assert!(twice.parse::<MariaDbGtidList>().is_err());
        }
    }

    #[test]
    fn namespace_patterns_print_as_written_and_match_their_names(
        db in "[^.*?\\s]{1,12}",
        table in "[^*?\\s]{1,12}",
        other in "[^*?\\s]{1,12}",
    ) {
        let exact: NamespacePattern = format!("{db}.{table}").parse().expect("pattern");
        prop_assert_eq!(exact.to_string(), format!("{db}.{table}"));
        prop_assert_eq!(exact.to_string().parse::<NamespacePattern>().expect("again"), exact.clone());
        prop_assert!(exact.matches(&Namespace::new(db.as_str(), table.as_str())));
        prop_assert_eq!(exact.matches_parts(&db, &other), other == table);
        let whole_db: NamespacePattern = db.parse().expect("pattern");
        prop_assert_eq!(whole_db.table_part(), "*");
        prop_assert!(whole_db.matches_parts(&db, &other));
        let padded: NamespacePattern = format!("  {db}.*\t").parse().expect("pattern");
        prop_assert_eq!(padded.to_string(), format!("{db}.*"));
        prop_assert!(padded.matches_parts(&db, &table));
    }

    #[test]
    fn question_marks_and_stars_stand_for_ascii_characters(
        table in "[a-z0-9_$]{1,12}",
        at in any::<prop::sample::Index>(),
    ) {
        let i = at.index(table.len());
        let one = format!("db.{}?{}", &table[..i], &table[i + 1..]);
        let one: NamespacePattern = one.parse().expect("pattern");
        prop_assert!(one.matches_parts("db", &table), "{} vs {}", one, &table);
        let star: NamespacePattern = format!("db.{}*", &table[..i]).parse().expect("pattern");
        prop_assert!(star.matches_parts("db", &table));
        let longer = format!("{table}x");
        prop_assert!(!one.matches_parts("db", &longer));
    }

    #[test]
    fn every_value_prints_as_the_contract_says(v in value()) {
        let mut buf = Vec::new();
        stream_core::json::write_value(&mut buf, &v);
        let text = String::from_utf8(buf).expect("UTF-8");
        let json = Ordered::parse(&text).map_err(TestCaseError::fail)?;
        check_value(&v, &json).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn equal_events_print_the_same_json_the_contract_describes(parts in event_parts()) {
        let (own, shared) = (parts.event(false), parts.event(true));
        let text = own.to_json();
        prop_assert_eq!(&shared.to_json(), &text);
        if !text.contains("NaN") {
            prop_assert_eq!(&own, &shared);
        }
        check_event(&own, &text).map_err(TestCaseError::fail)?;
    }
}

#[test]
fn json_documents_keep_their_key_order_and_duplicates() {
    let doc = Json::parse("{ \"b\": 1, \"a\": [ 2 ], \"b\": \"x y\" }").expect("valid");
    let json = Ordered::parse(doc.as_str()).expect("JSON");
    let expected = Ordered::Obj(vec![
        ("b".into(), Ordered::Int(1)),
        ("a".into(), Ordered::Arr(vec![Ordered::Int(2)])),
        ("b".into(), Ordered::Str("x y".into())),
    ]);
    assert_eq!(json, expected);
    check_value(&Value::Json(doc), &expected).expect("matches");
}
