//! Decoding one cell of a row image by its column's [`Kind`]: integers, decimals, temporal
//! types, text in its charset, binary, JSON, ENUM/SET, geometry and MariaDB's UUID/INET types.

use std::net::{Ipv4Addr, Ipv6Addr};

use stream_core::{Date, DateTime, Decimal, Json, Time, Timestamp, Value};

use crate::binary::{Malformed, Reader};
use crate::decimal::decode_decimal;
use crate::decoder::Kind;

fn malformed(e: Malformed) -> String {
    e.0
}

fn sign_extend(v: u64, bytes: u8) -> i64 {
    let shift = 64 - u32::from(bytes) * 8;
    ((v << shift) as i64) >> shift
}

/// Fraction of a temporal2 value: `(fsp+1)/2` big-endian bytes, scaled to microseconds.
fn frac_micros(r: &mut Reader<'_>, fsp: u8) -> Result<u32, String> {
    Ok(match fsp {
        0 => 0,
        1 | 2 => r.uint_be(1, "fractional seconds").map_err(malformed)? as u32 * 10_000,
        3 | 4 => r.uint_be(2, "fractional seconds").map_err(malformed)? as u32 * 100,
        5 | 6 => r.uint_be(3, "fractional seconds").map_err(malformed)? as u32,
        other => return Err(format!("fractional precision {other} is out of range")),
    })
}

fn temporal_err(e: stream_core::ValueError) -> String {
    e.to_string()
}

fn read_len(r: &mut Reader<'_>, len_bytes: u8) -> Result<usize, String> {
    let n = r
        .uint_le(usize::from(len_bytes), "a length prefix")
        .map_err(malformed)?;
    usize::try_from(n).map_err(|_| "length does not fit in memory".to_owned())
}

pub(crate) fn decode_value(r: &mut Reader<'_>, kind: &Kind) -> Result<Value, String> {
    Ok(match kind {
        Kind::Int { len, unsigned } => {
            let raw = r
                .uint_le(usize::from(*len), "an integer")
                .map_err(malformed)?;
            if *unsigned {
                Value::UInt(raw)
            } else {
                Value::Int(sign_extend(raw, *len))
            }
        }
        Kind::Year => {
            let y = r.u8("a YEAR").map_err(malformed)?;
            Value::Int(if y == 0 { 0 } else { 1900 + i64::from(y) })
        }
        Kind::Float => {
            let b = r.take(4, "a FLOAT").map_err(malformed)?;
            Value::Float(f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        }
        Kind::Double => {
            let b = r.take(8, "a DOUBLE").map_err(malformed)?;
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            Value::Double(f64::from_le_bytes(a))
        }
        Kind::Decimal { precision, scale } => Value::Decimal(Decimal::from_plain_unchecked(
            decode_decimal(r, *precision, *scale).map_err(malformed)?,
        )),
        Kind::Date => {
            let v = r.uint_le(3, "a DATE").map_err(malformed)?;
            Value::Date(date_of(v)?)
        }
        Kind::Time2 { fsp } => {
            let intpart = r.uint_be(3, "a TIME").map_err(malformed)? as i64 - 0x80_0000;
            let packed: i64 = match fsp {
                0 => intpart << 24,
                1 | 2 => {
                    let mut frac = r.uint_be(1, "a TIME fraction").map_err(malformed)? as i64;
                    let mut ip = intpart;
                    if ip < 0 && frac != 0 {
                        ip += 1;
                        frac -= 0x100;
                    }
                    (ip << 24) + frac * 10_000
                }
                3 | 4 => {
                    let mut frac = r.uint_be(2, "a TIME fraction").map_err(malformed)? as i64;
                    let mut ip = intpart;
                    if ip < 0 && frac != 0 {
                        ip += 1;
                        frac -= 0x10000;
                    }
                    (ip << 24) + frac * 100
                }
                _ => {
                    let frac = r.uint_be(3, "a TIME fraction").map_err(malformed)? as i64;
                    // 6-byte big-endian value minus TIMEF_OFS, here split in 3 + 3 bytes.
                    (((intpart + 0x80_0000) << 24) | frac) - 0x8000_0000_0000
                }
            };
            let negative = packed < 0;
            let abs = packed.unsigned_abs();
            let hms = abs >> 24;
            let micros = (abs & 0xff_ffff) as u32;
            Value::Time(
                Time::new(
                    negative,
                    ((hms >> 12) & 0x3ff) as u32,
                    ((hms >> 6) & 0x3f) as u8,
                    (hms & 0x3f) as u8,
                    micros,
                    *fsp,
                )
                .map_err(temporal_err)?,
            )
        }
        Kind::TimeOld => {
            let v = sign_extend(r.uint_le(3, "a TIME").map_err(malformed)?, 3);
            let a = v.unsigned_abs();
            Value::Time(
                Time::new(
                    v < 0,
                    (a / 10_000) as u32,
                    (a / 100 % 100) as u8,
                    (a % 100) as u8,
                    0,
                    0,
                )
                .map_err(temporal_err)?,
            )
        }
        Kind::DateTime2 { fsp } => {
            let packed = r.uint_be(5, "a DATETIME").map_err(malformed)? as i64 - 0x80_0000_0000;
            let micros = frac_micros(r, *fsp)?;
            let packed = packed.unsigned_abs();
            let ymd = packed >> 17;
            let hms = packed % (1 << 17);
            let ym = ymd >> 5;
            let date = Date::new((ym / 13) as u16, (ym % 13) as u8, (ymd % 32) as u8)
                .map_err(temporal_err)?;
            Value::DateTime(
                DateTime::new(
                    date,
                    (hms >> 12) as u8,
                    ((hms >> 6) % 64) as u8,
                    (hms % 64) as u8,
                    micros,
                    *fsp,
                )
                .map_err(temporal_err)?,
            )
        }
        Kind::DateTimeOld => {
            let v = r.uint_le(8, "a DATETIME").map_err(malformed)?;
            let (d, t) = (v / 1_000_000, v % 1_000_000);
            let date = Date::new((d / 10_000) as u16, (d / 100 % 100) as u8, (d % 100) as u8)
                .map_err(temporal_err)?;
            Value::DateTime(
                DateTime::new(
                    date,
                    (t / 10_000) as u8,
                    (t / 100 % 100) as u8,
                    (t % 100) as u8,
                    0,
                    0,
                )
                .map_err(temporal_err)?,
            )
        }
        Kind::Timestamp2 { fsp } => {
            let secs = r.uint_be(4, "a TIMESTAMP").map_err(malformed)? as i64;
            let micros = frac_micros(r, *fsp)?;
            Value::Timestamp(Timestamp::new(secs, micros, *fsp).map_err(temporal_err)?)
        }
        Kind::TimestampOld => {
            let secs = r.uint_le(4, "a TIMESTAMP").map_err(malformed)? as i64;
            Value::Timestamp(Timestamp::new(secs, 0, 0).map_err(temporal_err)?)
        }
        Kind::Bit { bytes } => {
            Value::UInt(r.uint_be(usize::from(*bytes), "a BIT").map_err(malformed)?)
        }
        Kind::Text { len_bytes, charset } => {
            let n = read_len(r, *len_bytes)?;
            let b = r.take(n, "a text value").map_err(malformed)?;
            Value::String(charset.decode(b)?)
        }
        Kind::Bytes { len_bytes } => {
            let n = read_len(r, *len_bytes)?;
            Value::Bytes(r.take(n, "a binary value").map_err(malformed)?.to_vec())
        }
        Kind::FixedBytes { len_bytes, size } => {
            let n = read_len(r, *len_bytes)?;
            let stored = r.take(n, "a BINARY value").map_err(malformed)?;
            let size = usize::from(*size);
            if stored.len() > size {
                return Err(format!("{} bytes in a BINARY({size})", stored.len()));
            }
            let mut padded = Vec::with_capacity(size);
            padded.extend_from_slice(stored);
            padded.resize(size, 0);
            Value::Bytes(padded)
        }
        Kind::JsonText { len_bytes, charset } => {
            let n = read_len(r, *len_bytes)?;
            let b = r.take(n, "a JSON value").map_err(malformed)?;
            Value::Json(Json::parse(&charset.decode_borrowed(b)?).map_err(|e| e.to_string())?)
        }
        Kind::JsonBinary { len_bytes } => {
            let n = read_len(r, *len_bytes)?;
            let b = r.take(n, "a JSON value").map_err(malformed)?;
            Value::Json(crate::jsonb::decode(b)?)
        }
        Kind::Enum { pack, labels } => {
            let idx = r
                .uint_le(usize::from(*pack), "an ENUM")
                .map_err(malformed)? as usize;
            match idx {
                0 => Value::Enum(String::new()),
                i => Value::Enum(labels.get(i - 1).cloned().ok_or_else(|| {
                    format!("ENUM index {i} is past its {} labels", labels.len())
                })?),
            }
        }
        Kind::Set { pack, labels } => {
            let bits = r.uint_le(usize::from(*pack), "a SET").map_err(malformed)?;
            let mut chosen = Vec::new();
            for (i, label) in labels.iter().enumerate().take(64) {
                if bits & (1u64 << i) != 0 {
                    chosen.push(label.clone());
                }
            }
            if labels.len() < 64 && bits >> labels.len() != 0 {
                return Err(format!(
                    "SET bits {bits:#x} name members past its {} labels",
                    labels.len()
                ));
            }
            Value::Set(chosen)
        }
        Kind::Geometry { len_bytes } => {
            let n = read_len(r, *len_bytes)?;
            let b = r.take(n, "a GEOMETRY").map_err(malformed)?;
            // Stored as a 4-byte SRID followed by the WKB.
            Value::Bytes(b.get(4..).unwrap_or_default().to_vec())
        }
        Kind::Uuid => {
            let b = fixed_binary(r, 16)?;
            Value::String(mariadb_uuid_text(&b))
        }
        Kind::Inet6 => {
            let b = fixed_binary(r, 16)?;
            let mut a = [0u8; 16];
            a.copy_from_slice(&b);
            Value::String(Ipv6Addr::from(a).to_string())
        }
        Kind::Inet4 => {
            let b = fixed_binary(r, 4)?;
            Value::String(Ipv4Addr::new(b[0], b[1], b[2], b[3]).to_string())
        }
        Kind::Null => Value::Null,
    })
}

fn date_of(v: u64) -> Result<Date, String> {
    Date::new((v >> 9) as u16, ((v >> 5) & 15) as u8, (v & 31) as u8).map_err(temporal_err)
}

/// A fixed-size binary value (length-prefixed, trailing zero bytes possibly trimmed).
fn fixed_binary(r: &mut Reader<'_>, size: usize) -> Result<Vec<u8>, String> {
    let n = read_len(r, 1)?;
    let mut b = r
        .take(n, "a fixed-size binary value")
        .map_err(malformed)?
        .to_vec();
    if b.len() > size {
        return Err(format!("{} bytes where {size} were expected", b.len()));
    }
    b.resize(size, 0);
    Ok(b)
}

/// MariaDB's UUID as canonical text (the row image holds the 16 bytes in display order).
fn mariadb_uuid_text(stored: &[u8]) -> String {
    stream_core::hex::uuid(stored)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn one(kind: Kind, bytes: &[u8]) -> Value {
        decode_value(&mut Reader::new(bytes), &kind).expect("decode")
    }

    #[test]
    fn integers_are_sign_extended_or_unsigned_per_column() {
        assert_eq!(
            one(
                Kind::Int {
                    len: 3,
                    unsigned: false
                },
                &[0, 0, 0x80]
            ),
            Value::Int(-8_388_608)
        );
        assert_eq!(
            one(
                Kind::Int {
                    len: 3,
                    unsigned: true
                },
                &[0xff, 0xff, 0xff]
            ),
            Value::UInt(16_777_215)
        );
        assert_eq!(
            one(
                Kind::Int {
                    len: 8,
                    unsigned: true
                },
                &[0xff; 8]
            ),
            Value::UInt(u64::MAX)
        );
        assert_eq!(
            one(
                Kind::Int {
                    len: 1,
                    unsigned: false
                },
                &[0x80]
            ),
            Value::Int(-128)
        );
        assert_eq!(one(Kind::Year, &[124]), Value::Int(2024));
        assert_eq!(one(Kind::Year, &[0]), Value::Int(0));
    }

    #[test]
    fn temporal2_formats_decode() {
        // DATETIME(0) 2024-02-29 12:34:56: ym = 2024*13+2, ymd = ym<<5 | 29, hms = 12<<12|34<<6|56.
        let ym: u64 = 2024 * 13 + 2;
        let packed = (((ym << 5) | 29) << 17) | (12 << 12) | (34 << 6) | 56;
        let v = packed + 0x80_0000_0000;
        let bytes = &v.to_be_bytes()[3..];
        let Value::DateTime(dt) = one(Kind::DateTime2 { fsp: 0 }, bytes) else {
            panic!()
        };
        assert_eq!(
            (
                dt.date.year,
                dt.date.month,
                dt.date.day,
                dt.hour,
                dt.minute,
                dt.second
            ),
            (2024, 2, 29, 12, 34, 56)
        );
        // TIME(0) -00:00:01: intpart = -1 -> stored 0x7fffff.
        let Value::Time(t) = one(Kind::Time2 { fsp: 0 }, &[0x7f, 0xff, 0xff]) else {
            panic!()
        };
        assert!(t.negative);
        assert_eq!((t.hours, t.minutes, t.seconds), (0, 0, 1));
    }

    #[test]
    fn a_large_text_or_binary_cell_is_one_allocation_of_its_own_size() {
        let cell = vec![b'x'; 1 << 20];
        let mut image = (cell.len() as u32).to_le_bytes().to_vec();
        image.extend_from_slice(&cell);
        let text = Kind::Text {
            len_bytes: 4,
            charset: crate::charset::Charset::Utf8,
        };
        let Value::String(s) = one(text, &image) else {
            panic!("text")
        };
        assert_eq!((s.len(), s.capacity()), (cell.len(), cell.len()));
        let Value::Bytes(b) = one(Kind::Bytes { len_bytes: 4 }, &image) else {
            panic!("bytes")
        };
        assert_eq!((b.len(), b.capacity()), (cell.len(), cell.len()));
    }

    #[test]
    fn truncated_values_name_what_was_being_read() {
        let err = decode_value(&mut Reader::new(&[1, 2]), &Kind::Double).expect_err("short");
        assert!(err.contains("a DOUBLE"), "{err}");
        let labels: Arc<[String]> = vec!["a".to_owned()].into();
        let err = decode_value(&mut Reader::new(&[5]), &Kind::Enum { pack: 1, labels })
            .expect_err("bad index");
        assert!(err.contains("ENUM index 5"), "{err}");
    }
}
