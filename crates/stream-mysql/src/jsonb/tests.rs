use proptest::prelude::*;
use serde_json::json;

use super::*;

/// MySQL's binary form of `v`: keys, then values, in order, as the server writes them.
fn encode(v: &Value) -> Vec<u8> {
    let (ty, body) = encode_value(v);
    let mut out = vec![ty];
    out.extend(body);
    out
}

fn var_len(mut n: usize, out: &mut Vec<u8>) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn encode_value(v: &Value) -> (u8, Vec<u8>) {
    match v {
        Value::Null => (tag::LITERAL, vec![0]),
        Value::Bool(b) => (tag::LITERAL, vec![if *b { 1 } else { 2 }]),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) if i16::try_from(i).is_ok() => {
                (tag::INT16, (i as i16).to_le_bytes().to_vec())
            }
            (Some(i), _, _) if i32::try_from(i).is_ok() => {
                (tag::INT32, (i as i32).to_le_bytes().to_vec())
            }
            (Some(i), _, _) => (tag::INT64, i.to_le_bytes().to_vec()),
            (None, Some(u), _) => (tag::UINT64, u.to_le_bytes().to_vec()),
            (_, _, f) => (tag::DOUBLE, f.unwrap_or_default().to_le_bytes().to_vec()),
        },
        Value::String(s) => {
            let mut body = Vec::new();
            var_len(s.len(), &mut body);
            body.extend_from_slice(s.as_bytes());
            (tag::STRING, body)
        }
        Value::Array(items) => container(None, items.iter().collect()),
        Value::Object(map) => {
            let keys = map.keys().map(String::as_str).collect();
            container(Some(keys), map.values().collect())
        }
    }
}

fn container(keys: Option<Vec<&str>>, values: Vec<&Value>) -> (u8, Vec<u8>) {
    let object = keys.is_some();
    let small = build(keys.clone(), &values, false);
    match (small.len() <= usize::from(u16::MAX), object) {
        (true, true) => (tag::SMALL_OBJECT, small),
        (true, false) => (tag::SMALL_ARRAY, small),
        (false, true) => (tag::LARGE_OBJECT, build(keys, &values, true)),
        (false, false) => (tag::LARGE_ARRAY, build(keys, &values, true)),
    }
}

fn build(keys: Option<Vec<&str>>, values: &[&Value], large: bool) -> Vec<u8> {
    let width = if large { 4 } else { 2 };
    let put = |n: usize, out: &mut Vec<u8>| out.extend_from_slice(&n.to_le_bytes()[..width]);
    let n = values.len();
    let key_entries = keys.as_ref().map_or(0, |k| k.len() * (width + 2));
    let mut offset = 2 * width + key_entries + n * (width + 1);
    let (mut entries, mut tail) = (Vec::new(), Vec::new());
    for key in keys.iter().flatten() {
        put(offset, &mut entries);
        entries.extend_from_slice(&(key.len() as u16).to_le_bytes());
        tail.extend_from_slice(key.as_bytes());
        offset += key.len();
    }
    for v in values {
        let (ty, body) = encode_value(v);
        entries.push(ty);
        let inlined = matches!(ty, tag::LITERAL | tag::INT16 | tag::UINT16)
            || (large && matches!(ty, tag::INT32 | tag::UINT32));
        if inlined {
            let mut inline = body;
            inline.resize(width, 0);
            entries.extend(inline);
        } else {
            put(offset, &mut entries);
            offset += body.len();
            tail.extend(body);
        }
    }
    let mut out = Vec::new();
    put(n, &mut out);
    put(offset, &mut out);
    out.extend(entries);
    out.extend(tail);
    out
}

/// What `mysql_common` made of the same bytes (the decoder used before; only for valid input,
/// as it panics on some hostile input).
fn mysql_common_text(bytes: &[u8]) -> String {
    use mysql_common::io::ParseBuf;
    use mysql_common::proto::MyDeserialize;
    let value = mysql_common::binlog::jsonb::Value::deserialize((), &mut ParseBuf(bytes))
        .expect("mysql_common reads it");
    serde_json::Value::from(value.parse().expect("mysql_common parses it")).to_string()
}

fn text(bytes: &[u8]) -> String {
    decode(bytes).expect("decodes").as_str().to_owned()
}

#[test]
fn documents_decode_as_mysql_common_decoded_them() {
    let doc = json!({
        "b": [1, -2, 70000, -5_000_000_000i64, u64::MAX, 1.5, "x", true, false, null],
        "a": {"nested": "yes", "empty": {}, "list": []},
        "": "",
        "ünï": "cödé"
    });
    let bytes = encode(&doc);
    assert_eq!(text(&bytes), mysql_common_text(&bytes));
    let back: Value = serde_json::from_str(&text(&bytes)).expect("json");
    assert_eq!(back, doc);
    assert_eq!(text(&[]), "null");
    let large = json!([("x".repeat(70_000)), 1, {"k": 2}]);
    let bytes = encode(&large);
    assert_eq!(bytes[0], tag::LARGE_ARRAY);
    assert_eq!(text(&bytes), mysql_common_text(&bytes));
}

#[test]
fn opaque_decimals_and_temporals_read_as_mysql_common_printed_them() {
    let opaque = |field: u8, data: &[u8]| {
        let mut b = vec![tag::OPAQUE, field];
        var_len(data.len(), &mut b);
        b.extend_from_slice(data);
        b
    };
    let ymd: i64 = ((2024 * 13 + 2) << 5) | 29;
    let hms: i64 = (12 << 12) | (34 << 6) | 56;
    let time: i64 = -(((838 << 12) | (59 << 6) | 59) << 24);
    for (bytes, expected) in [
        // DECIMAL(5,2) 123.45: precision, scale, then the binary digits.
        (opaque(246, &[5, 2, 0x80, 0x7b, 0x2d]), "\"123.45\""),
        (
            opaque(10, &((ymd << 17) << 24).to_le_bytes()),
            "\"2024-02-29\"",
        ),
        (
            opaque(12, &((((ymd << 17) | hms) << 24) | 789_000).to_le_bytes()),
            "\"2024-02-29 12:34:56.789000\"",
        ),
        (
            opaque(7, &(((ymd << 17) | hms) << 24).to_le_bytes()),
            "\"2024-02-29 12:34:56.000000\"",
        ),
        (opaque(11, &time.to_le_bytes()), "\"-838:59:59.000000\""),
        (opaque(252, b"\x01\x02"), "\"base64:type252:AQI=\""),
    ] {
        assert_eq!(text(&bytes), expected);
        assert_eq!(text(&bytes), mysql_common_text(&bytes));
    }
    assert!(decode(&opaque(246, &[70, 2, 0])).is_err(), "DECIMAL(70,2)");
    assert!(decode(&opaque(12, &[1, 2, 3])).is_err(), "a short DATETIME");
    assert!(
        decode(&opaque(12, &i64::MIN.to_le_bytes())).is_ok(),
        "no overflow on negation"
    );
}

/// `depth` arrays, each holding the next; the innermost is empty.
fn nested_arrays(depth: usize) -> Vec<u8> {
    let mut inner = vec![0, 0, 4, 0];
    for _ in 1..depth {
        let size = (7 + inner.len()) as u16;
        let mut outer = vec![1, 0];
        outer.extend_from_slice(&size.to_le_bytes());
        outer.extend_from_slice(&[tag::SMALL_ARRAY, 7, 0]);
        outer.extend(inner);
        inner = outer;
    }
    let mut bytes = vec![tag::SMALL_ARRAY];
    bytes.extend(inner);
    bytes
}

#[test]
fn nesting_deeper_than_mysql_allows_is_an_error_not_a_stack_overflow() {
    assert_eq!(
        text(&nested_arrays(MAX_DEPTH)).len(),
        2 * MAX_DEPTH,
        "100 levels are fine"
    );
    for depth in [MAX_DEPTH + 1, 1000, 9000] {
        let err = decode(&nested_arrays(depth)).expect_err("too deep");
        assert!(err.contains("nested deeper than 100 levels"), "{err}");
    }
}

#[test]
fn offsets_counts_and_lengths_past_the_value_are_errors() {
    let two = encode(&json!(["abc", "def"]));
    // The second value pointing at the first: decoded twice (and so exponential when nested).
    let mut shared = two.clone();
    shared[9] = shared[6];
    assert!(decode(&shared).expect_err("shared").contains("overlaps"));
    let mut outside = two.clone();
    outside[9] = 200;
    assert!(decode(&outside).is_err());
    // A count whose entries cannot fit: refused before anything is allocated for it.
    let mut huge = vec![tag::LARGE_OBJECT];
    huge.extend_from_slice(&u32::MAX.to_le_bytes());
    huge.extend_from_slice(&8u32.to_le_bytes());
    assert!(decode(&huge).expect_err("count").contains("do not fit"));
    let mut size = encode(&json!({"k": "v"}));
    size[3] = 0xff;
    assert!(decode(&size).expect_err("size").contains("bytes with"));
    let mut key = encode(&json!({"k": "v"}));
    key[5] = 2;
    assert!(
        decode(&key)
            .expect_err("key in the header")
            .contains("key 0")
    );
    assert!(decode(&[tag::STRING, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]).is_err());
    assert!(
        decode(&[0x0d])
            .expect_err("type")
            .contains("unknown value type")
    );
    assert!(decode(&[tag::LITERAL, 7]).is_err());
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<i16>().prop_map(Value::from),
        (-1e300f64..1e300).prop_map(Value::from),
        ".{0,20}".prop_map(Value::from),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(".{0,10}", inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn any_document_round_trips_and_matches_mysql_common(doc in json_value()) {
        let bytes = encode(&doc);
        let decoded = text(&bytes);
        // serde_json writes the same f64 the same way (its parser may round the last digit).
        prop_assert_eq!(&decoded, &doc.to_string());
        prop_assert_eq!(decoded, mysql_common_text(&bytes));
    }

    #[test]
    fn random_bytes_never_panic(ty in 0u8..16, body in prop::collection::vec(any::<u8>(), 0..256)) {
        let mut bytes = vec![ty];
        bytes.extend(body);
        let _ = decode(&bytes);
    }

    #[test]
    fn corrupted_documents_never_panic(doc in json_value(), at in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let mut bytes = encode(&doc);
        let i = at.index(bytes.len());
        bytes[i] = byte;
        let _ = decode(&bytes);
    }
}
