//! The environment's part: `${VAR}` references in values, and `PREFIX__A__B=value` overrides.

use std::collections::BTreeMap;

use crate::error::ConfigError;
use crate::origin::{Origins, Secret};
use crate::path::{KeyPath, Location};
use crate::tree::{Kind, Node, Scalar};

/// The variables a document is resolved against; `None` for a value that is not UTF-8.
pub(crate) type Vars = BTreeMap<String, Option<String>>;

/// The process environment (variables whose name is not UTF-8 cannot be referenced).
pub(crate) fn process_vars() -> Vars {
    std::env::vars_os()
        .filter_map(|(name, value)| Some((name.into_string().ok()?, value.into_string().ok())))
        .collect()
}

/// Why a `${...}` reference could not be substituted.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ReferenceError {
    Missing(String),
    NotUnicode(String),
    Unterminated,
    BadName(String),
}

/// `text` with `${NAME}` and `${NAME:-default}` replaced (`$${` is a literal `${`), and the
/// environment values put in (defaults are not secrets: they are in the file).
pub(crate) fn substitute(text: &str, vars: &Vars) -> Result<(String, Vec<Secret>), ReferenceError> {
    let mut out = String::with_capacity(text.len());
    let mut secrets = Vec::new();
    let mut rest = text;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        let after = &rest[dollar..];
        if let Some(literal) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = literal;
            continue;
        }
        let Some(reference) = after.strip_prefix("${") else {
            out.push('$');
            rest = &after[1..];
            continue;
        };
        let Some(end) = reference.find('}') else {
            return Err(ReferenceError::Unterminated);
        };
        let (name, default) = match reference[..end].split_once(":-") {
            Some((name, default)) => (name, Some(default)),
            None => (&reference[..end], None),
        };
        let valid = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(ReferenceError::BadName(name.to_owned()));
        }
        match (vars.get(name), default) {
            (Some(Some(value)), Some(default)) if value.is_empty() => out.push_str(default),
            (Some(Some(value)), _) => {
                out.push_str(value);
                secrets.push(Secret {
                    variable: name.to_owned(),
                    value: value.clone(),
                });
            }
            (Some(None), _) => return Err(ReferenceError::NotUnicode(name.to_owned())),
            (None, Some(default)) => out.push_str(default),
            (None, None) => return Err(ReferenceError::Missing(name.to_owned())),
        }
        rest = &reference[end + 1..];
    }
    out.push_str(rest);
    Ok((out, secrets))
}

/// The typed document and where each of its values came from; every reference error found.
pub(crate) fn resolve(
    root: &Node,
    vars: &Vars,
) -> Result<(serde_json::Value, Origins), Vec<ConfigError>> {
    let mut origins = Origins::default();
    let mut errors = Vec::new();
    let value = resolve_node(root, &KeyPath::root(), vars, &mut origins, &mut errors);
    if errors.is_empty() {
        Ok((value, origins))
    } else {
        Err(errors)
    }
}

fn resolve_node(
    node: &Node,
    path: &KeyPath,
    vars: &Vars,
    origins: &mut Origins,
    errors: &mut Vec<ConfigError>,
) -> serde_json::Value {
    match &node.kind {
        Kind::Scalar(scalar) => {
            let (text, secrets) = if scalar.substitute {
                match substitute(&scalar.text, vars) {
                    Ok(done) => done,
                    Err(e) => {
                        errors.push(reference_error(e, path, &node.at));
                        (String::new(), Vec::new())
                    }
                }
            } else {
                (scalar.text.clone(), Vec::new())
            };
            origins.record(path.clone(), node.at.clone(), secrets);
            scalar.typed(text)
        }
        Kind::List(items) => {
            origins.record(path.clone(), node.at.clone(), Vec::new());
            let values = items
                .iter()
                .enumerate()
                .map(|(i, item)| resolve_node(item, &path.clone().index(i), vars, origins, errors))
                .collect();
            serde_json::Value::Array(values)
        }
        Kind::Map(entries) => {
            origins.record(path.clone(), node.at.clone(), Vec::new());
            let map = entries
                .iter()
                .map(|(key, value)| {
                    let value =
                        resolve_node(value, &path.clone().key(key.clone()), vars, origins, errors);
                    (key.clone(), value)
                })
                .collect();
            serde_json::Value::Object(map)
        }
    }
}

fn reference_error(error: ReferenceError, key: &KeyPath, at: &Location) -> ConfigError {
    let (key, at) = (key.clone(), at.clone());
    match error {
        ReferenceError::Missing(variable) => ConfigError::MissingVariable { key, variable, at },
        ReferenceError::NotUnicode(variable) => ConfigError::BadReference {
            key,
            reason: format!("environment variable {variable} is not valid UTF-8"),
            at,
        },
        ReferenceError::Unterminated => ConfigError::BadReference {
            key,
            reason: "`${` without its closing `}`; write `$${` for a literal `${`".into(),
            at,
        },
        ReferenceError::BadName(name) => ConfigError::BadReference {
            key,
            reason: format!(
                "`${{{name}}}` is not a variable name (letters, digits and _, not starting with a digit)"
            ),
            at,
        },
    }
}

/// Applies every `PREFIX__A__B=value` variable to the document, in name order. Each step
/// matches an existing key regardless of case (and of `-` against `_`); a missing one is
/// created in lower case, so a misspelt override is reported as an unknown key.
pub(crate) fn apply_overrides(root: &mut Node, prefix: &str, vars: &Vars) -> Vec<ConfigError> {
    let lead = format!("{prefix}__");
    let mut errors = Vec::new();
    for (variable, value) in vars.range(lead.clone()..) {
        let Some(rest) = variable.strip_prefix(&lead) else {
            break;
        };
        let fail = |reason: String| ConfigError::Override {
            variable: variable.clone(),
            reason,
        };
        let Some(value) = value else {
            errors.push(fail("the value is not valid UTF-8".into()));
            continue;
        };
        let steps: Vec<&str> = rest.split("__").collect();
        if steps.iter().any(|s| s.is_empty()) {
            errors.push(fail(
                "an empty key between two `__`; separate keys with exactly two underscores".into(),
            ));
            continue;
        }
        let at = Location::Env(variable.clone());
        match override_value(value, &at) {
            Ok(node) => {
                if let Err(reason) = set(root, &KeyPath::root(), &steps, node, &at) {
                    errors.push(fail(reason));
                }
            }
            Err(reason) => errors.push(fail(reason)),
        }
    }
    errors
}

/// An override's value: a YAML scalar, or a flow list or mapping (`[a, b]`, `{k: v}`); taken
/// literally (no `${VAR}` substitution: it already comes from the environment).
fn override_value(value: &str, at: &Location) -> Result<Node, String> {
    let trimmed = value.trim_start();
    let mut node = if trimmed.starts_with('[') || trimmed.starts_with('{') {
        crate::tree::parse(value).map_err(|e| e.to_string())?
    } else {
        Node {
            kind: Kind::Scalar(Scalar::literal(value)),
            at: at.clone(),
        }
    };
    node.relocate(at);
    literal(&mut node);
    Ok(node)
}

fn literal(node: &mut Node) {
    match &mut node.kind {
        Kind::Scalar(scalar) => scalar.substitute = false,
        Kind::List(items) => items.iter_mut().for_each(literal),
        Kind::Map(entries) => entries.iter_mut().for_each(|(_, n)| literal(n)),
    }
}

fn set(
    node: &mut Node,
    path: &KeyPath,
    steps: &[&str],
    value: Node,
    at: &Location,
) -> Result<(), String> {
    let Some((step, rest)) = steps.split_first() else {
        *node = value;
        return Ok(());
    };
    if matches!(&node.kind, Kind::Scalar(s) if s.text.is_empty()) {
        // `sinks:` with nothing under it: an override may fill it.
        *node = Node::empty_map(at.clone());
    }
    match &mut node.kind {
        Kind::Map(entries) => {
            let matching: Vec<usize> = entries
                .iter()
                .enumerate()
                .filter(|(_, (key, _))| same_key(key, step))
                .map(|(i, _)| i)
                .collect();
            let index = match matching.as_slice() {
                [one] => *one,
                [] => {
                    entries.push((step.to_ascii_lowercase(), Node::empty_map(at.clone())));
                    entries.len() - 1
                }
                several => {
                    let names: Vec<&str> = several.iter().map(|i| entries[*i].0.as_str()).collect();
                    return Err(format!(
                        "`{step}` matches several keys of {path}: {}",
                        names.join(", ")
                    ));
                }
            };
            let (key, child) = &mut entries[index];
            let child_path = path.clone().key(key.clone());
            set(child, &child_path, rest, value, at)
        }
        Kind::List(items) => {
            let len = items.len();
            let index: usize = step.parse().map_err(|_| {
                format!("{path} is a list: the next step must be an index, not `{step}`")
            })?;
            if index == len {
                items.push(Node::empty_map(at.clone()));
            }
            let child = items.get_mut(index).ok_or_else(|| {
                format!("{path} has {len} items: index {index} is beyond its end")
            })?;
            set(child, &path.clone().index(index), rest, value, at)
        }
        Kind::Scalar(_) => Err(format!(
            "{path} is a value, not a mapping: nothing can be set below it"
        )),
    }
}

/// `DEAD_LETTERS` names `dead_letters` and `dead-letters`.
fn same_key(key: &str, step: &str) -> bool {
    key.len() == step.len()
        && key
            .chars()
            .zip(step.chars())
            .all(|(k, s)| k.eq_ignore_ascii_case(&s) || (k == '-' && s == '_'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vars {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Some((*v).to_owned())))
            .collect()
    }

    #[test]
    fn references_are_replaced_and_remembered_as_secrets() {
        let (text, secrets) = substitute(
            "u:${PW}@h/${DB}",
            &vars(&[("PW", "s3cret"), ("DB", "shop")]),
        )
        .expect("ok");
        assert_eq!(text, "u:s3cret@h/shop");
        assert_eq!(secrets.len(), 2);
        assert_eq!(secrets[0].variable, "PW");
    }

    #[test]
    fn defaults_escapes_and_bare_dollars() {
        let none = vars(&[("EMPTY", "")]);
        assert_eq!(substitute("${X:-5s}", &none).expect("ok").0, "5s");
        assert_eq!(substitute("${EMPTY:-d}", &none).expect("ok").0, "d");
        assert_eq!(
            substitute("$${X} $HOME a$b$", &none).expect("ok").0,
            "${X} $HOME a$b$"
        );
        assert!(substitute("${X:-d}", &none).expect("ok").1.is_empty());
    }

    #[test]
    fn malformed_references_are_errors() {
        let none = Vars::new();
        assert_eq!(substitute("${X", &none), Err(ReferenceError::Unterminated));
        assert_eq!(
            substitute("${1X}", &none),
            Err(ReferenceError::BadName("1X".into()))
        );
        assert_eq!(
            substitute("${}", &none),
            Err(ReferenceError::BadName(String::new()))
        );
        assert_eq!(
            substitute("${NOPE}", &none),
            Err(ReferenceError::Missing("NOPE".into()))
        );
        let not_utf8: Vars = [("X".to_owned(), None)].into_iter().collect();
        assert_eq!(
            substitute("${X}", &not_utf8),
            Err(ReferenceError::NotUnicode("X".into()))
        );
    }

    #[test]
    fn override_steps_match_keys_regardless_of_case_and_dashes() {
        assert!(same_key("dead-letters", "DEAD_LETTERS"));
        assert!(same_key("on_error", "ON_ERROR"));
        assert!(!same_key("deletes", "DELETE"));
    }
}
