//! MongoDB's sort order across BSON types, for "everything after this value" queries.

use std::cmp::Ordering;

use mongodb::bson::{Bson, Document, doc};

/// MongoDB's sort order of BSON type brackets, by `$type` alias.
const TYPE_ORDER: &[&[&str]] = &[
    &["minKey"],
    &["null", "undefined"],
    &["int", "long", "double", "decimal"],
    &["symbol", "string"],
    &["object"],
    &["array"],
    &["binData"],
    &["objectId"],
    &["bool"],
    &["date"],
    &["timestamp"],
    &["regex"],
    &["maxKey"],
];

fn type_rank(value: &Bson) -> usize {
    match value {
        Bson::MinKey => 0,
        Bson::Null | Bson::Undefined => 1,
        Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_) | Bson::Decimal128(_) => 2,
        Bson::Symbol(_) | Bson::String(_) => 3,
        Bson::Document(_) => 4,
        Bson::Array(_) => 5,
        Bson::Binary(_) => 6,
        Bson::ObjectId(_) => 7,
        Bson::Boolean(_) => 8,
        Bson::DateTime(_) => 9,
        Bson::Timestamp(_) => 10,
        Bson::RegularExpression(_) => 11,
        Bson::MaxKey => 12,
        _ => 11,
    }
}

/// How `a` sorts against `b` in an index (the `_id` index without a collation), where that is
/// known here: across type brackets, and within numbers, ObjectIds, booleans, dates and the
/// single-value brackets. `None` for the rest (strings may sort by a collation; decimals,
/// binaries, documents and arrays are not compared here).
pub(crate) fn compare(a: &Bson, b: &Bson) -> Option<Ordering> {
    let (ra, rb) = (bracket(a)?, bracket(b)?);
    if ra != rb {
        return Some(ra.cmp(&rb));
    }
    match (a, b) {
        (Bson::ObjectId(x), Bson::ObjectId(y)) => Some(x.bytes().cmp(&y.bytes())),
        (Bson::Boolean(x), Bson::Boolean(y)) => Some(x.cmp(y)),
        (Bson::DateTime(x), Bson::DateTime(y)) => Some(x.cmp(y)),
        (Bson::MinKey | Bson::MaxKey | Bson::Null | Bson::Undefined, _) => Some(Ordering::Equal),
        _ => match (integer(a), integer(b)) {
            (Some(x), Some(y)) => Some(x.cmp(&y)),
            _ => exact_float(a)?.partial_cmp(&exact_float(b)?),
        },
    }
}

/// [`type_rank`] where the type is one of the brackets (not the types it lumps in at the end).
fn bracket(value: &Bson) -> Option<usize> {
    match value {
        Bson::JavaScriptCode(_) | Bson::JavaScriptCodeWithScope(_) | Bson::DbPointer(_) => None,
        other => Some(type_rank(other)),
    }
}

fn integer(value: &Bson) -> Option<i64> {
    match value {
        Bson::Int32(v) => Some(i64::from(*v)),
        Bson::Int64(v) => Some(*v),
        _ => None,
    }
}

/// A number as a double when the double is exact (integers up to 2^53, finite doubles).
fn exact_float(value: &Bson) -> Option<f64> {
    const EXACT: i64 = 1 << 53;
    match value {
        Bson::Double(f) if f.is_finite() => Some(*f),
        Bson::Int32(v) => Some(f64::from(*v)),
        #[allow(clippy::cast_precision_loss)] // only where it is exact
        Bson::Int64(v) if (-EXACT..=EXACT).contains(v) => Some(*v as f64),
        _ => None,
    }
}

/// `{path: condition}` (a dotted path stays one key, as MongoDB reads it).
pub(crate) fn single(path: &str, condition: Bson) -> Document {
    let mut d = Document::new();
    d.insert(path, condition);
    d
}

/// Documents whose `path` sorts after `value`: `$gt` compares within one type bracket only,
/// so the later brackets are added by `$type`.
pub(crate) fn after(path: &str, value: &Bson) -> Document {
    let greater = single(path, Bson::Document(doc! {"$gt": value.clone()}));
    let later: Vec<&str> = TYPE_ORDER
        .get(type_rank(value) + 1..)
        .unwrap_or_default()
        .iter()
        .flat_map(|aliases| aliases.iter().copied())
        .collect();
    if later.is_empty() {
        greater
    } else {
        let typed = single(path, Bson::Document(doc! {"$type": later}));
        doc! {"$or": [greater, typed]}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_a_value_also_takes_the_later_type_brackets() {
        assert_eq!(
            after("_id", &Bson::MaxKey),
            doc! {"_id": {"$gt": Bson::MaxKey}}
        );
        let f = after("_id", &Bson::String("m".into()));
        let later = f.get_array("$or").expect("or")[1]
            .as_document()
            .and_then(|d| d.get_document("_id").ok())
            .and_then(|d| d.get_array("$type").ok())
            .expect("types")
            .clone();
        assert_eq!(later.first(), Some(&Bson::String("object".into())));
        assert!(!later.contains(&Bson::String("int".into())));
        assert!(later.contains(&Bson::String("objectId".into())));
    }

    #[test]
    fn ids_compare_as_the_index_sorts_them_or_not_at_all() {
        use mongodb::bson::oid::ObjectId;
        let (older, newer) = (ObjectId::from_bytes([1; 12]), ObjectId::from_bytes([2; 12]));
        let cases = [
            (Bson::Int32(7), Bson::Int64(7), Some(Ordering::Equal)),
            (
                Bson::Int64(1 << 60),
                Bson::Int32(3),
                Some(Ordering::Greater),
            ),
            (Bson::Double(2.5), Bson::Int32(3), Some(Ordering::Less)),
            (Bson::Int32(3), Bson::ObjectId(older), Some(Ordering::Less)),
            (
                Bson::ObjectId(newer),
                Bson::ObjectId(older),
                Some(Ordering::Greater),
            ),
            (Bson::MaxKey, Bson::Int32(1), Some(Ordering::Greater)),
            (Bson::String("a".into()), Bson::String("b".into()), None),
            (
                Bson::String("a".into()),
                Bson::Int32(1),
                Some(Ordering::Greater),
            ),
            (
                Bson::Decimal128(mongodb::bson::Decimal128::from_bytes([0; 16])),
                Bson::Int32(1),
                None,
            ),
            (Bson::Int64((1 << 60) + 1), Bson::Double(1e18), None),
            (Bson::Double(f64::NAN), Bson::Int32(1), None),
        ];
        for (a, b, want) in cases {
            assert_eq!(compare(&a, &b), want, "{a} vs {b}");
        }
    }
}
