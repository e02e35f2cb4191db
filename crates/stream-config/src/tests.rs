//! The loader end to end: every error form, substitution, overrides, secrets.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::*;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default)]
    sources: BTreeMap<String, Source>,
    #[serde(default)]
    sinks: BTreeMap<String, Sink>,
    listen: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Source {
    url: String,
    #[serde(default)]
    include: Vec<String>,
    port: Option<u16>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Sink {
    url: String,
    #[serde(default)]
    deletes: Deletes,
    #[serde(default, with = "crate::duration::option")]
    interval: Option<Duration>,
}

#[derive(Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Deletes {
    Soft,
    #[default]
    Hard,
}

const SHAPE: &str = "\
sources:
  shop:                         # a name of your choice
    url: mysql://repl:${SHOP_PASSWORD}@127.0.0.1:3306/
    include: [shop.*]
sinks:
  warehouse:
    url: postgres://etl:${PG_PASSWORD}@127.0.0.1:5432/analytics
    deletes: soft
listen: 127.0.0.1:9464
";

fn loader() -> Loader {
    Loader::new()
        .env_prefix("USTREAM")
        .vars([("SHOP_PASSWORD", "shop-pw"), ("PG_PASSWORD", "pg-pw")])
}

fn with_vars(vars: &[(&str, &str)]) -> Loader {
    Loader::new()
        .env_prefix("USTREAM")
        .vars(vars.iter().copied())
}

fn errors(loader: &Loader, text: &str) -> Vec<String> {
    loader
        .load_str::<Config>(text)
        .expect_err("should fail")
        .iter()
        .map(ToString::to_string)
        .collect()
}

fn one_error(loader: &Loader, text: &str) -> String {
    let errors = errors(loader, text);
    assert_eq!(errors.len(), 1, "{errors:?}");
    errors[0].clone()
}

#[test]
fn the_issue_shape_loads_with_its_variables_substituted() {
    let config = loader().load_str::<Config>(SHAPE).expect("loads").value;
    assert_eq!(
        config.sources["shop"].url,
        "mysql://repl:shop-pw@127.0.0.1:3306/"
    );
    assert_eq!(config.sources["shop"].include, ["shop.*"]);
    assert_eq!(config.sinks["warehouse"].deletes, Deletes::Soft);
    assert_eq!(config.listen.as_deref(), Some("127.0.0.1:9464"));
}

#[test]
fn an_unknown_key_names_its_path_and_line_and_the_key_meant() {
    let text = SHAPE.replace("    deletes: soft", "    delets: soft");
    assert_eq!(
        one_error(&loader(), &text),
        "sinks.warehouse.delets: unknown key; did you mean `deletes`? (line 8)"
    );
}

#[test]
fn an_unknown_top_level_key_lists_the_keys_allowed() {
    assert_eq!(
        one_error(&loader(), "sources: {}\ncheckpointz_dir: x\n"),
        "checkpointz_dir: unknown key; expected one of: sources, sinks, listen (line 2)"
    );
}

#[test]
fn a_missing_variable_is_named_with_its_key_and_line() {
    let loader = with_vars(&[("PG_PASSWORD", "x")]);
    assert_eq!(
        one_error(&loader, SHAPE),
        "sources.shop.url: environment variable SHOP_PASSWORD is not set; export it, or write \
         ${SHOP_PASSWORD:-default} (line 3)"
    );
}

#[test]
fn every_missing_variable_is_reported_at_once() {
    let all = errors(&with_vars(&[]), SHAPE);
    assert_eq!(all.len(), 2, "{all:?}");
    assert!(all[0].contains("SHOP_PASSWORD") && all[1].contains("PG_PASSWORD"));
}

#[test]
fn a_wrong_choice_lists_the_choices_with_its_line() {
    let text = SHAPE.replace("deletes: soft", "deletes: sfot");
    assert_eq!(
        one_error(&loader(), &text),
        "sinks.warehouse.deletes: expected soft or hard, found `sfot` (line 8)"
    );
}

#[test]
fn a_missing_key_is_reported_at_its_parents_line() {
    let text = "sources:\n  shop:\n    include: [a.b]\n";
    assert_eq!(
        one_error(&loader(), text),
        "sources.shop.url: missing; add it (line 2)"
    );
}

#[test]
fn a_missing_top_level_key_names_no_line() {
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Named {
        name: String,
    }
    let err = loader().load_str::<Named>("").expect_err("no name");
    assert_eq!(err.to_string(), "name: missing; add it");
}

#[test]
fn a_value_of_the_wrong_type_says_what_was_expected() {
    let text = "sources:\n  shop:\n    url: x\n    port: abc\n";
    assert_eq!(
        one_error(&loader(), text),
        "sources.shop.port: expected a whole number from 0 to 65535, found the text \"abc\" (line 4)"
    );
}

#[test]
fn a_number_where_text_is_expected_asks_for_quotes() {
    let text = "sources:\n  shop:\n    url: 2024\n";
    assert_eq!(
        one_error(&loader(), text),
        "sources.shop.url: expected text, found the number `2024`; put it in quotes (line 3)"
    );
}

#[test]
fn a_list_item_error_names_its_index_and_line() {
    let text = "sources:\n  shop:\n    url: x\n    include:\n      - a.b\n      - {x: 1}\n";
    assert_eq!(
        one_error(&loader(), text),
        "sources.shop.include[1]: expected text, found a mapping (line 6)"
    );
}

#[test]
fn a_document_that_is_not_a_mapping_is_refused() {
    assert_eq!(
        one_error(&loader(), "just text\n"),
        "(top level): expected a mapping, found the text \"just text\""
    );
}

#[test]
fn a_duration_without_a_unit_asks_for_one() {
    let text = "sinks:\n  w:\n    url: x\n    interval: 5\n";
    assert_eq!(
        one_error(&loader(), text),
        "sinks.w.interval: `5` needs a unit: ms, s, m, h or d (e.g. 5s) (line 4)"
    );
    let text = "sinks:\n  w:\n    url: x\n    interval: 1m30s\n";
    let config = loader().load_str::<Config>(text).expect("loads").value;
    assert_eq!(config.sinks["w"].interval, Some(Duration::from_secs(90)));
}

#[test]
fn a_plain_reference_is_typed_after_substitution_and_a_quoted_one_stays_text() {
    let text = "sources:\n  shop:\n    url: x\n    port: ${PORT}\n";
    let loaded = with_vars(&[("PORT", "3307")])
        .load_str::<Config>(text)
        .expect("loads");
    assert_eq!(loaded.value.sources["shop"].port, Some(3307));
    let quoted = "sources:\n  shop:\n    url: x\n    port: \"${PORT}\"\n";
    let err = one_error(&with_vars(&[("PORT", "3307")]), quoted);
    assert!(
        err.starts_with("sources.shop.port: expected a whole number"),
        "{err}"
    );
}

#[test]
fn a_substituted_value_is_never_echoed_in_an_error() {
    let text = "sources:\n  shop:\n    url: x\n    port: ${SECRET}\n";
    let err = one_error(&with_vars(&[("SECRET", "hunter2")]), text);
    assert!(!err.contains("hunter2"), "{err}");
    assert_eq!(
        err,
        "sources.shop.port: expected a whole number from 0 to 65535, found the text \"${SECRET}\" (line 4)"
    );
    let text = SHAPE.replace("deletes: soft", "deletes: ${DELETES}");
    let err = one_error(
        &with_vars(&[
            ("SHOP_PASSWORD", "a"),
            ("PG_PASSWORD", "b"),
            ("DELETES", "x"),
        ]),
        &text,
    );
    assert!(err.ends_with("found `${DELETES}` (line 8)"), "{err}");
}

#[test]
fn malformed_references_name_the_key() {
    let text = "sources:\n  shop:\n    url: a${PW\n";
    assert_eq!(
        one_error(&loader(), text),
        "sources.shop.url: `${` without its closing `}`; write `$${` for a literal `${` (line 3)"
    );
    let text = "sources:\n  shop:\n    url: ${9PW}\n";
    assert!(one_error(&loader(), text).contains("`${9PW}` is not a variable name"));
}

#[test]
fn an_override_replaces_a_value_and_errors_name_the_variable() {
    let loaded = with_vars(&[
        ("SHOP_PASSWORD", "a"),
        ("PG_PASSWORD", "b"),
        ("USTREAM__SINKS__WAREHOUSE__DELETES", "hard"),
    ])
    .load_str::<Config>(SHAPE)
    .expect("loads");
    assert_eq!(loaded.value.sinks["warehouse"].deletes, Deletes::Hard);
    assert_eq!(
        loaded.location(&KeyPath::of(["sinks", "warehouse", "deletes"])),
        Location::Env("USTREAM__SINKS__WAREHOUSE__DELETES".into())
    );
    let err = one_error(
        &with_vars(&[
            ("SHOP_PASSWORD", "a"),
            ("PG_PASSWORD", "b"),
            ("USTREAM__SINKS__WAREHOUSE__DELETES", "hrad"),
        ]),
        SHAPE,
    );
    assert_eq!(
        err,
        "sinks.warehouse.deletes: expected soft or hard, found `hrad` \
         (from USTREAM__SINKS__WAREHOUSE__DELETES)"
    );
}

#[test]
fn a_misspelt_override_is_an_unknown_key() {
    let err = one_error(
        &with_vars(&[
            ("SHOP_PASSWORD", "a"),
            ("PG_PASSWORD", "b"),
            ("USTREAM__SINKS__WAREHOUSE__DELETE", "hard"),
        ]),
        SHAPE,
    );
    assert_eq!(
        err,
        "sinks.warehouse.delete: unknown key; did you mean `deletes`? \
         (from USTREAM__SINKS__WAREHOUSE__DELETE)"
    );
}

#[test]
fn an_override_can_create_a_whole_entry_and_fill_an_empty_key() {
    let loaded = with_vars(&[
        ("USTREAM__SINKS__EXTRA__URL", "postgres://x/y"),
        ("USTREAM__SOURCES__SHOP__URL", "mysql://a/"),
        ("USTREAM__SOURCES__SHOP__PORT", "3306"),
    ])
    .load_str::<Config>("sources:\n  shop:\nsinks:\n")
    .expect("loads");
    assert_eq!(loaded.value.sinks["extra"].url, "postgres://x/y");
    assert_eq!(loaded.value.sources["shop"].port, Some(3306));
}

#[test]
fn an_override_value_is_a_yaml_scalar_or_flow_collection_taken_literally() {
    let loaded = with_vars(&[
        ("USTREAM__SOURCES__SHOP__URL", "mysql://u:${NOT_A_REF}@h/"),
        ("USTREAM__SOURCES__SHOP__INCLUDE", "[a.*, b.c]"),
    ])
    .load_str::<Config>("sources:\n  shop:\n    url: x\n")
    .expect("loads");
    let shop = &loaded.value.sources["shop"];
    assert_eq!(shop.url, "mysql://u:${NOT_A_REF}@h/");
    assert_eq!(shop.include, ["a.*", "b.c"]);
}

#[test]
fn an_override_reaches_into_a_list_by_index() {
    let loaded = with_vars(&[
        ("USTREAM__SOURCES__SHOP__INCLUDE__1", "x.y"),
        ("USTREAM__SOURCES__SHOP__INCLUDE__2", "z.*"),
    ])
    .load_str::<Config>("sources:\n  shop:\n    url: x\n    include: [a.b, c.d]\n")
    .expect("loads");
    assert_eq!(loaded.value.sources["shop"].include, ["a.b", "x.y", "z.*"]);
    let err = one_error(
        &with_vars(&[("USTREAM__SOURCES__SHOP__INCLUDE__7", "x")]),
        "sources:\n  shop:\n    url: x\n    include: [a.b]\n",
    );
    assert_eq!(
        err,
        "USTREAM__SOURCES__SHOP__INCLUDE__7: sources.shop.include has 1 items: index 7 is beyond its end"
    );
}

#[test]
fn an_override_fixes_a_value_whose_variable_is_missing() {
    let loaded = with_vars(&[
        ("PG_PASSWORD", "b"),
        ("USTREAM__SOURCES__SHOP__URL", "mysql://repl@h/"),
    ])
    .load_str::<Config>(SHAPE)
    .expect("the override replaces the reference");
    assert_eq!(loaded.value.sources["shop"].url, "mysql://repl@h/");
}

#[test]
fn an_override_that_cannot_apply_says_why() {
    let err = one_error(
        &with_vars(&[("USTREAM__LISTEN__PORT", "1")]),
        "listen: 127.0.0.1:1\n",
    );
    assert_eq!(
        err,
        "USTREAM__LISTEN__PORT: listen is a value, not a mapping: nothing can be set below it"
    );
    let err = one_error(&with_vars(&[("USTREAM__SINKS____URL", "1")]), "");
    assert!(
        err.starts_with("USTREAM__SINKS____URL: an empty key"),
        "{err}"
    );
    let err = one_error(&with_vars(&[("USTREAM__SOURCES", "[unclosed")]), "");
    assert!(err.starts_with("USTREAM__SOURCES: not valid YAML"), "{err}");
}

#[test]
fn variables_that_only_share_the_prefix_are_not_overrides() {
    let loaded = with_vars(&[
        ("USTREAM", "1"),
        ("USTREAMX__LISTEN", "1"),
        ("USTREAM_LOG", "x"),
    ])
    .load_str::<Config>("")
    .expect("loads");
    assert!(loaded.value.listen.is_none());
}

#[test]
fn without_a_prefix_nothing_is_overridden() {
    let loaded = Loader::new()
        .vars([("USTREAM__LISTEN", "x")])
        .load_str::<Config>("")
        .expect("loads");
    assert!(loaded.value.listen.is_none());
}

#[test]
fn the_process_environment_is_used_by_default() {
    let loaded = Loader::new()
        .load_str::<Config>("listen: ${PATH}\n")
        .expect("PATH is set");
    assert!(loaded.value.listen.is_some_and(|p| !p.is_empty()));
}

#[test]
fn bad_yaml_is_one_error_with_line_and_column() {
    let err = one_error(&loader(), "sources:\n  shop: [a\n");
    assert!(err.starts_with("not valid YAML: "), "{err}");
    assert!(err.contains("(line "), "{err}");
}

#[test]
fn files_are_read_and_a_missing_file_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ustream.yaml");
    std::fs::write(&path, "listen: 127.0.0.1:1\n").expect("write");
    let loaded = loader().load_file::<Config>(&path).expect("loads");
    assert_eq!(loaded.value.listen.as_deref(), Some("127.0.0.1:1"));
    let missing = dir.path().join("nope.yaml");
    let err = loader().load_file::<Config>(&missing).expect_err("missing");
    assert!(
        err.to_string()
            .starts_with(&format!("cannot read {}: ", missing.display())),
        "{err}"
    );
}

#[test]
fn checks_after_loading_are_located_and_scrubbed_the_same_way() {
    let loaded = loader().load_str::<Config>(SHAPE).expect("loads");
    let err = loaded.invalid(
        KeyPath::of(["sinks", "warehouse", "url"]),
        "cannot connect as etl:pg-pw",
    );
    assert_eq!(
        err.to_string(),
        "sinks.warehouse.url: cannot connect as etl:${PG_PASSWORD} (line 7)"
    );
    assert_eq!(err.key(), Some(&KeyPath::of(["sinks", "warehouse", "url"])));
    let mapped = loaded.map(|c| c.sinks.len());
    assert_eq!(mapped.value, 1);
    assert_eq!(mapped.location(&KeyPath::of(["listen"])), Location::Line(9));
}
