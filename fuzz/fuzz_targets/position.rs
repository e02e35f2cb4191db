//! Position text, as users pass it to `--from` and checkpoints hold it: what parses must print
//! and parse back to the same position, and so must MariaDB GTID lists, MySQL GTID sets and
//! namespace patterns. Nothing may panic.
#![no_main]

use std::cmp::Ordering;
use std::fmt::Display;
use std::str::FromStr;

use libfuzzer_sys::fuzz_target;
use stream_core::{GtidSet, MariaDbGtidList, NamespacePattern, Position};

/// What parses prints as text that parses back to the same value and prints the same.
fn round_trips<T: FromStr + Display + PartialEq + std::fmt::Debug>(text: &str) -> Option<T>
where
    T::Err: Display,
{
    let value: T = text.parse().ok()?;
    let printed = value.to_string();
    let back: T = printed
        .parse()
        .unwrap_or_else(|e| panic!("{text:?} printed as {printed:?}, which does not parse: {e}"));
    assert_eq!(back, value, "{text:?} printed as {printed:?}");
    assert_eq!(back.to_string(), printed, "{text:?}");
    Some(value)
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(p) = round_trips::<Position>(text) {
        assert!(
            !matches!(p.compare(&p), Some(Ordering::Less | Ordering::Greater)),
            "{p} is not equal to itself"
        );
        let json = serde_json::to_string(&p).expect("positions serialize");
        assert_eq!(serde_json::from_str::<Position>(&json).ok(), Some(p), "{json}");
    }
    if let Some(list) = round_trips::<MariaDbGtidList>(text) {
        assert_eq!(list.compare(&list), Some(Ordering::Equal), "{list}");
    }
    if let Some(set) = round_trips::<GtidSet>(text) {
        assert_eq!(set.compare(&set), Some(Ordering::Equal), "{set}");
    }
    round_trips::<NamespacePattern>(text);
});
