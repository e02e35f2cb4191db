//! Where each key's value came from, and which environment values it holds (never to be
//! echoed in an error).

use std::collections::BTreeMap;

use crate::path::{KeyPath, Location};

/// Environment values shorter than this are hidden only in errors about their own key: hiding
/// `1` everywhere would garble unrelated messages, and so short a value is no secret.
const MIN_HIDDEN_EVERYWHERE: usize = 3;

/// A value substituted from `${variable}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Secret {
    pub(crate) variable: String,
    pub(crate) value: String,
}

#[derive(Debug, Clone)]
struct Origin {
    at: Location,
    secrets: Vec<Secret>,
}

/// The origin of every key path of a loaded document.
#[derive(Debug, Clone, Default)]
pub(crate) struct Origins {
    by_path: BTreeMap<KeyPath, Origin>,
}

impl Origins {
    pub(crate) fn record(&mut self, path: KeyPath, at: Location, secrets: Vec<Secret>) {
        self.by_path.insert(path, Origin { at, secrets });
    }

    /// Where `path` was written, or its nearest written ancestor (a missing key is reported
    /// at its parent's line).
    pub(crate) fn locate(&self, path: &KeyPath) -> Location {
        let mut current = Some(path.clone());
        while let Some(path) = current {
            if let Some(origin) = self.by_path.get(&path) {
                return origin.at.clone();
            }
            current = path.parent();
        }
        Location::Nowhere
    }

    /// `text` with every environment value `path` holds, and every longer one anywhere,
    /// replaced by its `${VARIABLE}` reference.
    pub(crate) fn scrub(&self, path: &KeyPath, text: &str) -> String {
        let mut secrets: Vec<&Secret> = self
            .by_path
            .iter()
            .flat_map(|(at, origin)| {
                let own = at == path;
                origin
                    .secrets
                    .iter()
                    .filter(move |s| own || s.value.chars().count() >= MIN_HIDDEN_EVERYWHERE)
            })
            .filter(|s| !s.value.is_empty())
            .collect();
        // The longest first, so a value containing another is replaced whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.value.len()));
        let mut out = text.to_owned();
        for secret in secrets {
            out = out.replace(&secret.value, &format!("${{{}}}", secret.variable));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(variable: &str, value: &str) -> Secret {
        Secret {
            variable: variable.into(),
            value: value.into(),
        }
    }

    #[test]
    fn a_missing_key_is_located_at_its_nearest_ancestor() {
        let mut origins = Origins::default();
        origins.record(KeyPath::of(["sinks"]), Location::Line(3), Vec::new());
        origins.record(KeyPath::of(["sinks", "w"]), Location::Line(4), Vec::new());
        assert_eq!(
            origins.locate(&KeyPath::of(["sinks", "w", "url"])),
            Location::Line(4)
        );
        assert_eq!(origins.locate(&KeyPath::of(["other"])), Location::Nowhere);
    }

    #[test]
    fn environment_values_are_replaced_by_their_reference() {
        let mut origins = Origins::default();
        let port = KeyPath::of(["port"]);
        origins.record(port.clone(), Location::Line(1), vec![secret("PORT", "x1")]);
        origins.record(
            KeyPath::of(["url"]),
            Location::Line(2),
            vec![secret("PW", "hunter2")],
        );
        // Its own short value and every long one are hidden; another key's short one is not.
        assert_eq!(origins.scrub(&port, "x1 and hunter2"), "${PORT} and ${PW}");
        assert_eq!(
            origins.scrub(&KeyPath::of(["other"]), "x1 and hunter2"),
            "x1 and ${PW}"
        );
    }
}
