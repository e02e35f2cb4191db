//! Conversions both ways, for every BSON type and the MySQL values.

use std::str::FromStr as _;

use mongodb::bson::oid::ObjectId;
use mongodb::bson::spec::BinarySubtype;
use mongodb::bson::{
    Binary, Bson, DateTime as BsonDateTime, Decimal128, Document, JavaScriptCodeWithScope,
    RawDocument, RawDocumentBuf, Regex, Timestamp as BsonTimestamp, doc,
};
use stream_core::{Date, DateTime, Decimal, Json, Row, Time, Timestamp, Value};

use super::*;

fn oid() -> ObjectId {
    ObjectId::parse_str("65e0000102030405060708ff").expect("oid")
}

fn db_pointer() -> Bson {
    Bson::try_from(serde_json::json!({
        "$dbPointer": {"$ref": "db.c", "$id": {"$oid": "65e0000102030405060708ff"}}
    }))
    .expect("dbpointer")
}

/// Every BSON type, with the Value it reads as.
fn every_bson_type() -> Vec<(Bson, Value)> {
    let oid_bytes = oid().bytes();
    vec![
        (Bson::Double(1.5), Value::Double(1.5)),
        (Bson::Double(-0.0), Value::Double(-0.0)),
        (Bson::String("café".into()), Value::String("café".into())),
        (
            Bson::Array(vec![Bson::Int32(1), Bson::String("x".into())]),
            Value::Array(vec![Value::Int(1), Value::String("x".into())]),
        ),
        (
            Bson::Document(doc! {"b": 1, "a": {"c": true}}),
            Value::Document(
                [
                    ("b", Value::Int(1)),
                    (
                        "a",
                        Value::Document([("c", Value::Bool(true))].into_iter().collect()),
                    ),
                ]
                .into_iter()
                .collect(),
            ),
        ),
        (Bson::Boolean(true), Value::Bool(true)),
        (Bson::Null, Value::Null),
        (
            Bson::RegularExpression(Regex {
                pattern: "^a\\d".into(),
                options: "im".into(),
            }),
            Value::Regex {
                pattern: "^a\\d".into(),
                options: "im".into(),
            },
        ),
        (
            Bson::JavaScriptCode("f()".into()),
            Value::JavaScript("f()".into()),
        ),
        (
            Bson::JavaScriptCodeWithScope(JavaScriptCodeWithScope {
                code: "x + 1".into(),
                scope: doc! {"x": 1},
            }),
            Value::JavaScriptWithScope {
                code: "x + 1".into(),
                scope: [("x", Value::Int(1))].into_iter().collect(),
            },
        ),
        (Bson::Int32(-7), Value::Int(-7)),
        (Bson::Int32(i32::MIN), Value::Int(i64::from(i32::MIN))),
        (
            Bson::Int64(9_007_199_254_740_993),
            Value::Int(9_007_199_254_740_993),
        ),
        (Bson::Int64(i64::MIN), Value::Int(i64::MIN)),
        (
            Bson::Timestamp(BsonTimestamp {
                time: 1_700_000_000,
                increment: 3,
            }),
            Value::BsonTimestamp {
                t: 1_700_000_000,
                i: 3,
            },
        ),
        (
            Bson::Binary(Binary {
                subtype: BinarySubtype::Generic,
                bytes: vec![1, 2],
            }),
            Value::Binary {
                subtype: 0,
                bytes: vec![1, 2],
            },
        ),
        (
            Bson::Binary(Binary {
                subtype: BinarySubtype::Uuid,
                bytes: vec![7; 16],
            }),
            Value::Binary {
                subtype: 4,
                bytes: vec![7; 16],
            },
        ),
        (
            Bson::Binary(Binary {
                subtype: BinarySubtype::UserDefined(0x80),
                bytes: vec![],
            }),
            Value::Binary {
                subtype: 0x80,
                bytes: vec![],
            },
        ),
        (Bson::ObjectId(oid()), Value::ObjectId(oid_bytes)),
        (
            Bson::DateTime(BsonDateTime::from_millis(1_709_210_096_789)),
            Value::BsonDateTime(1_709_210_096_789),
        ),
        (
            Bson::DateTime(BsonDateTime::from_millis(-1)),
            Value::BsonDateTime(-1),
        ),
        (Bson::Symbol("sym".into()), Value::Symbol("sym".into())),
        (
            Bson::Decimal128(Decimal128::from_str("1.10").expect("dec")),
            Value::Decimal128("1.10".into()),
        ),
        (
            Bson::Decimal128(Decimal128::from_str("-1E+400").expect("dec")),
            Value::Decimal128("-1E+400".into()),
        ),
        (
            Bson::Decimal128(Decimal128::from_str("NaN").expect("dec")),
            Value::Decimal128("NaN".into()),
        ),
        (Bson::Undefined, Value::Undefined),
        (Bson::MaxKey, Value::MaxKey),
        (Bson::MinKey, Value::MinKey),
        (
            db_pointer(),
            Value::DbPointer {
                namespace: "db.c".into(),
                id: oid_bytes,
            },
        ),
    ]
}

#[test]
fn every_bson_type_reads_as_its_value_and_writes_back_exactly() {
    for (bson, value) in every_bson_type() {
        assert_eq!(value_from_bson(&bson).expect("read"), value, "{bson:?}");
        assert_eq!(value_to_bson(&value).expect("to bson"), bson, "{value:?}");
    }
}

#[test]
fn int64_outside_i32_stays_int64_but_small_int64_comes_back_as_int32() {
    let big = Bson::Int64(i64::from(i32::MAX) + 1);
    assert_eq!(
        value_to_bson(&value_from_bson(&big).expect("read")).expect("b"),
        big
    );
    let small = Bson::Int64(5);
    assert_eq!(
        value_to_bson(&value_from_bson(&small).expect("read")).expect("b"),
        Bson::Int32(5)
    );
    assert_eq!(
        value_to_bson(&Value::Int(-2_147_483_649)).expect("b"),
        Bson::Int64(-2_147_483_649)
    );
}

#[test]
fn regex_options_are_sorted_both_ways() {
    let unsorted = Bson::RegularExpression(Regex {
        pattern: "x".into(),
        options: "xsmi".into(),
    });
    assert_eq!(
        value_from_bson(&unsorted).expect("read"),
        Value::Regex {
            pattern: "x".into(),
            options: "imsx".into()
        }
    );
    let back = value_to_bson(&Value::Regex {
        pattern: "x".into(),
        options: "mi".into(),
    })
    .expect("regex");
    assert_eq!(
        back,
        Bson::RegularExpression(Regex {
            pattern: "x".into(),
            options: "im".into()
        })
    );
}

#[test]
fn documents_round_trip_through_bson_bytes_keeping_field_order() {
    let doc: Document = every_bson_type()
        .into_iter()
        .enumerate()
        .map(|(i, (b, _))| (format!("f{}", 40 - i), b))
        .collect();
    // Through the wire format, as the driver does.
    let mut bytes = Vec::new();
    doc.to_writer(&mut bytes).expect("encode");
    let decoded = Document::from_reader(bytes.as_slice()).expect("decode");
    let row = document_to_row(&decoded).expect("row");
    let names: Vec<&str> = row.iter().map(|(n, _)| &**n).collect();
    let expected: Vec<&str> = doc.keys().map(String::as_str).collect();
    assert_eq!(names, expected);
    let back = row_to_document(&row).expect("row to doc");
    // Int64 values that fit in i32 would collapse; there are none in the sample.
    assert_eq!(back, doc);
}

#[test]
fn mysql_values_map_to_their_nearest_bson_type() {
    let date = Date::new(2024, 2, 29).expect("date");
    let cases: Vec<(Value, Bson)> = vec![
        (Value::UInt(7), Bson::Int32(7)),
        (Value::UInt(1 << 40), Bson::Int64(1 << 40)),
        (
            Value::UInt(i64::MAX as u64),
            Bson::Int64(i64::MAX),
        ),
        (Value::Float(0.5), Bson::Double(0.5)),
        (
            Value::Decimal(Decimal::parse("-19.90").expect("d")),
            Bson::Decimal128(Decimal128::from_str("-19.90").expect("d")),
        ),
        (Value::Enum("paid".into()), Bson::String("paid".into())),
        (
            Value::Set(vec!["a".into(), "c".into()]),
            Bson::Array(vec![Bson::String("a".into()), Bson::String("c".into())]),
        ),
        (
            Value::Bytes(vec![0xff, 0]),
            Bson::Binary(Binary {
                subtype: BinarySubtype::Generic,
                bytes: vec![0xff, 0],
            }),
        ),
        (
            Value::Date(date),
            Bson::DateTime(BsonDateTime::from_millis(1_709_164_800_000)),
        ),
        (
            Value::DateTime(DateTime::new(date, 12, 34, 56, 789_999, 6).expect("dt")),
            Bson::DateTime(BsonDateTime::from_millis(1_709_210_096_789)),
        ),
        (
            Value::DateTime(
                DateTime::new(Date::new(1969, 12, 31).expect("d"), 23, 59, 59, 0, 0)
                    .expect("dt"),
            ),
            Bson::DateTime(BsonDateTime::from_millis(-1000)),
        ),
        (
            Value::Timestamp(Timestamp::new(1_709_210_096, 789_000, 3).expect("ts")),
            Bson::DateTime(BsonDateTime::from_millis(1_709_210_096_789)),
        ),
        (
            Value::Json(Json::parse(r#"{"z":[1,2.5,"s",null,true],"a":{"big":4294967296,"u":18446744073709551615},"$oid":"x"}"#).expect("json")),
            Bson::Document(doc! {
                "z": [1, 2.5, "s", Bson::Null, true],
                "a": {"big": 4_294_967_296_i64, "u": 18_446_744_073_709_551_615_f64},
                "$oid": "x",
            }),
        ),
        (
            Value::Json(Json::parse("[1]").expect("json")),
            Bson::Array(vec![Bson::Int32(1)]),
        ),
    ];
    for (value, bson) in cases {
        assert_eq!(value_to_bson(&value).expect("to bson"), bson, "{value:?}");
    }
    // Key order of JSON objects is kept (serde_json's preserve_order, which bson enables).
    let Bson::Document(d) =
        value_to_bson(&Value::Json(Json::parse(r#"{"b":1,"a":2}"#).expect("json"))).expect("json")
    else {
        panic!("not a document");
    };
    assert_eq!(d.keys().collect::<Vec<_>>(), ["b", "a"]);
}

#[test]
fn values_bson_cannot_hold_are_errors_naming_the_field_and_value() {
    let time = Time::new(true, 838, 59, 59, 0, 0).expect("time");
    let inner: Row = [("t", Value::Time(time))].into_iter().collect();
    let row: Row = [("ok", Value::Int(1)), ("outer", Value::Document(inner))]
        .into_iter()
        .collect();
    let err = row_to_document(&row).expect_err("time");
    assert_eq!(err.field(), "outer.t");
    assert_eq!(
        err.to_string(),
        r#"field `outer.t`: time value "-838:59:59" has no BSON equivalent"#
    );

    let row: Row = [("big", Value::UInt(u64::MAX))].into_iter().collect();
    let err = row_to_document(&row).expect_err("u64");
    assert_eq!(
        err.to_string(),
        "field `big`: unsigned integer 18446744073709551615 is above the BSON int64 maximum 9223372036854775807"
    );

    let row: Row = [(
        "list",
        Value::Array(vec![Value::Int(1), Value::UInt(u64::MAX)]),
    )]
    .into_iter()
    .collect();
    assert_eq!(row_to_document(&row).expect_err("u64").field(), "list.1");

    let zero = Value::Date(Date::new(0, 0, 0).expect("zero date"));
    let err = row_to_document(&[("d", zero)].into_iter().collect()).expect_err("zero");
    assert_eq!(
        err.to_string(),
        r#"field `d`: date "0000-00-00" cannot be stored as a BSON datetime: zero dates are not instants"#
    );
    let feb30 = Value::Date(Date::new(2023, 2, 29).expect("date"));
    assert!(
        value_to_bson(&feb30)
            .expect_err("feb 29")
            .to_string()
            .contains("2023-02-29")
    );
    let zero_dt = Value::DateTime(
        DateTime::new(Date::new(2024, 0, 1).expect("d"), 0, 0, 0, 0, 0).expect("dt"),
    );
    assert!(
        value_to_bson(&zero_dt)
            .expect_err("zero")
            .to_string()
            .contains("2024-00-01T00:00:00")
    );
    let zero_ts = Value::Timestamp(Timestamp::new(0, 0, 0).expect("ts"));
    assert!(
        value_to_bson(&zero_ts)
            .expect_err("zero ts")
            .to_string()
            .contains("zero timestamp")
    );

    let wide = Value::Decimal(Decimal::parse("12345678901234567890123456789012345.6").expect("d"));
    let err = row_to_document(&[("price", wide)].into_iter().collect()).expect_err("wide");
    assert!(
        err.to_string().starts_with(
            "field `price`: decimal 12345678901234567890123456789012345.6 does not fit"
        ),
        "{err}"
    );

    let err = row_to_document(&[("a\0b", Value::Null)].into_iter().collect()).expect_err("nul");
    assert!(err.to_string().contains("NUL"), "{err}");
    let err = row_to_document(
        &[("x", Value::Int(1)), ("x", Value::Int(2))]
            .into_iter()
            .collect(),
    )
    .expect_err("twice");
    assert_eq!(
        err.to_string(),
        "field `x`: the field appears more than once"
    );

    // Top-level values have no field to name.
    let err = value_to_bson(&Value::UInt(u64::MAX)).expect_err("u64");
    assert_eq!(err.field(), "");
    assert!(err.to_string().starts_with("unsigned integer"), "{err}");
}

#[test]
fn converted_documents_print_as_relaxed_extended_json_v2() {
    let d = doc! {
        "_id": oid(),
        "n": 1,
        "big": 9_007_199_254_740_993_i64,
        "x": 1.0,
        "d": BsonDateTime::from_millis(1_709_210_096_789),
        "old": BsonDateTime::from_millis(-1),
        "dec": Decimal128::from_str("1.10").expect("dec"),
        "bin": Binary { subtype: BinarySubtype::Generic, bytes: vec![1, 2] },
        "uuid": Binary { subtype: BinarySubtype::Uuid, bytes: vec![0; 16] },
        "re": Regex { pattern: "^a".into(), options: "mi".into() },
        "ts": BsonTimestamp { time: 1_700_000_000, increment: 3 },
        "nan": f64::NAN,
        "a": [Bson::Null, true, "s"],
        "sub": {"k": Bson::MinKey, "m": Bson::MaxKey},
        "u": Bson::Undefined,
        "sym": Bson::Symbol("s".into()),
        "js": Bson::JavaScriptCode("f()".into()),
        "jss": JavaScriptCodeWithScope { code: "x".into(), scope: doc! {"x": 1} },
        "p": db_pointer(),
    };
    let mut buf = Vec::new();
    stream_core::json::write_row(&mut buf, &document_to_row(&d).expect("row"));
    let json = String::from_utf8(buf).expect("utf8");
    assert_eq!(
        json,
        concat!(
            r#"{"_id":{"$oid":"65e0000102030405060708ff"},"n":1,"big":9007199254740993,"x":1.0,"#,
            r#""d":{"$date":"2024-02-29T12:34:56.789Z"},"old":{"$date":{"$numberLong":"-1"}},"#,
            r#""dec":{"$numberDecimal":"1.10"},"bin":{"$binary":{"base64":"AQI=","subType":"00"}},"#,
            r#""uuid":{"$binary":{"base64":"AAAAAAAAAAAAAAAAAAAAAA==","subType":"04"}},"#,
            r#""re":{"$regularExpression":{"pattern":"^a","options":"im"}},"#,
            r#""ts":{"$timestamp":{"t":1700000000,"i":3}},"nan":{"$numberDouble":"NaN"},"#,
            r#""a":[null,true,"s"],"sub":{"k":{"$minKey":1},"m":{"$maxKey":1}},"#,
            r#""u":{"$undefined":true},"sym":{"$symbol":"s"},"js":{"$code":"f()"},"#,
            r#""jss":{"$code":"x","$scope":{"x":1}},"#,
            r#""p":{"$dbPointer":{"$ref":"db.c","$id":{"$oid":"65e0000102030405060708ff"}}}}"#
        )
    );
    // Same JSON values as the bson crate's own Relaxed Extended JSON (it omits a zero
    // millisecond fraction; none here).
    let ours: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(ours, Bson::Document(d).into_relaxed_extjson());
}

/// `{"a": {"a": ... {"leaf": 1}}}` with `nesting` documents inside the top-level one, built
/// without recursion (so is its drop: the bytes are one buffer).
fn nested_raw(nesting: usize) -> RawDocumentBuf {
    let mut inner = RawDocumentBuf::new();
    inner.append("leaf", 1);
    for _ in 0..nesting {
        let mut outer = RawDocumentBuf::new();
        outer.append("a", inner);
        inner = outer;
    }
    inner
}

/// Enough for the conversions down to [`MAX_DEPTH`] in a debug build; a recursion through
/// 1,000 levels needs several times more.
const STACK: usize = 512 * 1024;

/// Runs `f` on a thread with a small stack: a conversion that recursed once per level of a
/// 1,000-level document would overflow it (and abort the whole test process).
fn on_small_stack<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .stack_size(STACK)
            .spawn_scoped(scope, f)
            .expect("thread")
            .join()
            .expect("no panic")
    })
}

#[test]
fn documents_nested_a_thousand_levels_deep_are_errors_naming_the_field_not_stack_overflows() {
    let raw = nested_raw(1000);
    let err = on_small_stack(|| raw_document_to_row(&raw).expect_err("too deep"));
    assert!(
        matches!(
            err,
            ConvertError::TooDeep {
                limit: MAX_DEPTH,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.field(), vec!["a"; MAX_DEPTH + 1].join("."));
    assert_eq!(
        err.to_string(),
        format!(
            "field `a.a.a.a.….a ({} levels)`: documents and arrays nest deeper than 100 levels \
             (MongoDB's limit for stored documents)",
            MAX_DEPTH + 1
        )
    );
    // The same from a decoded document and from a value tree (both built, and dropped, on
    // this thread: their drop recurses).
    let mut doc = doc! {"leaf": 1};
    let mut value = Value::Int(1);
    for _ in 0..1000 {
        doc = doc! {"a": doc};
        value = Value::Document([("a", value)].into_iter().collect());
    }
    let err = on_small_stack(|| document_to_row(&doc).expect_err("too deep"));
    assert!(matches!(err, ConvertError::TooDeep { .. }), "{err:?}");
    let bson = Bson::Document(doc.clone());
    let err = on_small_stack(|| value_from_bson(&bson).expect_err("too deep"));
    assert!(matches!(err, ConvertError::TooDeep { .. }), "{err:?}");
    let err = on_small_stack(|| value_to_bson(&value).expect_err("too deep"));
    assert!(matches!(err, ConvertError::TooDeep { .. }), "{err:?}");
    let row: Row = [("v", value)].into_iter().collect();
    let err = on_small_stack(|| row_to_document(&row).expect_err("too deep"));
    assert!(err.field().starts_with("v.a.a"), "{err}");
}

#[test]
fn the_depth_limit_itself_is_allowed_both_ways() {
    let at_limit = nested_raw(MAX_DEPTH);
    let row = raw_document_to_row(&at_limit).expect("at the limit");
    let back = row_to_document(&row).expect("and back");
    assert_eq!(back, Document::try_from(at_limit.as_ref()).expect("decode"));
    assert!(raw_document_to_row(&nested_raw(MAX_DEPTH + 1)).is_err());
    // Arrays count as levels too.
    let mut arrays = Bson::Int32(1);
    for _ in 0..=MAX_DEPTH {
        arrays = Bson::Array(vec![arrays]);
    }
    let err = document_to_row(&doc! {"list": arrays}).expect_err("arrays");
    assert!(err.field().starts_with("list.0.0"), "{err}");
}

#[test]
fn malformed_raw_bson_is_an_error_not_a_panic() {
    // A string element whose length runs past the end of the document.
    let bytes = [12, 0, 0, 0, 0x02, b'a', 0, 0xff, 0xff, 0xff, 0x7f, 0];
    let raw = RawDocument::from_bytes(&bytes).expect("the frame is well-formed");
    let err = raw_document_to_row(raw).expect_err("malformed");
    assert!(err.to_string().contains("malformed BSON"), "{err}");
}
