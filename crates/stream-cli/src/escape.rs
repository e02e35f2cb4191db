//! Text from the database (table, column and file names, values) shown to a person: control
//! characters made visible, so a name holding `ESC [2J` cannot clear or rewrite the terminal
//! and a bidi override cannot reorder what is shown.

use std::fmt::Write as _;

/// Whether `c` must not reach a terminal as it is: C0 controls, DEL, C1 controls (8-bit
/// terminal escapes such as CSI `U+009B`) and the bidirectional embeddings, overrides and
/// isolates (`U+202A`–`U+202E`, `U+2066`–`U+2069`).
fn is_unsafe(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Appends `text` with every unsafe character written as `\u{..}`.
fn push_escaped(out: &mut String, text: &str) {
    for c in text.chars() {
        if is_unsafe(c) {
            // Writing to a String cannot fail.
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        } else {
            out.push(c);
        }
    }
}

/// `text` with its unsafe characters escaped; borrows when there are none.
pub(crate) fn escaped(text: &str) -> std::borrow::Cow<'_, str> {
    if text.chars().any(is_unsafe) {
        let mut out = String::with_capacity(text.len() + 8);
        push_escaped(&mut out, text);
        std::borrow::Cow::Owned(out)
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

/// Like [`escaped`] for text that is already JSON: JSON escapes C0 controls itself (and a `\`
/// there is the JSON escape, kept as it is), but not DEL, C1 controls or bidi overrides.
pub(crate) fn push_json_escaped(out: &mut Vec<u8>, json: &[u8]) {
    let text = String::from_utf8_lossy(json);
    if !text.chars().any(is_unsafe) {
        out.extend_from_slice(text.as_bytes());
        return;
    }
    let mut shown = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if is_unsafe(c) {
            let _ = write!(shown, "\\u{:04x}", u32::from(c));
        } else {
            shown.push(c);
        }
    }
    out.extend_from_slice(shown.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_controls_and_bidi_overrides_become_visible_escapes() {
        assert_eq!(escaped("orders"), "orders");
        assert_eq!(escaped("\x1b[2Jgone"), "\\u{1b}[2Jgone");
        assert_eq!(escaped("a\u{9b}31mb\u{7f}"), "a\\u{9b}31mb\\u{7f}");
        assert_eq!(escaped("x\u{202e}cod.exe"), "x\\u{202e}cod.exe");
        assert_eq!(escaped("tab\there\nnext"), "tab\\u{9}here\\u{a}next");
        assert_eq!(escaped("back\\slash"), "back\\slash");
        assert_eq!(escaped("café ✓"), "café ✓");
    }

    #[test]
    fn json_text_keeps_its_own_escapes_and_loses_the_rest() {
        let mut out = Vec::new();
        push_json_escaped(&mut out, "\"a\\u001b\u{9b}\u{2066}é\"".as_bytes());
        assert_eq!(
            String::from_utf8(out).expect("utf8"),
            "\"a\\u001b\\u009b\\u2066é\""
        );
    }
}
