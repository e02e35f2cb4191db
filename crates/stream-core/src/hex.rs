//! Lower-case hexadecimal text of bytes: the one encoder the crates share (JSON's binary
//! subtypes, cache keys, UUIDs).
//!
//! ```
//! assert_eq!(stream_core::hex::encode(&[0x0f, 0xa0]), "0fa0");
//! assert_eq!(
//!     stream_core::hex::uuid(&[0x12; 16]),
//!     "12121212-1212-1212-1212-121212121212"
//! );
//! ```

const DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Appends two hex digits per byte to `buf`.
pub fn encode_into(buf: &mut Vec<u8>, bytes: &[u8]) {
    for b in bytes {
        buf.push(DIGITS[usize::from(b >> 4)]);
        buf.push(DIGITS[usize::from(b & 0xf)]);
    }
}

/// Two hex digits per byte.
pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    push_hex(&mut out, bytes);
    out
}

/// The canonical 8-4-4-4-12 text of a 16-byte UUID in display order (other lengths are
/// grouped the same way as far as they go).
pub fn uuid(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(36);
    for (i, b) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        push_hex(&mut out, std::slice::from_ref(b));
    }
    out
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
}
