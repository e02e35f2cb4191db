//! Events as JSON lines to an async writer without holding a large event's whole line: a
//! string, binary or JSON text value of [`LARGE`] bytes or more is not copied while the event
//! is encoded, but escaped (or base64-encoded) from the event in slices and written as the
//! buffer fills. A 64 MB cell then costs about a megabyte of buffer, not another 64 MB (or
//! 128 MB, with the doublings of a growing buffer).

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::event::ChangeEvent;
use crate::json::{escape_bytes, event_to, write_base64, write_str};

/// Values this long are written from the event in slices instead of copied whole.
const LARGE: usize = 8 * 1024;

/// The buffer is written out once it holds this much.
const FLUSH_AT: usize = 1024 * 1024;

/// Bytes of a large value handled at a time.
const SLICE: usize = 48 * 1024;

/// Where the encoder puts its output: small parts go into a byte buffer; strings, binary and
/// JSON text go through methods, so an output may leave large ones in place instead of
/// copying them ([`write_lines`], which writes them to the destination in slices).
pub(crate) trait JsonOut<'a> {
    /// The buffer everything else is appended to.
    fn buf(&mut self) -> &mut Vec<u8>;

    /// A string value, quoted and escaped.
    fn string(&mut self, s: &'a str) {
        write_str(self.buf(), s);
    }

    /// Binary, as quoted base64.
    fn base64(&mut self, bytes: &'a [u8]) {
        write_base64(self.buf(), bytes);
    }

    /// Text that is JSON already, as it is.
    fn verbatim(&mut self, json: &'a str) {
        self.buf().extend_from_slice(json.as_bytes());
    }
}

impl JsonOut<'_> for Vec<u8> {
    #[inline]
    fn buf(&mut self) -> &mut Vec<u8> {
        self
    }
}

/// A large value left in the event.
enum Large<'a> {
    Text(&'a str),
    Binary(&'a [u8]),
    Json(&'a str),
}

/// An encoder output that leaves large values in place, noting where they go in the buffer.
struct Pieces<'a, 'b> {
    buf: &'b mut Vec<u8>,
    large: Vec<(usize, Large<'a>)>,
}

impl<'a> JsonOut<'a> for Pieces<'a, '_> {
    fn buf(&mut self) -> &mut Vec<u8> {
        self.buf
    }

    fn string(&mut self, s: &'a str) {
        if s.len() < LARGE {
            write_str(self.buf, s);
        } else {
            self.large.push((self.buf.len(), Large::Text(s)));
        }
    }

    fn base64(&mut self, bytes: &'a [u8]) {
        if bytes.len() < LARGE {
            write_base64(self.buf, bytes);
        } else {
            self.large.push((self.buf.len(), Large::Binary(bytes)));
        }
    }

    fn verbatim(&mut self, json: &'a str) {
        if json.len() < LARGE {
            self.buf.extend_from_slice(json.as_bytes());
        } else {
            self.large.push((self.buf.len(), Large::Json(json)));
        }
    }
}

/// Writes `buf` out once it holds [`FLUSH_AT`] bytes.
async fn spill<W: AsyncWrite + Unpin>(out: &mut W, buf: &mut Vec<u8>) -> std::io::Result<()> {
    if buf.len() >= FLUSH_AT {
        out.write_all(buf).await?;
        buf.clear();
    }
    Ok(())
}

/// Appends a large value to `buf` in slices, spilling to `out` as it fills.
async fn write_large<W: AsyncWrite + Unpin>(
    out: &mut W,
    buf: &mut Vec<u8>,
    value: Large<'_>,
) -> std::io::Result<()> {
    match value {
        Large::Text(s) => {
            buf.push(b'"');
            for slice in s.as_bytes().chunks(SLICE) {
                escape_bytes(buf, slice);
                spill(out, buf).await?;
            }
            buf.push(b'"');
        }
        Large::Binary(bytes) => {
            buf.push(b'"');
            // Whole 3-byte groups per slice: only the last one is padded.
            for slice in bytes.chunks(SLICE) {
                let start = buf.len();
                buf.resize(start + slice.len().div_ceil(3) * 4, 0);
                let written = STANDARD.encode_slice(slice, &mut buf[start..]).unwrap_or(0);
                buf.truncate(start + written);
                spill(out, buf).await?;
            }
            buf.push(b'"');
        }
        Large::Json(text) => {
            for slice in text.as_bytes().chunks(SLICE) {
                buf.extend_from_slice(slice);
                spill(out, buf).await?;
            }
        }
    }
    Ok(())
}

/// Writes `events` as JSON lines to `out`, using `buf` (left empty) as the write buffer.
pub(crate) async fn write_lines<W: AsyncWrite + Unpin>(
    out: &mut W,
    buf: &mut Vec<u8>,
    events: &[Arc<ChangeEvent>],
) -> std::io::Result<()> {
    buf.clear();
    for event in events {
        let mut pieces = Pieces {
            buf: &mut *buf,
            large: Vec::new(),
        };
        event_to(&mut pieces, event);
        let large = pieces.large;
        buf.push(b'\n');
        if let Some(&(first, _)) = large.first() {
            // The small parts after the first large value, put back around the large ones.
            let rest = buf.split_off(first);
            let mut from = first;
            for (at, value) in large {
                buf.extend_from_slice(&rest[from - first..at - first]);
                from = at;
                write_large(out, buf, value).await?;
            }
            buf.extend_from_slice(&rest[from - first..]);
        }
        spill(out, buf).await?;
    }
    if !buf.is_empty() {
        out.write_all(buf).await?;
        buf.clear();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Namespace, Op, SourceKind};
    use crate::position::Position;
    use crate::value::{Json, Row, Value};

    fn event(after: Row) -> Arc<ChangeEvent> {
        Arc::new(ChangeEvent {
            source: SourceKind::MySql,
            namespace: Namespace::new("shop", "docs"),
            op: Op::Insert,
            key: None,
            before: None,
            after: Some(after),
            update: None,
            position: Position::binlog("b.000001", 4, 1),
            ts_ms: 0,
            txn: None,
        })
    }

    #[tokio::test]
    async fn large_values_print_exactly_what_the_buffer_encoder_prints() {
        // Escapes and multi-byte characters on both sides of every slice boundary.
        let text: String = "a\"é\n€\\x\u{1}".repeat(SLICE / 3);
        let binary: Vec<u8> = (0..=255u8).cycle().take(SLICE * 2 + 1).collect();
        let json = format!("[{}0]", "1,".repeat(LARGE));
        let row: Row = [
            ("small", Value::String("s".into())),
            ("text", Value::String(text)),
            ("bin", Value::Bytes(binary)),
            ("id", Value::Int(7)),
            ("doc", Value::Json(Json::parse(&json).expect("json"))),
        ]
        .into_iter()
        .collect();
        let events = [event(row), event(Row::new())];
        let mut expected = Vec::new();
        for e in &events {
            e.write_json(&mut expected);
            expected.push(b'\n');
        }
        let mut out = Vec::new();
        let mut buf = Vec::new();
        write_lines(&mut out, &mut buf, &events)
            .await
            .expect("write");
        assert!(
            out == expected,
            "the streamed lines differ from the buffered ones"
        );
        assert!(buf.is_empty());
    }

    #[tokio::test]
    async fn a_large_value_is_never_copied_whole_into_the_buffer() {
        let text = "x".repeat(16 * FLUSH_AT);
        let events = [event([("doc", Value::String(text))].into_iter().collect())];
        let mut out = Vec::new();
        let mut buf = Vec::new();
        write_lines(&mut out, &mut buf, &events)
            .await
            .expect("write");
        let mut expected = Vec::new();
        events[0].write_json(&mut expected);
        expected.push(b'\n');
        assert!(
            out == expected,
            "the streamed line differs from the buffered one"
        );
        assert!(
            buf.capacity() < 2 * FLUSH_AT,
            "the buffer grew to {} bytes",
            buf.capacity()
        );
    }
}
