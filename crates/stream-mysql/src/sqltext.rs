//! A small lexer for MySQL statement text, for the parts of DDL `sqlparser` does not read, and
//! the redaction of literals before a statement goes to a log.
//!
//! It never fails: an unterminated literal, identifier or comment runs to the end of the text.

/// What a token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A keyword, unquoted identifier or number.
    Word,
    /// `'...'` or `"..."`.
    Literal,
    /// `` `...` ``.
    Quoted,
    /// Whitespace and comments.
    Space,
    /// Any other character: `(`, `)`, `,`, `=`, `.`, …
    Punct,
}

/// One token: its kind and its exact text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Token<'a> {
    pub(crate) kind: Kind,
    pub(crate) text: &'a str,
}

impl Token<'_> {
    /// This unquoted word, in any case.
    pub(crate) fn is(&self, word: &str) -> bool {
        self.kind == Kind::Word && self.text.eq_ignore_ascii_case(word)
    }

    /// The identifier this token names (a word, or a `` `quoted` `` name unquoted).
    pub(crate) fn name(&self) -> Option<String> {
        match self.kind {
            Kind::Word => Some(self.text.to_owned()),
            Kind::Quoted => Some(
                self.text
                    .strip_prefix('`')
                    .map(|t| t.strip_suffix('`').unwrap_or(t))
                    .unwrap_or(self.text)
                    .replace("``", "`"),
            ),
            // A name or value given as a string: `CHARACTER SET 'latin1'`.
            Kind::Literal => Some(self.text.trim_matches(['\'', '"']).to_owned()),
            _ => None,
        }
    }
}

/// Where the quoted run starting at `start` (on its opening quote `q`) ends. Backslash escapes
/// and doubled quotes stay inside.
fn quoted_end(bytes: &[u8], start: usize, q: u8) -> usize {
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if q != b'`' => i += 2,
            c if c == q => {
                if bytes.get(i + 1) == Some(&q) {
                    i += 2;
                } else {
                    return i + 1;
                }
            }
            _ => i += 1,
        }
    }
    bytes.len()
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

/// The tokens of `sql`, in order; their texts concatenate back to `sql`.
pub(crate) fn lex(sql: &str) -> Vec<Token<'_>> {
    let bytes = sql.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let next = bytes.get(i + 1).copied();
        let (kind, end) = match b {
            b'\'' | b'"' => (Kind::Literal, quoted_end(bytes, i, b)),
            b'`' => (Kind::Quoted, quoted_end(bytes, i, b)),
            b'/' if next == Some(b'*') => {
                let end = sql[i + 2..]
                    .find("*/")
                    .map_or(bytes.len(), |e| i + 2 + e + 2);
                (Kind::Space, end)
            }
            b'#' => (Kind::Space, line_end(sql, i)),
            b'-' if next == Some(b'-')
                && bytes.get(i + 2).is_none_or(|c| c.is_ascii_whitespace()) =>
            {
                (Kind::Space, line_end(sql, i))
            }
            c if c.is_ascii_whitespace() => {
                let len = bytes[i..]
                    .iter()
                    .take_while(|c| c.is_ascii_whitespace())
                    .count();
                (Kind::Space, i + len)
            }
            c if is_word_byte(c) => {
                let len = bytes[i..].iter().take_while(|c| is_word_byte(**c)).count();
                (Kind::Word, i + len)
            }
            _ => (Kind::Punct, i + 1),
        };
        let end = end.min(bytes.len());
        // Every boundary is at an ASCII byte or the end, so slicing stays on char boundaries.
        tokens.push(Token {
            kind,
            text: &sql[i..end],
        });
        i = end;
    }
    tokens
}

fn line_end(sql: &str, from: usize) -> usize {
    sql[from..].find('\n').map_or(sql.len(), |e| from + e)
}

/// `sql` with every quoted literal (`'...'` or `"..."`, escapes included) replaced by `'?'`,
/// for logs: DDL may carry passwords and data. Identifiers in backticks stay; quotes in
/// comments are treated as literals too (more is hidden, never less).
pub(crate) fn redact_literals(sql: &str) -> String {
    let bytes = sql.as_bytes();
    let mut out = String::with_capacity(sql.len());
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            q @ (b'\'' | b'"') => {
                out.push_str(&sql[copied..i]);
                out.push_str("'?'");
                i = quoted_end(bytes, i, q);
                copied = i;
            }
            b'`' => i = quoted_end(bytes, i, b'`'),
            _ => i += 1,
        }
    }
    out.push_str(&sql[copied.min(sql.len())..]);
    out
}

/// The tokens without whitespace and comments.
pub(crate) fn significant<'a>(tokens: &[Token<'a>]) -> Vec<Token<'a>> {
    tokens
        .iter()
        .filter(|t| t.kind != Kind::Space)
        .copied()
        .collect()
}

/// `tokens` split at the commas outside parentheses.
pub(crate) fn split_top_level<'a, 'b>(tokens: &'b [Token<'a>]) -> Vec<&'b [Token<'a>]> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, t) in tokens.iter().enumerate() {
        match (t.kind, t.text) {
            (Kind::Punct, "(") => depth += 1,
            (Kind::Punct, ")") => depth = depth.saturating_sub(1),
            (Kind::Punct, ",") if depth == 0 => {
                parts.push(&tokens[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&tokens[start..]);
    parts
}

/// The text of `tokens` with each unquoted `CHARSET` written `CHARACTER SET`, which is the
/// only spelling `sqlparser` reads in a column definition.
pub(crate) fn text_with_character_set(tokens: &[Token<'_>]) -> String {
    tokens
        .iter()
        .map(|t| {
            if t.is("CHARSET") {
                "CHARACTER SET"
            } else {
                t.text
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_are_redacted_with_escapes_and_both_quote_styles() {
        assert_eq!(
            redact_literals("CREATE USER 'u'@'%' IDENTIFIED BY 's3cr''et\\'x'"),
            "CREATE USER '?'@'?' IDENTIFIED BY '?'"
        );
        assert_eq!(
            redact_literals(r#"ALTER TABLE t ADD c TEXT DEFAULT "a \"q\" b""c", FROB"#),
            "ALTER TABLE t ADD c TEXT DEFAULT '?', FROB"
        );
        assert_eq!(
            redact_literals("ALTER TABLE `it's` ADD x INT DEFAULT 'v' /* 'c' */"),
            "ALTER TABLE `it's` ADD x INT DEFAULT '?' /* '?' */"
        );
        assert_eq!(redact_literals("x = 'unterminated secret"), "x = '?'");
        assert_eq!(redact_literals("no literals é"), "no literals é");
        assert_eq!(redact_literals("b = x'00ff'"), "b = x'?'");
    }

    #[test]
    fn lexing_keeps_every_byte_and_finds_words_literals_and_names() {
        let sql = "ALTER TABLE `a``b` /* c */ ADD x VARCHAR(3) CHARSET latin1 DEFAULT 'y,z' -- end\n, ENGINE=InnoDB";
        let tokens = lex(sql);
        assert_eq!(tokens.iter().map(|t| t.text).collect::<String>(), sql);
        let sig = significant(&tokens);
        assert_eq!(sig[2].name().as_deref(), Some("a`b"));
        let parts = split_top_level(&sig[3..]);
        assert_eq!(parts.len(), 2);
        assert!(parts[1][0].is("engine"));
        assert_eq!(
            text_with_character_set(&tokens),
            sql.replace("CHARSET", "CHARACTER SET")
        );
    }
}
