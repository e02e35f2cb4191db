//! Decoding of text columns from their MySQL character set.

use std::borrow::Cow;

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

    /// Decodes `bytes`, borrowing them when they are UTF-8 already (`binary` is read as UTF-8).
    pub(crate) fn decode_borrowed(self, bytes: &[u8]) -> Result<Cow<'_, str>, String> {
        match self {
            Charset::Utf8 | Charset::Binary => std::str::from_utf8(bytes)
                .map(Cow::Borrowed)
                .map_err(invalid_utf8),
            other => other.decode(bytes).map(Cow::Owned),
        }
    }

    /// Decodes `bytes`; what is not valid in the character set is read as lossy UTF-8 (MariaDB
    /// sends, and SELECTs, ENUM labels invalid in their set after some conversions).
    pub(crate) fn decode_lossy(self, bytes: &[u8]) -> String {
        self.decode(bytes)
            .unwrap_or_else(|_| String::from_utf8_lossy(bytes).into_owned())
    }

    /// Decodes bytes the caller owns as [`Charset::decode`] does; UTF-8 text becomes its
    /// `String` without a copy (a cell gathered from several binlog packets).
    pub(crate) fn decode_owned(self, bytes: Vec<u8>) -> Result<String, String> {
        match self {
            Charset::Utf8 => String::from_utf8(bytes).map_err(|e| invalid_utf8(e.utf8_error())),
            other => other.decode(&bytes),
        }
    }

    /// Decodes `bytes`; `Err` describes bytes that are not valid in the character set.
    pub(crate) fn decode(self, bytes: &[u8]) -> Result<String, String> {
        match self {
            Charset::Utf8 => std::str::from_utf8(bytes)
                .map(str::to_owned)
                .map_err(invalid_utf8),
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

fn invalid_utf8(e: std::str::Utf8Error) -> String {
    format!("invalid UTF-8 at byte {}", e.valid_up_to())
}

/// Every character set name MySQL and MariaDB know (`utf8` is MySQL's old name of utf8mb3).
const CHARSET_NAMES: &[&str] = &[
    "armscii8", "ascii", "big5", "binary", "cp1250", "cp1251", "cp1256", "cp1257", "cp850",
    "cp852", "cp866", "cp932", "dec8", "eucjpms", "euckr", "gb18030", "gb2312", "gbk", "geostd8",
    "greek", "hebrew", "hp8", "keybcs2", "koi8r", "koi8u", "latin1", "latin2", "latin5", "latin7",
    "macce", "macroman", "sjis", "swe7", "tis620", "ucs2", "ujis", "utf16", "utf16le", "utf32",
    "utf8", "utf8mb3", "utf8mb4",
];

/// The character set name as written in SQL, lower case, if it is one (`CHARACTER SET x`).
pub(crate) fn charset_name(name: &str) -> Option<String> {
    let lower = name.to_ascii_lowercase();
    CHARSET_NAMES.contains(&lower.as_str()).then_some(lower)
}

/// The character set a collation belongs to: its name up to the first `_` (`latin1_bin` →
/// `latin1`), or `binary`. `None` for a collation without its character set in the name
/// (MariaDB's `uca1400_ai_ci`), which keeps the character set it is applied to.
pub(crate) fn charset_of_collation(collation: &str) -> Option<String> {
    let lower = collation.to_ascii_lowercase();
    if lower == "binary" {
        return Some(lower);
    }
    charset_name(lower.split('_').next().unwrap_or_default())
}

/// `text` as a column of character set `name` holds it: each character the set cannot
/// represent becomes `?`, as the server converts ENUM/SET labels to a column's character set.
pub(crate) fn as_stored_in(name: &str, text: &str) -> String {
    let fits: Box<dyn Fn(char) -> bool> = match name.to_ascii_lowercase().as_str() {
        "ascii" => Box::new(|c: char| c.is_ascii()),
        "utf8" | "utf8mb3" | "ucs2" => Box::new(|c: char| u32::from(c) <= 0xffff),
        other => match Charset::from_mysql_name(other) {
            Some(Charset::Legacy(encoding)) => Box::new(move |c: char| {
                let mut buf = [0u8; 4];
                !encoding.encode(c.encode_utf8(&mut buf)).2
            }),
            _ => return text.to_owned(),
        },
    };
    text.chars()
        .map(|c| if fits(c) { c } else { '?' })
        .collect()
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

    #[test]
    fn collations_name_their_character_set() {
        assert_eq!(
            charset_of_collation("latin1_swedish_ci").as_deref(),
            Some("latin1")
        );
        assert_eq!(
            charset_of_collation("UTF8MB4_bin").as_deref(),
            Some("utf8mb4")
        );
        assert_eq!(
            charset_of_collation("utf8_general_ci").as_deref(),
            Some("utf8")
        );
        assert_eq!(charset_of_collation("binary").as_deref(), Some("binary"));
        assert_eq!(charset_of_collation("uca1400_ai_ci"), None);
        assert_eq!(charset_name("Latin1").as_deref(), Some("latin1"));
        assert_eq!(charset_name("DEFAULT"), None);
    }

    #[test]
    fn text_keeps_what_the_character_set_holds() {
        assert_eq!(as_stored_in("latin1", "é€ж"), "é€?");
        assert_eq!(as_stored_in("cp1251", "éж"), "?ж");
        assert_eq!(as_stored_in("ucs2", "Ω😀"), "Ω?");
        assert_eq!(as_stored_in("ascii", "aé"), "a?");
        assert_eq!(as_stored_in("utf8mb4", "é😀"), "é😀");
        assert_eq!(as_stored_in("armscii8", "é"), "é");
    }
}
