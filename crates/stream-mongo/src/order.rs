//! MongoDB's sort order across BSON types, for "everything after this value" queries.

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
}
