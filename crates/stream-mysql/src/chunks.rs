//! Reading row images from where they are: one contiguous event ([`Reader`], the common case)
//! or the wire packets of a multi-packet event ([`ChunkCursor`]), which frees each packet
//! once it has read past it and copies a large cell straight into the buffer that becomes
//! its value, so a 128 MB event never exists twice.

use std::collections::VecDeque;

use stream_core::Value;

use crate::binary::{Malformed, Reader};
use crate::cells::decode_value;
use crate::decoder::Kind;

/// Bytes a cell other than a length-prefixed one may take at most (a DECIMAL(65) takes 30;
/// the 1-byte-prefixed MariaDB UUID/INET types up to 256), made contiguous before decoding.
const SMALL_CELL: usize = 512;

/// A null or columns bitmap: borrowed from a contiguous event, copied out of packets.
pub(crate) enum Bits<'a> {
    Borrowed(&'a [u8]),
    Owned(Vec<u8>),
}

impl std::ops::Deref for Bits<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Bits::Borrowed(b) => b,
            Bits::Owned(b) => b,
        }
    }
}

/// Where row images are read from.
pub(crate) trait RowInput<'a> {
    /// Whether every byte has been read.
    fn is_empty(&self) -> bool;
    /// The next `n` bytes, a bitmap.
    fn bits(&mut self, n: usize, what: &str) -> Result<Bits<'a>, Malformed>;
    /// The next cell, of `kind`.
    fn value(&mut self, kind: &Kind) -> Result<Value, String>;
}

impl<'a> RowInput<'a> for Reader<'a> {
    #[inline]
    fn is_empty(&self) -> bool {
        Reader::is_empty(self)
    }

    #[inline]
    fn bits(&mut self, n: usize, what: &str) -> Result<Bits<'a>, Malformed> {
        self.take(n, what).map(Bits::Borrowed)
    }

    #[inline]
    fn value(&mut self, kind: &Kind) -> Result<Value, String> {
        decode_value(self, kind)
    }
}

/// A cursor over the pieces of an event's data.
pub(crate) struct ChunkCursor {
    chunks: VecDeque<Vec<u8>>,
    /// Where reading stands in the front piece.
    pos: usize,
    /// Where reading starts in the second piece once it is the front (after a bridge).
    next_start: usize,
}

impl ChunkCursor {
    /// A cursor at `pos` of the first piece.
    pub(crate) fn new(chunks: VecDeque<Vec<u8>>, pos: usize) -> Self {
        let mut cursor = Self {
            chunks,
            pos,
            next_start: 0,
        };
        cursor.settle();
        cursor
    }

    /// Drops pieces read to their end (the last one stays, possibly empty).
    fn settle(&mut self) {
        while self.chunks.len() > 1 && self.pos >= self.chunks[0].len() {
            self.chunks.pop_front();
            self.pos = std::mem::take(&mut self.next_start);
        }
    }

    fn front(&self) -> &[u8] {
        self.chunks
            .front()
            .map_or(&[], |c| &c[self.pos.min(c.len())..])
    }

    fn advance(&mut self, n: usize) {
        self.pos += n;
        self.settle();
    }

    /// Bytes left in the pieces after the front one.
    fn after_front(&self) -> usize {
        let rest: usize = self.chunks.iter().skip(1).map(Vec::len).sum();
        rest - self.next_start
    }

    /// Makes the next `want` bytes (or all that are left) one slice at the front: what is
    /// left of the front piece and the start of the next become a small piece of their own.
    fn contiguous(&mut self, want: usize) {
        while self.front().len() < want && self.chunks.len() > 1 {
            let mut bridge = self.front().to_vec();
            let next = &self.chunks[1][self.next_start..];
            let k = (want - bridge.len()).min(next.len());
            bridge.extend_from_slice(&next[..k]);
            let start = self.next_start + k;
            self.chunks.pop_front();
            if start >= self.chunks[0].len() {
                self.chunks.pop_front();
                self.next_start = 0;
            } else {
                self.next_start = start;
            }
            self.chunks.push_front(bridge);
            self.pos = 0;
        }
    }

    /// The next `n` bytes in a buffer of exactly that size, freeing pieces as it goes.
    fn gather_into(&mut self, out: &mut Vec<u8>, n: usize, what: &str) -> Result<(), Malformed> {
        let have = self.front().len() + self.after_front();
        if have < n {
            return Err(Malformed(format!(
                "event ends {have} bytes into {what}, which needs {n}"
            )));
        }
        let mut left = n;
        while left > 0 {
            let front = self.front();
            let k = left.min(front.len());
            out.extend_from_slice(&front[..k]);
            left -= k;
            self.advance(k);
        }
        Ok(())
    }

    fn gather(&mut self, n: usize, what: &str) -> Result<Vec<u8>, Malformed> {
        let mut out = Vec::with_capacity(n);
        self.gather_into(&mut out, n, what)?;
        Ok(out)
    }

    /// A little-endian length prefix of `len_bytes`.
    fn prefix(&mut self, len_bytes: u8) -> Result<usize, String> {
        let n = usize::from(len_bytes);
        self.contiguous(n);
        let v = Reader::new(self.front())
            .uint_le(n, "a length prefix")
            .map_err(|e| e.0)?;
        self.advance(n);
        usize::try_from(v).map_err(|_| "length does not fit in memory".to_owned())
    }
}

impl RowInput<'static> for ChunkCursor {
    fn is_empty(&self) -> bool {
        self.front().is_empty() && self.after_front() == 0
    }

    fn bits(&mut self, n: usize, what: &str) -> Result<Bits<'static>, Malformed> {
        self.gather(n, what).map(Bits::Owned)
    }

    fn value(&mut self, kind: &Kind) -> Result<Value, String> {
        let len_bytes = match kind {
            Kind::Text { len_bytes, .. }
            | Kind::Bytes { len_bytes }
            | Kind::FixedBytes { len_bytes, .. }
            | Kind::JsonText { len_bytes, .. }
            | Kind::JsonBinary { len_bytes }
            | Kind::Geometry { len_bytes } => *len_bytes,
            _ => {
                self.contiguous(SMALL_CELL);
                let front = self.front();
                let mut r = Reader::new(front);
                let value = decode_value(&mut r, kind)?;
                let used = front.len() - r.remaining();
                self.advance(used);
                return Ok(value);
            }
        };
        let n = self.prefix(len_bytes)?;
        match kind {
            // The common large cells: the gathered buffer is the value.
            Kind::Bytes { .. } => Ok(Value::Bytes(
                self.gather(n, "a binary value").map_err(|e| e.0)?,
            )),
            Kind::Text { charset, .. } => {
                let bytes = self.gather(n, "a text value").map_err(|e| e.0)?;
                charset.decode_owned(bytes).map(Value::String)
            }
            // Others are decoded from a copy with its prefix, as from a contiguous event.
            _ => {
                let mut cell = Vec::with_capacity(usize::from(len_bytes) + n);
                cell.extend_from_slice(&(n as u64).to_le_bytes()[..usize::from(len_bytes)]);
                self.gather_into(&mut cell, n, "a value").map_err(|e| e.0)?;
                decode_value(&mut Reader::new(&cell), kind)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::charset::Charset;

    /// Every kind of cell, encoded, with the value it decodes to from contiguous bytes.
    fn cells() -> Vec<(Kind, Vec<u8>)> {
        let text = "ünïcode text ".repeat(40);
        let mut long_text = (text.len() as u32).to_le_bytes().to_vec();
        long_text.extend_from_slice(text.as_bytes());
        let mut blob = vec![0xfa, 0x02];
        blob.extend((0..0x2fa).map(|i| (i % 251) as u8));
        let json = br#"{"k": [1, 2, "three"]}"#;
        let mut json_text = vec![json.len() as u8];
        json_text.extend_from_slice(json);
        // SRID 0, then the WKB of POINT(0 0).
        let mut geometry = vec![25, 0, 0, 0, 0, 0, 0, 0];
        geometry.extend_from_slice(&[1, 1, 0, 0, 0]);
        geometry.extend_from_slice(&[0; 16]);
        let labels: Arc<[String]> = vec!["a".to_owned(), "b".to_owned()].into();
        vec![
            (
                Kind::Int {
                    len: 8,
                    unsigned: false,
                },
                (-5i64).to_le_bytes().to_vec(),
            ),
            (Kind::Double, 1.5f64.to_le_bytes().to_vec()),
            (
                Kind::Decimal {
                    precision: 30,
                    scale: 10,
                },
                vec![0x80, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0],
            ),
            (
                Kind::Text {
                    len_bytes: 4,
                    charset: Charset::Utf8,
                },
                long_text,
            ),
            (Kind::Bytes { len_bytes: 2 }, blob),
            (
                Kind::FixedBytes {
                    len_bytes: 1,
                    size: 8,
                },
                vec![3, 1, 2, 3],
            ),
            (
                Kind::JsonText {
                    len_bytes: 1,
                    charset: Charset::Utf8,
                },
                json_text,
            ),
            (Kind::Geometry { len_bytes: 4 }, geometry),
            (
                Kind::Enum {
                    pack: 1,
                    labels: labels.clone(),
                },
                vec![2],
            ),
            (Kind::Set { pack: 1, labels }, vec![3]),
            (Kind::Uuid, {
                let mut u = vec![16];
                u.extend(0..16u8);
                u
            }),
            (Kind::Bit { bytes: 3 }, vec![1, 2, 3]),
            (
                Kind::DateTime2 { fsp: 6 },
                vec![0x99, 0xb2, 0x7a, 0xc8, 0xfb, 1, 2, 3],
            ),
        ]
    }

    #[test]
    fn every_cell_kind_decodes_the_same_when_split_across_packets_anywhere() {
        let cells = cells();
        let mut image = Vec::new();
        let mut expected = Vec::new();
        for (kind, bytes) in &cells {
            image.extend_from_slice(bytes);
            expected.push(decode_value(&mut Reader::new(bytes), kind).expect("contiguous"));
        }
        for size in [1, 2, 3, 5, 7, 64, 100, 513, 1000] {
            for lead in [0, 1, 3] {
                let mut chunks: VecDeque<Vec<u8>> = VecDeque::new();
                let mut first = vec![0xee; lead];
                first.extend_from_slice(&image[..size.min(image.len())]);
                chunks.push_back(first);
                for piece in image[size.min(image.len())..].chunks(size) {
                    chunks.push_back(piece.to_vec());
                }
                let mut cursor = ChunkCursor::new(chunks, lead);
                for ((kind, _), want) in cells.iter().zip(&expected) {
                    let got = cursor.value(kind).expect("split");
                    assert_eq!(&got, want, "{kind:?} in pieces of {size}");
                }
                assert!(RowInput::is_empty(&cursor), "pieces of {size}");
                assert!(cursor.chunks.len() <= 1, "read pieces are freed");
            }
        }
    }

    #[test]
    fn a_cell_longer_than_what_is_left_names_what_was_read() {
        let chunks = VecDeque::from(vec![vec![10, 0, 0, 0, b'a'], vec![b'b']]);
        let err = ChunkCursor::new(chunks, 0)
            .value(&Kind::Bytes { len_bytes: 4 })
            .expect_err("short");
        assert!(
            err.contains("event ends 2 bytes into a binary value"),
            "{err}"
        );
    }
}
