//! Change-stream documents to `SourceEvent`s, and reassembly of split large events.

use std::sync::Arc;

use mongodb::bson::{Bson, Document, spec::BinarySubtype};
use stream_core::{
    ChangeEvent, MongoPosition, Namespace, Op, Position, Row, SchemaChange, SchemaChangeKind,
    SourceEvent, SourceKind, UpdateDescription,
};

use crate::bson_value::{ConvertError, document_to_row};

/// The raw BSON of a change document's `_id`: its resume token.
pub(crate) fn token_bytes(doc: &Document) -> Option<Vec<u8>> {
    let id = doc.get_document("_id").ok()?;
    let mut out = Vec::new();
    id.to_writer(&mut out).ok()?;
    Some(out)
}

pub(crate) fn token_position(bytes: Vec<u8>) -> Position {
    Position::MongoDb(MongoPosition::ResumeToken(bytes))
}

/// The cluster time of a change document, `(t, i)`.
pub(crate) fn cluster_time(doc: &Document) -> Option<(u32, u32)> {
    match doc.get("clusterTime") {
        Some(Bson::Timestamp(ts)) => Some((ts.time, ts.increment)),
        _ => None,
    }
}

/// What a change document means for us.
#[derive(Debug)]
pub(crate) enum Converted {
    Event(SourceEvent),
    /// `invalidate`: the stream is closed; restart after this token.
    Invalidate(SourceEvent),
    /// An event type we do not surface (index builds and the like); the position still moves.
    Skip,
}

/// Converts one (whole, reassembled) change document. `watched` names the namespace of the
/// stream, for `invalidate`, which has none. Errors name the field of the change document
/// (`fullDocument.a.b`) that cannot be converted.
pub(crate) fn convert(
    doc: &Document,
    token: Vec<u8>,
    watched: &Namespace,
) -> Result<Converted, ConvertError> {
    let op = doc.get_str("operationType").unwrap_or_default();
    let namespace = namespace_of(doc).unwrap_or_else(|| watched.clone());
    let position = token_position(token);
    let ts_ms = match doc.get("wallTime") {
        Some(Bson::DateTime(at)) => at.timestamp_millis(),
        _ => cluster_time(doc).map_or(0, |(t, _)| i64::from(t) * 1000),
    };
    let row_op = match op {
        "insert" => Some(Op::Insert),
        "update" => Some(Op::Update),
        "replace" => Some(Op::Replace),
        "delete" => Some(Op::Delete),
        _ => None,
    };
    if let Some(op) = row_op {
        let update = if op == Op::Update {
            Some(update_description(doc)?)
        } else {
            None
        };
        return Ok(Converted::Event(SourceEvent::Change(ChangeEvent {
            source: SourceKind::MongoDb,
            namespace,
            op,
            key: row_of(doc, "documentKey")?,
            before: row_of(doc, "fullDocumentBeforeChange")?,
            after: if op == Op::Delete {
                None
            } else {
                row_of(doc, "fullDocument")?
            },
            update,
            position,
            ts_ms,
            txn: txn_id(doc),
        })));
    }
    let kind = match op {
        "drop" => SchemaChangeKind::Drop,
        "dropDatabase" => SchemaChangeKind::DropDatabase,
        "rename" => match doc.get_document("to").ok().and_then(ns_from) {
            Some(to) => SchemaChangeKind::Rename { to },
            None => return Ok(Converted::Skip),
        },
        "create" => SchemaChangeKind::Create,
        "modify" => SchemaChangeKind::Alter,
        "invalidate" => SchemaChangeKind::Invalidate,
        other => {
            tracing::debug!(operation = other, "change-stream event not surfaced");
            return Ok(Converted::Skip);
        }
    };
    let event = SourceEvent::Schema(SchemaChange {
        source: SourceKind::MongoDb,
        namespace,
        kind,
        statement: None,
        position,
        ts_ms,
    });
    Ok(if op == "invalidate" {
        Converted::Invalidate(event)
    } else {
        Converted::Event(event)
    })
}

/// The document in `field` as a row, if there is one.
fn row_of(doc: &Document, field: &str) -> Result<Option<Row>, ConvertError> {
    doc.get_document(field)
        .ok()
        .map(|d| document_to_row(d).map_err(|e| e.within(field)))
        .transpose()
}

fn ns_from(ns: &Document) -> Option<Namespace> {
    let db = ns.get_str("db").ok()?;
    let coll = ns.get_str("coll").unwrap_or_default();
    Some(Namespace::new(db, coll))
}

pub(crate) fn namespace_of(doc: &Document) -> Option<Namespace> {
    doc.get_document("ns").ok().and_then(ns_from)
}

fn update_description(doc: &Document) -> Result<UpdateDescription, ConvertError> {
    let Ok(desc) = doc.get_document("updateDescription") else {
        return Ok(UpdateDescription {
            set: Row::new(),
            unset: Vec::new(),
        });
    };
    let set = row_of(desc, "updatedFields")
        .map_err(|e| e.within("updateDescription"))?
        .unwrap_or_default();
    let unset = desc
        .get_array("removedFields")
        .map(|fields| {
            fields
                .iter()
                .filter_map(|f| f.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    Ok(UpdateDescription { set, unset })
}

/// `lsid:txnNumber` for events of a multi-document transaction; the session id's UUID in its
/// canonical text form.
fn txn_id(doc: &Document) -> Option<Arc<str>> {
    let number = match doc.get("txnNumber")? {
        Bson::Int64(n) => *n,
        Bson::Int32(n) => i64::from(*n),
        _ => return None,
    };
    let session = match doc.get_document("lsid").ok()?.get("id")? {
        Bson::Binary(b) if b.subtype == BinarySubtype::Uuid && b.bytes.len() == 16 => {
            uuid_text(&b.bytes)
        }
        other => other.to_string(),
    };
    Some(format!("{session}:{number}").into())
}

use stream_core::hex::uuid as uuid_text;

/// Joins the fragments of an event the server split with `$changeStreamSplitLargeEvent`.
#[derive(Debug, Default)]
pub(crate) struct Reassembly {
    parts: Option<(u32, Document)>,
}

impl Reassembly {
    /// Feeds one change document; returns a whole event when one is complete. A fragment out of
    /// sequence (after a reconnect) restarts the reassembly from its first fragment.
    pub(crate) fn feed(&mut self, doc: Document) -> Result<Option<Document>, String> {
        let Ok(split) = doc.get_document("splitEvent") else {
            self.parts = None;
            return Ok(Some(doc));
        };
        let number = |field: &str| match split.get(field) {
            Some(Bson::Int32(n)) => u32::try_from(*n).ok(),
            Some(Bson::Int64(n)) => u32::try_from(*n).ok(),
            _ => None,
        };
        let (Some(fragment), Some(of)) = (number("fragment"), number("of")) else {
            return Err(format!("malformed splitEvent {split}"));
        };
        let mut merged = match self.parts.take() {
            Some((seen, merged)) if seen + 1 == fragment => merged,
            _ if fragment == 1 => Document::new(),
            _ => {
                return Err(format!(
                    "fragment {fragment} of {of} arrived without its predecessors"
                ));
            }
        };
        for (field, value) in doc {
            if field != "splitEvent" {
                // `_id` of the last fragment wins: resuming after it skips the whole event.
                merged.insert(field, value);
            }
        }
        if fragment == of {
            Ok(Some(merged))
        } else {
            self.parts = Some((fragment, merged));
            Ok(None)
        }
    }

    /// Whether fragments of an unfinished event are held.
    pub(crate) fn pending(&self) -> bool {
        self.parts.is_some()
    }

    pub(crate) fn clear(&mut self) {
        self.parts = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mongodb::bson::{Binary, DateTime, Timestamp, doc};

    fn watched() -> Namespace {
        Namespace::new("shop", "orders")
    }

    #[test]
    fn an_update_maps_to_the_contract() {
        let d = doc! {
            "_id": {"_data": "82AB"},
            "operationType": "update",
            "clusterTime": Timestamp { time: 1_700_000_000, increment: 3 },
            "wallTime": DateTime::from_millis(1_700_000_000_123),
            "ns": {"db": "shop", "coll": "orders"},
            "documentKey": {"_id": 7},
            "updateDescription": {"updatedFields": {"a.b": 1}, "removedFields": ["c"], "truncatedArrays": []},
            "fullDocumentBeforeChange": {"_id": 7, "c": true},
            "lsid": {"id": Binary { subtype: BinarySubtype::Uuid, bytes: (0u8..16).collect() }, "uid": Binary { subtype: BinarySubtype::Generic, bytes: vec![0; 32] }},
            "txnNumber": 5_i64,
        };
        let token = token_bytes(&d).expect("token");
        let Ok(Converted::Event(SourceEvent::Change(ev))) = convert(&d, token, &watched()) else {
            panic!("not a change")
        };
        assert_eq!(
            ev.to_json(),
            format!(
                "{{\"source\":\"mongodb\",\"db\":\"shop\",\"table\":\"orders\",\"op\":\"update\",\
                 \"key\":{{\"_id\":7}},\"before\":{{\"_id\":7,\"c\":true}},\"after\":null,\
                 \"update\":{{\"set\":{{\"a.b\":1}},\"unset\":[\"c\"]}},\"position\":\"{}\",\
                 \"ts_ms\":1700000000123,\"txn\":\"00010203-0405-0607-0809-0a0b0c0d0e0f:5\"}}",
                ev.position
            )
        );
    }

    #[test]
    fn ddl_like_events_are_typed() {
        let base = |op: &str| doc! {"_id": {"_data": "01"}, "operationType": op, "ns": {"db": "shop", "coll": "orders"}};
        let kind = |d: &Document| match convert(d, vec![1], &watched()) {
            Ok(Converted::Event(SourceEvent::Schema(s)))
            | Ok(Converted::Invalidate(SourceEvent::Schema(s))) => s.kind,
            other => panic!("{other:?}"),
        };
        assert_eq!(kind(&base("drop")), SchemaChangeKind::Drop);
        assert_eq!(kind(&base("dropDatabase")), SchemaChangeKind::DropDatabase);
        let mut rename = base("rename");
        rename.insert("to", doc! {"db": "shop", "coll": "archive"});
        assert_eq!(
            kind(&rename),
            SchemaChangeKind::Rename {
                to: Namespace::new("shop", "archive")
            }
        );
        let invalidate = doc! {"_id": {"_data": "02"}, "operationType": "invalidate"};
        assert!(matches!(
            convert(&invalidate, vec![2], &watched()),
            Ok(Converted::Invalidate(SourceEvent::Schema(SchemaChange { ref namespace, .. }))) if *namespace == watched()
        ));
        assert!(matches!(
            convert(&base("createIndexes"), vec![3], &watched()),
            Ok(Converted::Skip)
        ));
    }

    #[test]
    fn split_fragments_are_joined_with_the_last_token() {
        let mut r = Reassembly::default();
        let f1 = doc! {"_id": {"_data": "A1"}, "splitEvent": {"fragment": 1, "of": 2}, "operationType": "update", "fullDocument": {"_id": 1, "big": "x"}};
        let f2 = doc! {"_id": {"_data": "A2"}, "splitEvent": {"fragment": 2, "of": 2}, "fullDocumentBeforeChange": {"_id": 1}};
        assert_eq!(r.feed(f1).expect("f1"), None);
        assert!(r.pending());
        let whole = r.feed(f2).expect("f2").expect("whole");
        assert_eq!(
            whole.get_document("_id").expect("id"),
            &doc! {"_data": "A2"}
        );
        assert_eq!(whole.get_str("operationType"), Ok("update"));
        assert!(
            whole.contains_key("fullDocument") && whole.contains_key("fullDocumentBeforeChange")
        );
        assert!(!whole.contains_key("splitEvent") && !r.pending());
        let orphan = doc! {"_id": {"_data": "B2"}, "splitEvent": {"fragment": 2, "of": 2}};
        assert!(r.feed(orphan).is_err());
        let plain = doc! {"_id": {"_data": "C"}, "operationType": "insert"};
        assert_eq!(r.feed(plain.clone()).expect("plain"), Some(plain));
    }
}
