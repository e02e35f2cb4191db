//! The document as a tree that remembers where each value was written, before `${VAR}`
//! substitution and typing: a plain scalar is typed (number, boolean, null, text) only after
//! substitution, so `port: ${PORT}` becomes a number.

use std::borrow::Cow;

use saphyr::{MarkedYaml, ScalarStyle, Tag, YamlData, YamlLoader};

use crate::error::ConfigError;
use crate::path::{KeyPath, Location};

/// A scalar as written, typed later.
#[derive(Debug, Clone)]
pub(crate) struct Scalar {
    pub(crate) text: String,
    pub(crate) style: ScalarStyle,
    pub(crate) tag: Option<Tag>,
    /// Whether `${VAR}` references in it are substituted (not for override values).
    pub(crate) substitute: bool,
}

impl Scalar {
    /// An environment override's value: a plain, untagged scalar taken literally.
    pub(crate) fn literal(text: &str) -> Self {
        Self {
            text: text.to_owned(),
            style: ScalarStyle::Plain,
            tag: None,
            substitute: false,
        }
    }

    /// The typed value of `text` (after substitution), the YAML core schema's way.
    pub(crate) fn typed(&self, text: String) -> serde_json::Value {
        let tag = self.tag.clone().map(Cow::Owned);
        match saphyr::Scalar::parse_from_cow_and_metadata(
            Cow::Owned(text),
            self.style,
            tag.as_ref(),
        ) {
            Some(saphyr::Scalar::Null) => serde_json::Value::Null,
            Some(saphyr::Scalar::Boolean(b)) => serde_json::Value::Bool(b),
            Some(saphyr::Scalar::Integer(i)) => serde_json::Value::from(i),
            Some(saphyr::Scalar::FloatingPoint(f)) => serde_json::Number::from_f64(f.into_inner())
                .map_or_else(
                    || serde_json::Value::String(f.to_string()),
                    serde_json::Value::Number,
                ),
            Some(saphyr::Scalar::String(s)) => serde_json::Value::String(s.into_owned()),
            // A core-schema tag the text does not fit (`!!int abc`): keep the text, so the
            // error is the target type's, at this key.
            None => serde_json::Value::String(self.text.clone()),
        }
    }
}

/// What a node holds.
#[derive(Debug, Clone)]
pub(crate) enum Kind {
    Scalar(Scalar),
    List(Vec<Node>),
    /// Entries in document order; keys are unique (the parser refuses duplicates).
    Map(Vec<(String, Node)>),
}

/// A value and where it was written: for a mapping's value, its key's line.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub(crate) kind: Kind,
    pub(crate) at: Location,
}

impl Node {
    pub(crate) fn empty_map(at: Location) -> Self {
        Self {
            kind: Kind::Map(Vec::new()),
            at,
        }
    }

    /// Sets `at` on this node and everything below it (an override's value).
    pub(crate) fn relocate(&mut self, at: &Location) {
        self.at = at.clone();
        match &mut self.kind {
            Kind::Scalar(_) => {}
            Kind::List(items) => items.iter_mut().for_each(|n| n.relocate(at)),
            Kind::Map(entries) => entries.iter_mut().for_each(|(_, n)| n.relocate(at)),
        }
    }
}

/// Parses the first document of `text` (an empty file is an empty mapping).
pub(crate) fn parse(text: &str) -> Result<Node, ConfigError> {
    let mut parser = saphyr_parser::Parser::new_from_str(text);
    let mut loader: YamlLoader<'_, MarkedYaml<'_>> = YamlLoader::default();
    loader.early_parse(false);
    let syntax = |e: &saphyr::ScanError| ConfigError::Syntax {
        reason: e.info().to_owned(),
        line: e.marker().line(),
        column: e.marker().col() + 1,
    };
    parser.load(&mut loader, true).map_err(|e| syntax(&e))?;
    if let Some(e) = loader.error() {
        return Err(syntax(e));
    }
    let mut documents = loader.into_documents();
    if documents.len() > 1 {
        let line = documents[1].span.start.line();
        return Err(ConfigError::Syntax {
            reason:
                "a config file holds one YAML document; remove the second `---` and what follows"
                    .into(),
            line,
            column: 1,
        });
    }
    match documents.pop() {
        None => Ok(Node::empty_map(Location::Nowhere)),
        Some(root) => {
            let mut node = convert(root, &KeyPath::root())?;
            // The top level is not on one line; errors there name no line.
            node.at = Location::Nowhere;
            Ok(node)
        }
    }
}

fn convert(yaml: MarkedYaml<'_>, path: &KeyPath) -> Result<Node, ConfigError> {
    let at = Location::Line(yaml.span.start.line());
    let kind = match yaml.data {
        YamlData::Representation(text, style, tag) => Kind::Scalar(Scalar {
            text: text.into_owned(),
            style,
            tag: tag.map(Cow::into_owned),
            substitute: true,
        }),
        YamlData::Value(value) => Kind::Scalar(Scalar {
            text: scalar_text(&value),
            style: ScalarStyle::Plain,
            tag: None,
            substitute: true,
        }),
        YamlData::Sequence(items) => Kind::List(
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| convert(item, &path.clone().index(i)))
                .collect::<Result<_, _>>()?,
        ),
        YamlData::Mapping(entries) => {
            let mut out = Vec::with_capacity(entries.len());
            for (key, value) in entries {
                let key_at = Location::Line(key.span.start.line());
                let name = match key.data {
                    YamlData::Representation(text, ..) => text.into_owned(),
                    YamlData::Value(value) => scalar_text(&value),
                    _ => {
                        return Err(ConfigError::Invalid {
                            key: path.clone(),
                            reason: "a key must be text, not a list or a mapping".into(),
                            at: key_at,
                        });
                    }
                };
                let mut node = convert(value, &path.clone().key(name.clone()))?;
                node.at = key_at;
                out.push((name, node));
            }
            Kind::Map(out)
        }
        // Tags such as `!secret` on collections carry no meaning here.
        YamlData::Tagged(_, inner) => return convert(*inner, path),
        YamlData::Alias(_) | YamlData::BadValue => {
            return Err(ConfigError::Invalid {
                key: path.clone(),
                reason: "this value cannot be read (an unresolved alias?)".into(),
                at,
            });
        }
    };
    Ok(Node { kind, at })
}

fn scalar_text(value: &saphyr::Scalar<'_>) -> String {
    match value {
        saphyr::Scalar::Null => String::new(),
        saphyr::Scalar::Boolean(b) => b.to_string(),
        saphyr::Scalar::Integer(i) => i.to_string(),
        saphyr::Scalar::FloatingPoint(f) => f.to_string(),
        saphyr::Scalar::String(s) => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scalar_at<'a>(node: &'a Node, key: &str) -> &'a Node {
        match &node.kind {
            Kind::Map(entries) => entries
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, n)| n)
                .expect("key"),
            _ => panic!("not a map"),
        }
    }

    #[test]
    fn each_value_remembers_its_key_line() {
        let root = parse("a: 1\n\nb:\n  c: x\n").expect("parse");
        assert_eq!(scalar_at(&root, "a").at, Location::Line(1));
        let b = scalar_at(&root, "b");
        assert_eq!(b.at, Location::Line(3));
        assert_eq!(scalar_at(b, "c").at, Location::Line(4));
    }

    #[test]
    fn quoted_scalars_stay_text_and_plain_ones_are_typed() {
        let root = parse("a: 5432\nb: '5432'\nc: true\nd:\ne: !!str 7\n").expect("parse");
        let typed = |key: &str| match &scalar_at(&root, key).kind {
            Kind::Scalar(s) => s.typed(s.text.clone()),
            _ => panic!("not a scalar"),
        };
        assert_eq!(typed("a"), serde_json::json!(5432));
        assert_eq!(typed("b"), serde_json::json!("5432"));
        assert_eq!(typed("c"), serde_json::json!(true));
        assert_eq!(typed("d"), serde_json::Value::Null);
        assert_eq!(typed("e"), serde_json::json!("7"));
    }

    #[test]
    fn an_empty_file_is_an_empty_mapping() {
        assert!(matches!(parse("").expect("parse").kind, Kind::Map(ref e) if e.is_empty()));
        assert!(
            matches!(parse("# only a comment\n").expect("parse").kind, Kind::Map(ref e) if e.is_empty())
        );
    }

    #[test]
    fn bad_yaml_names_its_line_and_column() {
        let err = parse("a: 1\nb: [1, 2\n").expect_err("unclosed list");
        let ConfigError::Syntax { line, .. } = err else {
            panic!("{err:?}")
        };
        assert!(line >= 2, "{line}");
    }

    #[test]
    fn a_duplicate_key_is_a_syntax_error() {
        let err = parse("a: 1\na: 2\n").expect_err("duplicate");
        assert!(
            matches!(err, ConfigError::Syntax { line: 2, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn a_second_document_is_refused() {
        let err = parse("a: 1\n---\nb: 2\n").expect_err("two documents");
        assert!(err.to_string().contains("one YAML document"), "{err}");
    }

    #[test]
    fn aliases_are_resolved() {
        let root = parse("base: &b {x: 1}\ncopy: *b\n").expect("parse");
        assert!(matches!(scalar_at(&root, "copy").kind, Kind::Map(_)));
    }
}
