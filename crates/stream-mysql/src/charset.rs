//! Decoding of text columns from their MySQL character set.

use encoding_rs::Encoding;

/// How the bytes of a text column become a Rust string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Charset {
    /// utf8mb4, utf8mb3 (and `utf8`), ascii: validated UTF-8.
    Utf8,
    /// `binary`: not text at all; the column is bytes.
    Binary,
    /// ucs2, utf16: UTF-16 big-endian.
    Utf16Be,
    /// utf16le.
    Utf16Le,
    /// utf32: UTF-32 big-endian.
    Utf32Be,
    /// Anything `encoding_rs` knows: latin1 (MySQL's latin1 is windows-1252), cp1251, gbk, …
    Legacy(&'static Encoding),
}

impl Charset {
    /// The decoder for a MySQL character set name; `None` when we cannot decode it.
    pub(crate) fn from_mysql_name(name: &str) -> Option<Self> {
        let label = match name.to_ascii_lowercase().as_str() {
            "utf8mb4" | "utf8mb3" | "utf8" | "ascii" => return Some(Charset::Utf8),
            "binary" => return Some(Charset::Binary),
            "ucs2" | "utf16" => return Some(Charset::Utf16Be),
            "utf16le" => return Some(Charset::Utf16Le),
            "utf32" => return Some(Charset::Utf32Be),
            "latin1" => "windows-1252",
            "latin2" => "iso-8859-2",
            "latin5" => "iso-8859-9",
            "latin7" => "iso-8859-13",
            "greek" => "iso-8859-7",
            "hebrew" => "iso-8859-8",
            "cp1250" => "windows-1250",
            "cp1251" => "windows-1251",
            "cp1256" => "windows-1256",
            "cp1257" => "windows-1257",
            "cp866" => "ibm866",
            "koi8r" => "koi8-r",
            "koi8u" => "koi8-u",
            "macroman" => "macintosh",
            "tis620" => "windows-874",
            "sjis" | "cp932" => "shift_jis",
            "ujis" | "eucjpms" => "euc-jp",
            "euckr" => "euc-kr",
            "gbk" | "gb2312" => "gbk",
            "gb18030" => "gb18030",
            "big5" => "big5",
            _ => return None,
        };
        Encoding::for_label(label.as_bytes()).map(Charset::Legacy)
    }

    /// Decodes `bytes`; `Err` describes bytes that are not valid in the character set.
    pub(crate) fn decode(self, bytes: &[u8]) -> Result<String, String> {
        match self {
            Charset::Utf8 => std::str::from_utf8(bytes)
                .map(str::to_owned)
                .map_err(|e| format!("invalid UTF-8 at byte {}", e.valid_up_to())),
            Charset::Binary => Err("binary data is not text".to_owned()),
            Charset::Utf16Be | Charset::Utf16Le => {
                if !bytes.len().is_multiple_of(2) {
                    return Err("odd number of bytes in UTF-16 text".to_owned());
                }
                let units = bytes.chunks_exact(2).map(|c| {
                    if self == Charset::Utf16Be {
                        u16::from_be_bytes([c[0], c[1]])
                    } else {
                        u16::from_le_bytes([c[0], c[1]])
                    }
                });
                char::decode_utf16(units)
                    .collect::<Result<String, _>>()
                    .map_err(|e| format!("invalid UTF-16: {e}"))
            }
            Charset::Utf32Be => {
                if !bytes.len().is_multiple_of(4) {
                    return Err("byte count of UTF-32 text is not a multiple of 4".to_owned());
                }
                bytes
                    .chunks_exact(4)
                    .map(|c| {
                        let cp = u32::from_be_bytes([c[0], c[1], c[2], c[3]]);
                        char::from_u32(cp).ok_or_else(|| format!("invalid code point {cp:#x}"))
                    })
                    .collect()
            }
            Charset::Legacy(encoding) => {
                let (text, had_errors) = encoding.decode_without_bom_handling(bytes);
                if had_errors {
                    Err(format!("bytes not valid in {}", encoding.name()))
                } else {
                    Ok(text.into_owned())
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latin1_is_windows_1252_like_mysql() {
        let latin1 = Charset::from_mysql_name("latin1").expect("latin1");
        assert_eq!(latin1.decode(b"caf\xe9").expect("decode"), "café");
        assert_eq!(latin1.decode(b"\x80").expect("euro"), "€");
        assert_eq!(latin1.decode(b"\x81").expect("undefined byte"), "\u{81}");
    }

    #[test]
    fn wide_and_multibyte_charsets_decode() {
        let ucs2 = Charset::from_mysql_name("ucs2").expect("ucs2");
        assert_eq!(ucs2.decode(&[0x00, 0x41, 0x04, 0x10]).expect("ucs2"), "AА");
        let le = Charset::from_mysql_name("utf16le").expect("utf16le");
        assert_eq!(le.decode(&[0x41, 0x00]).expect("utf16le"), "A");
        let u32 = Charset::from_mysql_name("utf32").expect("utf32");
        assert_eq!(u32.decode(&[0, 1, 0xf6, 0x00]).expect("utf32"), "😀");
        let sjis = Charset::from_mysql_name("sjis").expect("sjis");
        assert_eq!(sjis.decode(&[0x82, 0xa0]).expect("sjis"), "あ");
        assert!(
            Charset::from_mysql_name("utf8mb4")
                .expect("utf8")
                .decode(b"\xff")
                .is_err()
        );
        assert_eq!(Charset::from_mysql_name("armscii8"), None);
    }
}
