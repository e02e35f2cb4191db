//! What can be wrong with a config file: one line per error, naming the key and where it was
//! written, never echoing a value that came from the environment.

use std::fmt;

use crate::origin::Origins;
use crate::path::{KeyPath, Location, Part};

/// One thing wrong with a config file. Its message is one line: the key path, what is wrong
/// (with the fix where there is one), and the line or environment variable it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {file}: {reason}")]
    Read {
        /// The file as given.
        file: String,
        /// What the system said.
        reason: String,
    },
    /// The file is not valid YAML.
    #[error("not valid YAML: {reason} (line {line}, column {column})")]
    Syntax {
        /// What the parser said.
        reason: String,
        /// Line, from 1.
        line: usize,
        /// Column, from 1.
        column: usize,
    },
    /// A `${VAR}` reference names a variable that is not set.
    #[error(
        "{key}: environment variable {variable} is not set; export it, or write ${{{variable}:-default}}{}",
        at.suffix()
    )]
    MissingVariable {
        /// The key whose value holds the reference.
        key: KeyPath,
        /// The variable.
        variable: String,
        /// Where the value was written.
        at: Location,
    },
    /// A `${...}` reference is malformed, or its variable's value is not UTF-8.
    #[error("{key}: {reason}{}", at.suffix())]
    BadReference {
        /// The key whose value holds the reference.
        key: KeyPath,
        /// What is wrong.
        reason: String,
        /// Where the value was written.
        at: Location,
    },
    /// An environment override cannot be applied.
    #[error("{variable}: {reason}")]
    Override {
        /// The variable (`USTREAM__SINKS__...`).
        variable: String,
        /// Why.
        reason: String,
    },
    /// A key the target type does not know (a typo, or a key in the wrong place).
    #[error("{key}: unknown key{}{}", unknown_key_hint(key, expected), at.suffix())]
    UnknownKey {
        /// The key.
        key: KeyPath,
        /// The keys allowed there.
        expected: Vec<String>,
        /// Where it was written.
        at: Location,
    },
    /// A required key is absent.
    #[error("{key}: missing; add it{}", at.suffix())]
    MissingKey {
        /// The key.
        key: KeyPath,
        /// Where its parent was written.
        at: Location,
    },
    /// A value is not what the key takes.
    #[error("{key}: {reason}{}", at.suffix())]
    Invalid {
        /// The key.
        key: KeyPath,
        /// What is wrong, and what would be right.
        reason: String,
        /// Where it was written.
        at: Location,
    },
}

impl ConfigError {
    /// The key path the error is about, when it is about one.
    pub fn key(&self) -> Option<&KeyPath> {
        match self {
            ConfigError::MissingVariable { key, .. }
            | ConfigError::BadReference { key, .. }
            | ConfigError::UnknownKey { key, .. }
            | ConfigError::MissingKey { key, .. }
            | ConfigError::Invalid { key, .. } => Some(key),
            ConfigError::Read { .. }
            | ConfigError::Syntax { .. }
            | ConfigError::Override { .. } => None,
        }
    }
}

/// Every error found in a config file, at least one. Displays one error per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(Vec<ConfigError>);

impl ConfigErrors {
    /// Errors to report; `None` when the list is empty.
    pub fn new(errors: Vec<ConfigError>) -> Option<Self> {
        (!errors.is_empty()).then_some(Self(errors))
    }

    /// From a list the caller knows is not empty.
    pub(crate) fn several(errors: Vec<ConfigError>) -> Self {
        Self(errors)
    }

    /// The errors, in the order found.
    pub fn iter(&self) -> std::slice::Iter<'_, ConfigError> {
        self.0.iter()
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always false: there is at least one error.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The errors.
    pub fn into_vec(self) -> Vec<ConfigError> {
        self.0
    }
}

impl From<ConfigError> for ConfigErrors {
    fn from(error: ConfigError) -> Self {
        Self(vec![error])
    }
}

impl IntoIterator for ConfigErrors {
    type Item = ConfigError;
    type IntoIter = std::vec::IntoIter<ConfigError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a ConfigErrors {
    type Item = &'a ConfigError;
    type IntoIter = std::slice::Iter<'a, ConfigError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// `; did you mean `deletes`?` for a near miss, else the keys allowed there.
fn unknown_key_hint(key: &KeyPath, expected: &[String]) -> String {
    let Some(Part::Key(name)) = key.parts().last() else {
        return String::new();
    };
    if expected.is_empty() {
        return "; no keys are allowed here".into();
    }
    let lowered = name.to_ascii_lowercase();
    let nearest = expected
        .iter()
        .map(|candidate| (edit_distance(&lowered, candidate), candidate))
        .min_by_key(|(distance, _)| *distance);
    match nearest {
        Some((distance, candidate)) if distance <= 2.max(name.len() / 4) => {
            format!("; did you mean `{candidate}`?")
        }
        _ => format!("; expected one of: {}", expected.join(", ")),
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}

/// Turns serde's error at `path` into ours: the key (with the unknown or missing field
/// appended), a message in the file's terms, the location, and no value from the environment.
pub(crate) fn from_serde(
    error: serde_path_to_error::Error<serde_json::Error>,
    origins: &Origins,
) -> ConfigError {
    let mut path = KeyPath::root();
    for segment in error.path().iter() {
        path = match segment {
            serde_path_to_error::Segment::Seq { index } => path.index(*index),
            serde_path_to_error::Segment::Map { key } => path.key(key.clone()),
            serde_path_to_error::Segment::Enum { variant } => path.key(variant.clone()),
            serde_path_to_error::Segment::Unknown => break,
        };
    }
    let message = error.into_inner().to_string();
    if let Some(rest) = message.strip_prefix("unknown field `")
        && let Some((field, expected)) = rest.split_once('`')
    {
        let key = with_last_key(&path, field);
        return ConfigError::UnknownKey {
            at: origins.locate(&key),
            expected: backticked(expected),
            key,
        };
    }
    if let Some(rest) = message.strip_prefix("missing field `")
        && let Some((field, _)) = rest.split_once('`')
    {
        return ConfigError::MissingKey {
            at: origins.locate(&path),
            key: path.key(field),
        };
    }
    let reason = origins.scrub(&path, &plain_words(&message));
    ConfigError::Invalid {
        at: origins.locate(&path),
        key: path,
        reason,
    }
}

/// serde reports an unknown field at its parent or at itself, depending on the deserializer.
fn with_last_key(path: &KeyPath, field: &str) -> KeyPath {
    match path.parts().last() {
        Some(Part::Key(last)) if last == field => path.clone(),
        _ => path.clone().key(field),
    }
}

fn backticked(text: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// serde's wording (`invalid type: string "x", expected u16`) in the file's terms
/// (`expected a whole number from 0 to 65535, found the text "x"`).
fn plain_words(message: &str) -> String {
    if let Some(rest) = message.strip_prefix("unknown variant `")
        && let Some((variant, expected)) = rest.split_once('`')
    {
        let choices = backticked(expected);
        let listed = match choices.split_last() {
            None => "nothing".to_owned(),
            Some((last, [])) => last.clone(),
            Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        };
        return format!("expected {listed}, found `{variant}`");
    }
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = message.strip_prefix(prefix)
            && let Some((found, expected)) = rest.rsplit_once(", expected ")
        {
            let expected = expected_words(expected);
            let found = found_words(found);
            let hint = if expected == "text" && !found.starts_with("a ") && found != "nothing" {
                "; put it in quotes"
            } else {
                ""
            };
            return format!("expected {expected}, found {found}{hint}");
        }
    }
    message.to_owned()
}

fn expected_words(expected: &str) -> String {
    let words = match expected {
        "a string" | "string" => "text",
        "a boolean" | "bool" => "true or false",
        "u8" => "a whole number from 0 to 255",
        "u16" => "a whole number from 0 to 65535",
        "u32" => "a whole number from 0 to 4294967295",
        "u64" | "usize" => "a whole number, 0 or more",
        "i8" | "i16" | "i32" | "i64" | "isize" => "a whole number",
        "f32" | "f64" => "a number",
        "a map" | "map" => "a mapping",
        "a sequence" | "sequence" => "a list",
        other if other.starts_with("struct ") || other.starts_with("a map") => "a mapping",
        other => other,
    };
    words.to_owned()
}

fn found_words(found: &str) -> String {
    match found {
        "unit value" | "null" => "nothing".into(),
        "map" => "a mapping".into(),
        "sequence" => "a list".into(),
        other => match other.split_once(' ') {
            Some(("string", text)) => format!("the text {text}"),
            Some(("integer" | "floating", _)) => {
                format!("the number {}", other.rsplit(' ').next().unwrap_or(other))
            }
            Some(("boolean", value)) => format!("the boolean {value}"),
            _ => other.to_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_near_miss_suggests_the_key_meant() {
        let key = KeyPath::of(["sinks", "w", "delets"]);
        let hint = unknown_key_hint(&key, &["url".into(), "deletes".into()]);
        assert_eq!(hint, "; did you mean `deletes`?");
    }

    #[test]
    fn a_far_miss_lists_the_keys_allowed() {
        let key = KeyPath::of(["zzzzzz"]);
        let hint = unknown_key_hint(&key, &["sources".into(), "sinks".into()]);
        assert_eq!(hint, "; expected one of: sources, sinks");
    }

    #[test]
    fn serde_wording_becomes_the_files_wording() {
        assert_eq!(
            plain_words("unknown variant `hardd`, expected `soft` or `hard`"),
            "expected soft or hard, found `hardd`"
        );
        assert_eq!(
            plain_words("unknown variant `x`, expected one of `a`, `b`, `c`"),
            "expected a, b or c, found `x`"
        );
        assert_eq!(
            plain_words("invalid type: string \"x\", expected u16"),
            "expected a whole number from 0 to 65535, found the text \"x\""
        );
        assert_eq!(
            plain_words("invalid type: integer `2024`, expected a string"),
            "expected text, found the number `2024`; put it in quotes"
        );
        assert_eq!(
            plain_words("invalid type: sequence, expected struct Sink"),
            "expected a mapping, found a list"
        );
        assert_eq!(
            plain_words("invalid type: unit value, expected a string"),
            "expected text, found nothing"
        );
        assert_eq!(plain_words("something custom"), "something custom");
    }

    #[test]
    fn edit_distance_counts_single_character_edits() {
        assert_eq!(edit_distance("deletes", "deletes"), 0);
        assert_eq!(edit_distance("delets", "deletes"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
    }

    #[test]
    fn several_errors_display_one_per_line() {
        let errors = ConfigErrors::new(vec![
            ConfigError::Override {
                variable: "A__B".into(),
                reason: "x".into(),
            },
            ConfigError::MissingKey {
                key: KeyPath::of(["url"]),
                at: Location::Nowhere,
            },
        ])
        .expect("two errors");
        assert_eq!(errors.to_string(), "A__B: x\nurl: missing; add it");
        assert!(ConfigErrors::new(Vec::new()).is_none());
    }
}
