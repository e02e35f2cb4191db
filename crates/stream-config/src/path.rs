//! Where a value is: its key path in the document and where it came from.

use std::fmt;

/// One step of a [`KeyPath`]: a mapping key or a list index.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Part {
    /// A mapping key, as written in the file (or created by an override).
    Key(String),
    /// A list index, from 0.
    Index(usize),
}

/// A key path such as `sinks.warehouse.deletes` or `sources.shop.include[0]`; the empty path
/// is the document itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyPath(Vec<Part>);

impl KeyPath {
    /// The document itself.
    pub fn root() -> Self {
        Self::default()
    }

    /// This path followed by the mapping key `key`.
    #[must_use]
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.0.push(Part::Key(key.into()));
        self
    }

    /// This path followed by the list index `index`.
    #[must_use]
    pub fn index(mut self, index: usize) -> Self {
        self.0.push(Part::Index(index));
        self
    }

    /// The path of the given keys, from the top: `KeyPath::of(["sinks", "warehouse"])`.
    pub fn of<I, S>(keys: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self(keys.into_iter().map(|k| Part::Key(k.into())).collect())
    }

    /// The steps, from the top.
    pub fn parts(&self) -> &[Part] {
        &self.0
    }

    /// The path one step up, or `None` for the document itself.
    pub fn parent(&self) -> Option<KeyPath> {
        let (_, up) = self.0.split_last()?;
        Some(Self(up.to_vec()))
    }

    /// Whether this is the document itself.
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(top level)");
        }
        for (i, part) in self.0.iter().enumerate() {
            match part {
                Part::Key(key) if i == 0 => f.write_str(key)?,
                Part::Key(key) => write!(f, ".{key}")?,
                Part::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Location {
    /// A line of the file, from 1.
    Line(usize),
    /// An environment override, by variable name (`USTREAM__SINKS__WAREHOUSE__DELETES`).
    Env(String),
    /// Not written anywhere (a key that is absent from the document's top level).
    Nowhere,
}

impl Location {
    /// ` (line 14)`, ` (from USTREAM__...)`, or nothing: what an error message ends with.
    pub fn suffix(&self) -> String {
        match self {
            Location::Nowhere => String::new(),
            other => format!(" ({other})"),
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Line(line) => write!(f, "line {line}"),
            Location::Env(var) => write!(f, "from {var}"),
            Location::Nowhere => f.write_str("not in the file"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_reads_like_the_yaml_it_points_at() {
        let path = KeyPath::of(["sources", "shop"]).key("include").index(2);
        assert_eq!(path.to_string(), "sources.shop.include[2]");
        assert_eq!(
            path.parent().map(|p| p.to_string()).as_deref(),
            Some("sources.shop.include")
        );
        assert_eq!(KeyPath::root().to_string(), "(top level)");
        assert!(KeyPath::root().parent().is_none());
    }

    #[test]
    fn a_location_is_a_line_or_an_environment_variable() {
        assert_eq!(Location::Line(14).suffix(), " (line 14)");
        assert_eq!(
            Location::Env("USTREAM__LISTEN".into()).suffix(),
            " (from USTREAM__LISTEN)"
        );
        assert_eq!(Location::Nowhere.suffix(), "");
    }
}
