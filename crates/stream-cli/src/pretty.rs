//! The human view of `ustream tail --format pretty`: one coloured line per change.
//!
//! Names and values come from the database: every piece is escaped (see [`crate::escape`])
//! before it reaches the terminal, and only our own colour codes are written raw.

use std::sync::Arc;

use stream_core::json::{write_row, write_value};
use stream_core::{ChangeEvent, ErrorClass, Op, Row, Sink, SinkError};
use tokio::io::{AsyncWrite, AsyncWriteExt as _};

use crate::escape::{escaped, push_json_escaped};

const RESET: &str = "\x1b[0m";
const DIM: &str = "\x1b[2m";
const BOLD: &str = "\x1b[1m";

/// A [`Sink`] printing [`write_line`]'s lines to a writer (stdout).
#[derive(Debug)]
pub(crate) struct PrettySink<W> {
    name: String,
    out: W,
    colour: bool,
    buf: Vec<u8>,
}

impl<W> PrettySink<W> {
    pub(crate) fn new(name: impl Into<String>, out: W, colour: bool) -> Self {
        Self {
            name: name.into(),
            out,
            colour,
            buf: Vec::with_capacity(64 * 1024),
        }
    }

    fn io_error(&self, e: &std::io::Error) -> SinkError {
        SinkError::Write {
            sink: self.name.clone(),
            reason: e.to_string(),
            class: ErrorClass::Transient,
        }
    }
}

#[async_trait::async_trait]
impl<W: AsyncWrite + Unpin + Send> Sink for PrettySink<W> {
    fn name(&self) -> &str {
        &self.name
    }

    async fn write(&mut self, events: &[Arc<ChangeEvent>]) -> Result<(), SinkError> {
        self.buf.clear();
        for ev in events {
            write_line(&mut self.buf, ev, self.colour);
        }
        let written = match self.out.write_all(&self.buf).await {
            Ok(()) => self.out.flush().await,
            Err(e) => Err(e),
        };
        written.map_err(|e| self.io_error(&e))
    }

    async fn shutdown(&mut self) -> Result<(), SinkError> {
        let flushed = self.out.flush().await;
        flushed.map_err(|e| self.io_error(&e))
    }
}

/// Appends `text` (ours, or escaped data) in `code`'s colour when colour is on.
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
    paint(buf, colour, BOLD, &escaped(&ev.namespace.to_string()));
    buf.push(b' ');
    if let Some(key) = &ev.key {
        let mut json = Vec::new();
        write_row(&mut json, key);
        push_json_escaped(buf, &json);
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

/// A value as escaped JSON text.
fn value_text(value: &stream_core::Value) -> String {
    let mut json = Vec::new();
    write_value(&mut json, value);
    let mut out = Vec::with_capacity(json.len());
    push_json_escaped(&mut out, &json);
    String::from_utf8_lossy(&out).into_owned()
}

fn write_fields(buf: &mut Vec<u8>, row: &Row) {
    for (i, (name, value)) in row.iter().enumerate() {
        if i > 0 {
            buf.push(b' ');
        }
        buf.extend_from_slice(escaped(name).as_bytes());
        buf.push(b'=');
        buf.extend_from_slice(value_text(value).as_bytes());
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
        buf.extend_from_slice(escaped(name).as_bytes());
        buf.extend_from_slice(b": ");
        let old_text = old.map_or_else(|| "(none)".to_owned(), value_text);
        paint(buf, colour, DIM, &old_text);
        buf.extend_from_slice(" → ".as_bytes());
        buf.extend_from_slice(value_text(new).as_bytes());
    }
    if !any {
        paint(buf, colour, DIM, "(no column changed)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stream_core::{Namespace, Position, SourceKind, Value};

    fn update(table: &str, column: &str, old: &str, new: &str) -> ChangeEvent {
        let row = |status: &str| -> Row {
            [("id", Value::Int(7)), (column, Value::from(status))]
                .into_iter()
                .collect()
        };
        ChangeEvent {
            source: SourceKind::MySql,
            namespace: Namespace::new("shop", table),
            op: Op::Update,
            key: Some([("id", Value::Int(7))].into_iter().collect()),
            before: Some(row(old)),
            after: Some(row(new)),
            update: None,
            position: Position::binlog("b.000001", 4, 1),
            ts_ms: 45_296_789,
            txn: None,
        }
    }

    fn line(ev: &ChangeEvent, colour: bool) -> String {
        let mut buf = Vec::new();
        write_line(&mut buf, ev, colour);
        String::from_utf8(buf).expect("utf8")
    }

    #[test]
    fn updates_show_only_changed_columns_without_colour_codes_when_off() {
        assert_eq!(
            line(&update("orders", "status", "new", "paid"), false),
            "12:34:56.789 UPDATE  shop.orders {\"id\":7}  status: \"new\" → \"paid\"\n"
        );
    }

    #[test]
    fn names_and_values_cannot_reach_the_terminal_as_control_sequences() {
        let ev = update(
            "o\x1b[2J",
            "st\x1b]0;pwned\x07",
            "\u{9b}2J",
            "x\u{202e}gpj.exe",
        );
        for colour in [false, true] {
            let shown = line(&ev, colour);
            let ours = shown
                .replace(RESET, "")
                .replace(DIM, "")
                .replace(BOLD, "")
                .replace("\x1b[33m", "");
            assert!(
                !ours.chars().any(|c| c.is_control() && c != '\n'),
                "{shown:?}"
            );
            assert!(!ours.contains('\u{202e}'), "{shown:?}");
            assert!(ours.contains("shop.o\\u{1b}[2J"), "{shown:?}");
            assert!(ours.contains("st\\u{1b}]0;pwned\\u{7}: "), "{shown:?}");
            assert!(
                ours.contains("\"\\u009b2J\" → \"x\\u202egpj.exe\""),
                "{shown:?}"
            );
        }
    }
}
