//! Reading back what the encoder wrote: rows stored in the Redis tier.

use serde_json::Value as J;
use stream_core::{Date, DateTime, Decimal, Json, Row, Time, Timestamp, Value};

fn unhex(s: &str) -> Result<Vec<u8>, String> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        _ => Err(format!("invalid hex digit in `{s}`")),
    };
    if !s.len().is_multiple_of(2) {
        return Err(format!("odd-length hex `{s}`"));
    }
    s.as_bytes()
        .chunks(2)
        .map(|pair| Ok(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

/// Decodes what [`encode_row`](super::encode_row) wrote.
pub(crate) fn decode_row(j: &J) -> Result<Row, String> {
    let fields = j.as_array().ok_or("a row must be an array of pairs")?;
    let mut row = Row::with_capacity(fields.len());
    for field in fields {
        match field.as_array().map(Vec::as_slice) {
            Some([J::String(name), value]) => row.push(name.as_str(), decode_value(value)?),
            _ => return Err(format!("a row field must be [name, value], not {field}")),
        }
    }
    Ok(row)
}

fn num<T: TryFrom<u64> + TryFrom<i64>>(j: &J) -> Result<T, String> {
    let out = match (j.as_u64(), j.as_i64()) {
        (Some(u), _) => T::try_from(u).ok(),
        (None, Some(i)) => T::try_from(i).ok(),
        _ => None,
    };
    out.ok_or_else(|| format!("expected an integer in range, not {j}"))
}

fn text(j: &J) -> Result<String, String> {
    j.as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("expected a string, not {j}"))
}

fn array<const N: usize>(j: &J) -> Result<&[J; N], String> {
    j.as_array()
        .and_then(|a| <&[J; N]>::try_from(a.as_slice()).ok())
        .ok_or_else(|| format!("expected an array of {N}, not {j}"))
}

fn oid(j: &J) -> Result<[u8; 12], String> {
    <[u8; 12]>::try_from(unhex(&text(j)?)?).map_err(|_| format!("an ObjectId has 12 bytes: {j}"))
}

/// Decodes what [`encode_value`](super::encode_value) wrote.
pub(crate) fn decode_value(j: &J) -> Result<Value, String> {
    let (tag, p) = match j {
        J::Null => return Ok(Value::Null),
        J::String(s) => {
            return match s.as_str() {
                "minkey" => Ok(Value::MinKey),
                "maxkey" => Ok(Value::MaxKey),
                "undefined" => Ok(Value::Undefined),
                other => Err(format!("unknown value `{other}`")),
            };
        }
        J::Object(map) if map.len() == 1 => map.iter().next().ok_or("empty object")?,
        other => return Err(format!("not a tagged value: {other}")),
    };
    Ok(match tag.as_str() {
        "b" => Value::Bool(p.as_bool().ok_or("expected a boolean")?),
        "i" => Value::Int(num(p)?),
        "u" => Value::UInt(num(p)?),
        "f" => Value::Float(f32::from_bits(num(p)?)),
        "d" => Value::Double(f64::from_bits(num(p)?)),
        "dec" => Value::Decimal(Decimal::parse(&text(p)?).map_err(|e| e.to_string())?),
        "s" => Value::String(text(p)?),
        "x" => Value::Bytes(unhex(&text(p)?)?),
        "j" => {
            let compact = text(p)?;
            Json::parse(&compact).map_err(|e| e.to_string())?;
            Value::Json(Json::from_compact_unchecked(compact))
        }
        "date" => {
            let [y, m, d] = array(p)?;
            Value::Date(Date {
                year: num(y)?,
                month: num(m)?,
                day: num(d)?,
            })
        }
        "dt" => {
            let [y, mo, d, h, mi, s, us, fsp] = array(p)?;
            Value::DateTime(DateTime {
                date: Date {
                    year: num(y)?,
                    month: num(mo)?,
                    day: num(d)?,
                },
                hour: num(h)?,
                minute: num(mi)?,
                second: num(s)?,
                micros: num(us)?,
                fsp: num(fsp)?,
            })
        }
        "ts" => {
            let [secs, us, fsp] = array(p)?;
            Value::Timestamp(Timestamp {
                secs: num(secs)?,
                micros: num(us)?,
                fsp: num(fsp)?,
            })
        }
        "tm" => {
            let [neg, h, m, s, us, fsp] = array(p)?;
            Value::Time(Time {
                negative: neg.as_bool().ok_or("expected the sign as a boolean")?,
                hours: num(h)?,
                minutes: num(m)?,
                seconds: num(s)?,
                micros: num(us)?,
                fsp: num(fsp)?,
            })
        }
        "e" => Value::Enum(text(p)?),
        "set" => Value::Set(
            p.as_array()
                .ok_or("expected an array of labels")?
                .iter()
                .map(text)
                .collect::<Result<_, _>>()?,
        ),
        "oid" => Value::ObjectId(oid(p)?),
        "bdt" => Value::BsonDateTime(num(p)?),
        "d128" => Value::Decimal128(text(p)?),
        "bin" => {
            let [subtype, bytes] = array(p)?;
            Value::Binary {
                subtype: num(subtype)?,
                bytes: unhex(&text(bytes)?)?,
            }
        }
        "re" => {
            let [pattern, options] = array(p)?;
            Value::Regex {
                pattern: text(pattern)?,
                options: text(options)?,
            }
        }
        "bts" => {
            let [t, i] = array(p)?;
            Value::BsonTimestamp {
                t: num(t)?,
                i: num(i)?,
            }
        }
        "doc" => Value::Document(decode_row(p)?),
        "arr" => Value::Array(
            p.as_array()
                .ok_or("expected an array")?
                .iter()
                .map(decode_value)
                .collect::<Result<_, _>>()?,
        ),
        "sym" => Value::Symbol(text(p)?),
        "js" => Value::JavaScript(text(p)?),
        "jsws" => {
            let [code, scope] = array(p)?;
            Value::JavaScriptWithScope {
                code: text(code)?,
                scope: decode_row(scope)?,
            }
        }
        "dbp" => {
            let [namespace, id] = array(p)?;
            Value::DbPointer {
                namespace: text(namespace)?,
                id: oid(id)?,
            }
        }
        other => return Err(format!("unknown value tag `{other}`")),
    })
}
