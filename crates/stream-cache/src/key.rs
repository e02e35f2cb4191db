//! Cache keys: canonical bytes of a namespace and a key row (or a query), and their hashes.

use stream_core::json::write_row;
use stream_core::{Namespace, Query, Row};

use crate::gens::{Slots, ns_slot};

/// FNV-1a over bytes, then a finaliser so the low bits (the stripe index) mix every byte.
fn hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h
}

/// Appends the namespace, length-prefixed so that no two namespaces share a prefix.
fn push_namespace(buf: &mut Vec<u8>, ns: &Namespace) {
    for part in [&*ns.db, &*ns.table] {
        buf.extend_from_slice(&(part.len() as u32).to_le_bytes());
        buf.extend_from_slice(part.as_bytes());
    }
}

/// The hash of a namespace alone, as a row or query key of it computes it.
pub(crate) fn namespace_hash(ns: &Namespace) -> u64 {
    let mut buf = Vec::with_capacity(ns.db.len() + ns.table.len() + 8);
    push_namespace(&mut buf, ns);
    hash(&buf)
}

/// The namespace stripe of a namespace.
pub(crate) fn namespace_slot(ns: &Namespace) -> usize {
    ns_slot(namespace_hash(ns))
}

/// The local key of a row: the namespace, then the contract JSON of the key row (the encoding
/// `MemoryStore` keys by, and the one change events carry, so a key read as `Int(7)` and an
/// event's `UInt(7)` meet).
pub(crate) struct RowKey {
    bytes: Vec<u8>,
    json_start: usize,
    pub(crate) ns_hash: u64,
    pub(crate) slots: Slots,
}

impl RowKey {
    pub(crate) fn new(ns: &Namespace, key: &Row) -> Self {
        let mut buf = Vec::with_capacity(ns.db.len() + ns.table.len() + 8 + key.len() * 16);
        push_namespace(&mut buf, ns);
        let ns_hash = hash(&buf);
        let json_start = buf.len();
        write_row(&mut buf, key);
        let key_hash = hash(&buf);
        Self {
            bytes: buf,
            json_start,
            ns_hash,
            slots: Slots::new(key_hash, ns_hash),
        }
    }

    /// The bytes the local cache is keyed by.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The key bytes, owned (a lookup needs none: only what is stored is copied).
    pub(crate) fn to_boxed(&self) -> Box<[u8]> {
        self.bytes.as_slice().into()
    }

    /// The contract JSON of the key row.
    pub(crate) fn json(&self) -> &str {
        // Written by `write_row`, which writes only UTF-8.
        std::str::from_utf8(&self.bytes[self.json_start..]).unwrap_or_default()
    }
}

/// The local key of a query result: the namespace, then the tagged encoding of the query (exact
/// about value kinds, since a filter on `"1.0"` and one on `Decimal(1.0)` select differently).
/// `None` for a query with a filter this crate does not know (it is then never cached).
pub(crate) fn query_key(ns: &Namespace, query: &Query) -> Option<Box<[u8]>> {
    let encoded = crate::codec::encode_query(query)?;
    let mut buf = Vec::with_capacity(ns.db.len() + ns.table.len() + 8 + encoded.len());
    push_namespace(&mut buf, ns);
    buf.extend_from_slice(encoded.as_bytes());
    Some(buf.into_boxed_slice())
}

#[cfg(test)]
mod tests {
    use super::*;
    use stream_core::Value;

    fn key(v: Value) -> Row {
        [("id", v)].into_iter().collect()
    }

    #[test]
    fn keys_separate_namespaces_and_agree_on_equal_json() {
        let a = RowKey::new(&Namespace::new("ab", "c"), &key(Value::Int(1)));
        let b = RowKey::new(&Namespace::new("a", "bc"), &key(Value::Int(1)));
        assert_ne!(a.bytes(), b.bytes());
        let c = RowKey::new(&Namespace::new("ab", "c"), &key(Value::UInt(1)));
        assert_eq!(a.bytes(), c.bytes());
        assert_eq!(a.slots, c.slots);
        assert_eq!(a.json(), r#"{"id":1}"#);
        assert_eq!(a.slots.ns, namespace_slot(&Namespace::new("ab", "c")));
    }

    #[test]
    fn query_keys_tell_value_kinds_apart() {
        use stream_core::{Decimal, Filter};
        let ns = Namespace::new("shop", "orders");
        let text = Query::filter(Filter::Eq("total".into(), Value::from("1.0")));
        let dec = Query::filter(Filter::Eq(
            "total".into(),
            Value::Decimal(Decimal::parse("1.0").expect("decimal")),
        ));
        assert_ne!(query_key(&ns, &text), query_key(&ns, &dec));
        assert_eq!(query_key(&ns, &text), query_key(&ns, &text.clone()));
        assert_ne!(
            query_key(&ns, &text.clone().limit(1)),
            query_key(&ns, &text)
        );
    }
}
