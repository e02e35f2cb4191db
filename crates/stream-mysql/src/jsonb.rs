//! MySQL's binary JSON (`JSON` columns in row images) to JSON text.
//!
//! Every offset, count and length read from the value is checked against the bytes it must
//! lie in before it is followed or anything is allocated for it; keys and values must follow
//! each other without overlapping (as MySQL writes them), so no byte is decoded twice and the
//! work stays linear in the value's size; nesting is capped at MySQL's own limit. A hostile or
//! corrupt value is an error, never a crash or a hang. The text is the
//! one `mysql_common` produced before: keys in sorted order; DECIMAL and temporal opaque values
//! as strings; other opaque values as `base64:type<N>:<data>`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Number, Value};
use stream_core::Json;

use crate::binary::Reader;
use crate::decimal::decode_decimal;

/// MySQL refuses JSON documents nested deeper than this (`JSON_DOCUMENT_MAX_DEPTH`).
pub(crate) const MAX_DEPTH: usize = 100;

mod tag {
    pub(super) const SMALL_OBJECT: u8 = 0x00;
    pub(super) const LARGE_OBJECT: u8 = 0x01;
    pub(super) const SMALL_ARRAY: u8 = 0x02;
    pub(super) const LARGE_ARRAY: u8 = 0x03;
    pub(super) const LITERAL: u8 = 0x04;
    pub(super) const INT16: u8 = 0x05;
    pub(super) const UINT16: u8 = 0x06;
    pub(super) const INT32: u8 = 0x07;
    pub(super) const UINT32: u8 = 0x08;
    pub(super) const INT64: u8 = 0x09;
    pub(super) const UINT64: u8 = 0x0a;
    pub(super) const DOUBLE: u8 = 0x0b;
    pub(super) const STRING: u8 = 0x0c;
    pub(super) const OPAQUE: u8 = 0x0f;
}

/// Opaque value types with a text form (`enum_field_types`).
mod field {
    pub(super) const TIMESTAMP: u8 = 7;
    pub(super) const DATE: u8 = 10;
    pub(super) const TIME: u8 = 11;
    pub(super) const DATETIME: u8 = 12;
    pub(super) const NEWDECIMAL: u8 = 246;
}

/// Decodes one binary JSON value (an empty value is JSON `null`, as MySQL reads it).
pub(crate) fn decode(bytes: &[u8]) -> Result<Json, String> {
    let Some((&ty, body)) = bytes.split_first() else {
        return Ok(Json::from_compact_unchecked("null".to_owned()));
    };
    let (value, _) = value(ty, body, 0).map_err(|e| format!("binary JSON: {e}"))?;
    Ok(Json::from_compact_unchecked(value.to_string()))
}

/// The value of type `ty` stored at the start of `body` (which may run on past it), and the
/// bytes it takes.
fn value(ty: u8, body: &[u8], depth: usize) -> Result<(Value, usize), String> {
    let mut r = Reader::new(body);
    let bad = |e: crate::binary::Malformed| e.0;
    let value = match ty {
        tag::SMALL_OBJECT | tag::LARGE_OBJECT | tag::SMALL_ARRAY | tag::LARGE_ARRAY => {
            if depth >= MAX_DEPTH {
                return Err(format!("nested deeper than {MAX_DEPTH} levels"));
            }
            return container(ty, body, depth + 1);
        }
        tag::LITERAL => literal(r.u8("a literal").map_err(bad)?)?,
        tag::INT16 => Value::from(r.uint_le(2, "an int16").map_err(bad)? as u16 as i16),
        tag::UINT16 => Value::from(r.uint_le(2, "a uint16").map_err(bad)?),
        tag::INT32 => Value::from(r.uint_le(4, "an int32").map_err(bad)? as u32 as i32),
        tag::UINT32 => Value::from(r.uint_le(4, "a uint32").map_err(bad)?),
        tag::INT64 => Value::from(r.uint_le(8, "an int64").map_err(bad)? as i64),
        tag::UINT64 => Value::from(r.uint_le(8, "a uint64").map_err(bad)?),
        tag::DOUBLE => {
            let bits = r.uint_le(8, "a double").map_err(bad)?;
            // Infinities and NaN (which MySQL never stores) read as 0, like mysql_common's.
            Value::Number(Number::from_f64(f64::from_bits(bits)).unwrap_or_else(|| 0u64.into()))
        }
        tag::STRING => {
            let n = var_len(&mut r)?;
            let text = r.take(n, "a string").map_err(bad)?;
            Value::String(utf8(text)?)
        }
        tag::OPAQUE => {
            let field = r.u8("an opaque value's type").map_err(bad)?;
            let n = var_len(&mut r)?;
            opaque(field, r.take(n, "an opaque value").map_err(bad)?)?
        }
        other => return Err(format!("unknown value type {other:#04x}")),
    };
    Ok((value, body.len() - r.remaining()))
}

fn literal(byte: u8) -> Result<Value, String> {
    match byte {
        0 => Ok(Value::Null),
        1 => Ok(Value::Bool(true)),
        2 => Ok(Value::Bool(false)),
        other => Err(format!("unknown literal {other:#04x}")),
    }
}

fn utf8(bytes: &[u8]) -> Result<String, String> {
    String::from_utf8(bytes.to_vec()).map_err(|e| format!("text is not UTF-8: {e}"))
}

/// A string's or opaque value's length: 7 bits per byte, low first, at most 5 bytes.
fn var_len(r: &mut Reader<'_>) -> Result<usize, String> {
    let mut n: u64 = 0;
    for i in 0..5 {
        let byte = r.u8("a length").map_err(|e| e.0)?;
        n |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return usize::try_from(n).map_err(|_| format!("length {n} does not fit"));
        }
    }
    Err("a length longer than 5 bytes".into())
}

/// An object or array, and its size: `body` starts with the element count and byte size.
fn container(ty: u8, body: &[u8], depth: usize) -> Result<(Value, usize), String> {
    let large = ty == tag::LARGE_OBJECT || ty == tag::LARGE_ARRAY;
    let object = ty == tag::SMALL_OBJECT || ty == tag::LARGE_OBJECT;
    let width = if large { 4 } else { 2 };
    let mut r = Reader::new(body);
    let count = r.uint_le(width, "the element count").map_err(|e| e.0)? as usize;
    let size = r.uint_le(width, "the size").map_err(|e| e.0)? as usize;
    let data = body
        .get(..size)
        .ok_or_else(|| format!("a size of {size} bytes with {} left", body.len()))?;
    let key_entry = width + 2;
    let value_entry = width + 1;
    let entries = if object {
        key_entry + value_entry
    } else {
        value_entry
    };
    // The header holds every entry: checked before the count sizes any allocation.
    let header = count
        .checked_mul(entries)
        .and_then(|n| n.checked_add(2 * width))
        .filter(|&n| n <= size)
        .ok_or_else(|| format!("{count} elements do not fit in {size} bytes"))?;
    let uint_at = |at: usize, n: usize| -> Result<usize, String> {
        let mut r = Reader::new(data.get(at..).unwrap_or_default());
        Ok(r.uint_le(n, "an offset").map_err(|e| e.0)? as usize)
    };
    // Keys, then values, each after the one before: nothing is read twice.
    let mut free = header;
    let mut keys = Vec::with_capacity(if object { count } else { 0 });
    if object {
        for i in 0..count {
            let entry = 2 * width + i * key_entry;
            let (at, len) = (uint_at(entry, width)?, uint_at(entry + width, 2)?);
            let key = at
                .checked_add(len)
                .filter(|&end| at >= free && end <= size)
                .map(|end| &data[at..end])
                .ok_or_else(|| {
                    format!("key {i} at {at} (length {len}) overlaps or leaves its object")
                })?;
            keys.push(utf8(key)?);
            free = at + len;
        }
    }
    let values_start = 2 * width + if object { count * key_entry } else { 0 };
    let mut values = Vec::with_capacity(count);
    for i in 0..count {
        let entry = values_start + i * value_entry;
        let ty = data[entry];
        let inlined = matches!(ty, tag::LITERAL | tag::INT16 | tag::UINT16)
            || (large && matches!(ty, tag::INT32 | tag::UINT32));
        let v = if inlined {
            value(ty, &data[entry + 1..entry + value_entry], depth)?.0
        } else {
            let at = uint_at(entry + 1, width)?;
            if at < free || at >= size {
                return Err(format!(
                    "value {i} at {at} overlaps or leaves its container"
                ));
            }
            let (v, len) = value(ty, &data[at..], depth)?;
            free = at + len;
            v
        };
        values.push(v);
    }
    if !object {
        return Ok((Value::Array(values), size));
    }
    let mut pairs: Vec<(String, Value)> = keys.into_iter().zip(values).collect();
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    Ok((
        Value::Object(pairs.into_iter().collect::<Map<_, _>>()),
        size,
    ))
}

/// An opaque value: DECIMAL and temporal types as text, anything else in base64.
fn opaque(field: u8, data: &[u8]) -> Result<Value, String> {
    let packed = || -> Result<i64, String> {
        let bytes: [u8; 8] = data
            .get(..8)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| format!("a temporal value of {} bytes", data.len()))?;
        Ok(i64::from_le_bytes(bytes))
    };
    Ok(Value::String(match field {
        field::NEWDECIMAL => {
            let (&precision, rest) = data.split_first().ok_or("an empty DECIMAL")?;
            let (&scale, digits) = rest.split_first().ok_or("a DECIMAL without scale")?;
            decode_decimal(&mut Reader::new(digits), precision, scale).map_err(|e| e.0)?
        }
        field::DATE => Packed::datetime(packed()?).date_text(),
        field::TIME => Packed::time(packed()?).time_text(),
        field::DATETIME | field::TIMESTAMP => Packed::datetime(packed()?).datetime_text(),
        other => format!("base64:type{other}:{}", BASE64.encode(data)),
    }))
}

/// MySQL's packed temporal integers (`my_time.cc`), fields as `mysql_common` prints them.
struct Packed {
    negative: bool,
    year: u32,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    micros: u32,
}

/// Two-digit fields print as 0 when out of range, as MySQL does.
fn two(v: u32) -> u32 {
    if v >= 100 { 0 } else { v }
}

impl Packed {
    fn datetime(v: i64) -> Self {
        let p = v.unsigned_abs();
        let ymdhms = p >> 24;
        let ymd = ymdhms >> 17;
        let ym = ymd >> 5;
        let hms = ymdhms % (1 << 17);
        Self {
            negative: v < 0,
            year: (ym / 13) as u32,
            month: (ym % 13) as u32,
            day: (ymd % 32) as u32,
            hour: (hms >> 12) as u32,
            minute: ((hms >> 6) % 64) as u32,
            second: (hms % 64) as u32,
            micros: (p % (1 << 24)) as u32,
        }
    }

    fn time(v: i64) -> Self {
        let p = v.unsigned_abs();
        let hms = p >> 24;
        Self {
            negative: v < 0,
            year: 0,
            month: 0,
            day: 0,
            hour: ((hms >> 12) % (1 << 10)) as u32,
            minute: ((hms >> 6) % 64) as u32,
            second: (hms % 64) as u32,
            micros: (p % (1 << 24)) as u32,
        }
    }

    fn time_text(&self) -> String {
        format!(
            "{}{:02}:{:02}:{:02}.{:06}",
            if self.negative { "-" } else { "" },
            self.hour,
            two(self.minute),
            two(self.second),
            self.micros % 1_000_000
        )
    }

    fn date_text(&self) -> String {
        format!(
            "{:02}{:02}-{:02}-{:02}",
            two(self.year / 100),
            two(self.year % 100),
            two(self.month),
            two(self.day),
        )
    }

    fn datetime_text(&self) -> String {
        format!(
            "{} {:02}:{:02}:{:02}.{:06}",
            self.date_text(),
            two(self.hour),
            two(self.minute),
            two(self.second),
            self.micros % 1_000_000
        )
    }
}

#[cfg(test)]
mod tests;
