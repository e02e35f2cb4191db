//! The human view of `ustream tail --format pretty`: one coloured line per change.

use stream_core::json::{write_row, write_value};
use stream_core::{ChangeEvent, Op, Row};

const RESET: &str = "\x1b[0m";
const DIM: &str = "\x1b[2m";
const BOLD: &str = "\x1b[1m";

fn paint(buf: &mut Vec<u8>, colour: bool, code: &str, text: &str) {
    if colour {
        buf.extend_from_slice(code.as_bytes());
        buf.extend_from_slice(text.as_bytes());
        buf.extend_from_slice(RESET.as_bytes());
    } else {
        buf.extend_from_slice(text.as_bytes());
    }
}

/// `12:34:56.789 UPDATE shop.orders {"id":7}  status: "new" → "paid"`
pub(crate) fn write_line(buf: &mut Vec<u8>, ev: &ChangeEvent, colour: bool) {
    let ms = ev.ts_ms.rem_euclid(86_400_000);
    let clock = format!(
        "{:02}:{:02}:{:02}.{:03} ",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    );
    paint(buf, colour, DIM, &clock);
    let (code, word) = match ev.op {
        Op::Insert => ("\x1b[32m", "INSERT "),
        Op::Update => ("\x1b[33m", "UPDATE "),
        Op::Delete => ("\x1b[31m", "DELETE "),
        Op::Replace => ("\x1b[36m", "REPLACE"),
        _ => ("", "CHANGE "),
    };
    paint(buf, colour, &format!("{BOLD}{code}"), word);
    buf.push(b' ');
    paint(buf, colour, BOLD, &ev.namespace.to_string());
    buf.push(b' ');
    if let Some(key) = &ev.key {
        write_row(buf, key);
        buf.extend_from_slice(b"  ");
    }
    match (ev.op, &ev.before, &ev.after) {
        (Op::Update, Some(before), Some(after)) => write_diff(buf, before, after, colour),
        (_, _, Some(after)) => write_fields(buf, after),
        (_, Some(before), None) => {
            paint(buf, colour, DIM, "was ");
            write_fields(buf, before);
        }
        _ => {}
    }
    buf.push(b'\n');
}

fn write_fields(buf: &mut Vec<u8>, row: &Row) {
    for (i, (name, value)) in row.iter().enumerate() {
        if i > 0 {
            buf.push(b' ');
        }
        buf.extend_from_slice(name.as_bytes());
        buf.push(b'=');
        write_value(buf, value);
    }
}

fn write_diff(buf: &mut Vec<u8>, before: &Row, after: &Row, colour: bool) {
    let mut any = false;
    for (name, new) in after.iter() {
        let old = before.get(name);
        if old == Some(new) {
            continue;
        }
        if any {
            buf.extend_from_slice(b"  ");
        }
        any = true;
        buf.extend_from_slice(name.as_bytes());
        buf.extend_from_slice(b": ");
        let mut old_text = Vec::new();
        match old {
            Some(v) => write_value(&mut old_text, v),
            None => old_text.extend_from_slice(b"(none)"),
        }
        paint(buf, colour, DIM, &String::from_utf8_lossy(&old_text));
        buf.extend_from_slice(" → ".as_bytes());
        write_value(buf, new);
    }
    if !any {
        paint(buf, colour, DIM, "(no column changed)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stream_core::{Namespace, Position, SourceKind, Value};

    #[test]
    fn updates_show_only_changed_columns_without_colour_codes_when_off() {
        let row = |status: &str| -> Row {
            [("id", Value::Int(7)), ("status", Value::from(status))]
                .into_iter()
                .collect()
        };
        let ev = ChangeEvent {
            source: SourceKind::MySql,
            namespace: Namespace::new("shop", "orders"),
            op: Op::Update,
            key: Some([("id", Value::Int(7))].into_iter().collect()),
            before: Some(row("new")),
            after: Some(row("paid")),
            update: None,
            position: Position::binlog("b.000001", 4, 1),
            ts_ms: 45_296_789,
            txn: None,
        };
        let mut buf = Vec::new();
        write_line(&mut buf, &ev, false);
        assert_eq!(
            String::from_utf8(buf).expect("utf8"),
            "12:34:56.789 UPDATE  shop.orders {\"id\":7}  status: \"new\" → \"paid\"\n"
        );
    }
}
