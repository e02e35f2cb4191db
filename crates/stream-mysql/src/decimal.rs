//! MySQL's binary DECIMAL format to exact text.
//!
//! Digits are stored in groups of nine per four bytes, big-endian, with leftover digits in
//! 1–4 bytes; the sign is the inverted top bit, and negative numbers have every byte inverted.

use crate::binary::{Malformed, Reader, Result};

const DIG2BYTES: [usize; 10] = [0, 1, 1, 2, 2, 3, 3, 4, 4, 4];

/// Bytes a DECIMAL(precision, scale) value takes in a row image.
pub(crate) fn decimal_len(precision: u8, scale: u8) -> usize {
    let intg = usize::from(precision.saturating_sub(scale));
    let frac = usize::from(scale);
    (intg / 9) * 4 + DIG2BYTES[intg % 9] + (frac / 9) * 4 + DIG2BYTES[frac % 9]
}

fn push_group(out: &mut String, value: u32, width: usize) {
    let mut buf = itoa::Buffer::new();
    let digits = buf.format(value);
    for _ in digits.len()..width {
        out.push('0');
    }
    out.push_str(digits);
}

/// Decodes one DECIMAL(precision, scale) value to plain text with exactly `scale` fraction
/// digits.
pub(crate) fn decode_decimal(r: &mut Reader<'_>, precision: u8, scale: u8) -> Result<String> {
    if scale > precision || precision > 65 {
        return Err(Malformed(format!(
            "DECIMAL({precision},{scale}) is not a valid type"
        )));
    }
    let len = decimal_len(precision, scale);
    let raw = r.take(len, "a DECIMAL value")?;
    // At most 30 bytes (DECIMAL(65,30)): no heap allocation for the working copy.
    let mut storage = [0u8; 32];
    let bytes = &mut storage[..len];
    bytes.copy_from_slice(raw);
    let negative = bytes.first().is_some_and(|b| b & 0x80 == 0);
    if let Some(first) = bytes.first_mut() {
        *first ^= 0x80;
    }
    if negative {
        for b in bytes.iter_mut() {
            *b = !*b;
        }
    }
    let intg = usize::from(precision - scale);
    let frac = usize::from(scale);
    let mut rd = Reader::new(bytes);
    let mut out = String::with_capacity(intg + frac + 3);
    if negative {
        out.push('-');
    }
    let digits_start = out.len();
    let lead = intg % 9;
    if lead > 0 {
        let v = rd.uint_be(DIG2BYTES[lead], "DECIMAL digits")?;
        push_group(&mut out, v as u32, lead);
    }
    for _ in 0..intg / 9 {
        let v = rd.uint_be(4, "DECIMAL digits")?;
        push_group(&mut out, v as u32, 9);
    }
    let zeros = out[digits_start..]
        .bytes()
        .take_while(|&b| b == b'0')
        .count();
    out.drain(digits_start..digits_start + zeros);
    if out.len() == digits_start {
        out.push('0');
    }
    if frac > 0 {
        out.push('.');
        for _ in 0..frac / 9 {
            let v = rd.uint_be(4, "DECIMAL digits")?;
            push_group(&mut out, v as u32, 9);
        }
        let tail = frac % 9;
        if tail > 0 {
            let v = rd.uint_be(DIG2BYTES[tail], "DECIMAL digits")?;
            push_group(&mut out, v as u32, tail);
        }
    }
    if negative && out[1..].bytes().all(|b| b == b'0' || b == b'.') {
        out.remove(0);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(bytes: &[u8], p: u8, s: u8) -> String {
        decode_decimal(&mut Reader::new(bytes), p, s).expect("decimal")
    }

    #[test]
    fn decodes_the_documented_example_and_signs() {
        // MySQL docs: 1234567890.1234 as DECIMAL(14,4).
        let bytes = [0x81, 0x0D, 0xFB, 0x38, 0xD2, 0x04, 0xD2];
        assert_eq!(dec(&bytes, 14, 4), "1234567890.1234");
        // The same value negated: every byte inverted.
        let neg: Vec<u8> = bytes.iter().map(|b| !b).collect();
        assert_eq!(dec(&neg, 14, 4), "-1234567890.1234");
        assert_eq!(decimal_len(14, 4), 7);
    }

    #[test]
    fn keeps_exact_scale_and_leading_zero() {
        // 0.50 as DECIMAL(5,2): int part 3 digits (2 bytes) = 0, frac 2 digits (1 byte) = 50.
        assert_eq!(dec(&[0x80, 0x00, 50], 5, 2), "0.50");
        // 19.90 as DECIMAL(10,2): 8 int digits = 4 bytes, 2 frac digits = 1 byte.
        assert_eq!(dec(&[0x80, 0, 0, 19, 90], 10, 2), "19.90");
        // DECIMAL(3,0) 0.
        assert_eq!(dec(&[0x80, 0x00], 3, 0), "0");
        let err = decode_decimal(&mut Reader::new(&[0x80]), 10, 2).expect_err("short");
        assert!(err.0.contains("DECIMAL"), "{err}");
    }
}
