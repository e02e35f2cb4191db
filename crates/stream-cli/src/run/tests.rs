//! The config schema and its checks: every refusal names its key path and line.

use std::time::Duration;

use stream_core::StartFrom;

use super::config::{Deletes, Keyless, RunConfig};
use super::plan::{Checkpoints, ErrorPolicy, Plan, ReadMode, Server};
use super::{ENV_PREFIX, EXAMPLE};

const PASSWORDS: [(&str, &str); 2] = [
    ("SHOP_PASSWORD", "shop-secret"),
    ("PG_PASSWORD", "pg-secret"),
];

/// The shape the issue says must work as written.
const ISSUE_SHAPE: &str = "\
sources:
  shop:                         # a name of your choice
    url: mysql://repl:${SHOP_PASSWORD}@127.0.0.1:3306/
    include: [shop.*]
    exclude: [shop.audit_log]
    from: snapshot              # snapshot | start | end | <position>: used when no checkpoint exists
sinks:
  warehouse:
    url: postgres://etl:${PG_PASSWORD}@127.0.0.1:5432/analytics
    sources: [shop]             # which sources feed this sink (default: all)
    schema: shop                # target schema (default: the source database's name)
    deletes: soft               # soft | hard (default hard)
checkpoints: postgres           # postgres: in each sink's database, same transaction | a directory
listen: 127.0.0.1:9464          # optional HTTP: /metrics, /health, /stats
";

fn plan_with(text: &str, vars: &[(&str, &str)]) -> Result<Plan, Vec<String>> {
    let loaded = stream_config::Loader::new()
        .env_prefix(ENV_PREFIX)
        .vars(vars.iter().copied())
        .load_str::<RunConfig>(text)
        .map_err(|e| e.iter().map(ToString::to_string).collect::<Vec<_>>())?;
    Plan::new(&loaded).map_err(|e| e.iter().map(ToString::to_string).collect())
}

fn plan(text: &str) -> Result<Plan, Vec<String>> {
    plan_with(text, &PASSWORDS)
}

/// The only error `text` gives.
fn refusal(text: &str) -> String {
    let errors = plan(text).err().expect("should be refused");
    assert_eq!(errors.len(), 1, "{errors:#?}");
    let error = errors[0].clone();
    assert!(!error.contains("secret"), "a password in {error}");
    error
}

fn with_sink(sink_lines: &str) -> String {
    format!(
        "sources:\n  shop:\n    url: mysql://repl@127.0.0.1:3306/\nsinks:\n  warehouse:\n    url: postgres://etl@127.0.0.1/analytics\n{sink_lines}"
    )
}

fn with_source(source_lines: &str) -> String {
    format!("sources:\n  shop:\n{source_lines}")
}

#[test]
fn the_issue_shape_works_as_written() {
    let plan = plan(ISSUE_SHAPE).expect("valid");
    assert_eq!(plan.sources.len(), 1);
    let shop = &plan.sources[0];
    assert_eq!(shop.name, "shop");
    assert_eq!(shop.from, StartFrom::Snapshot);
    assert_eq!(shop.mode, ReadMode::Stream);
    let Server::MySql(config) = &shop.server else {
        panic!("a MySQL source")
    };
    assert_eq!(config.password, "shop-secret");
    assert!(config.wants("shop", "orders") && !config.wants("shop", "audit_log"));
    assert_eq!(
        config.reconnect_for,
        Duration::ZERO,
        "the streamer reconnects"
    );
    let warehouse = &plan.sinks[0];
    assert_eq!(warehouse.sources, ["shop"]);
    assert_eq!(warehouse.schema.as_deref(), Some("shop"));
    assert_eq!(warehouse.deletes, Deletes::Soft);
    assert_eq!(warehouse.keyless, Keyless::Refuse);
    assert_eq!(warehouse.on_error, ErrorPolicy::Stop);
    assert_eq!(plan.checkpoints, Checkpoints::Postgres);
    assert_eq!(plan.listen.as_deref(), Some("127.0.0.1:9464"));
    assert_eq!(
        plan.summary(),
        "1 source: shop (mysql stream from snapshot); 1 sink: warehouse (postgres <- shop); \
         checkpoints in postgres; HTTP on 127.0.0.1:9464"
    );
}

#[test]
fn the_init_example_is_valid() {
    let plan = plan(EXAMPLE).expect("ustream init's example validates");
    assert_eq!(plan.sources.len(), 1);
    assert_eq!(plan.sinks.len(), 1);
}

#[test]
fn every_sink_default_is_applied() {
    let plan = plan(&with_sink("")).expect("valid");
    let sink = &plan.sinks[0];
    assert_eq!(sink.sources, ["shop"], "all sources by default");
    assert_eq!(sink.schema, None);
    assert_eq!(sink.deletes, Deletes::Hard);
    assert_eq!(
        plan.checkpoints,
        Checkpoints::Postgres,
        "postgres when every sink is"
    );
    assert!(plan.listen.is_none());
}

#[test]
fn an_override_from_the_environment_wins_and_is_named_in_errors() {
    let mut vars = PASSWORDS.to_vec();
    vars.push(("USTREAM__SINKS__WAREHOUSE__DELETES", "hard"));
    let plan = plan_with(ISSUE_SHAPE, &vars).expect("valid");
    assert_eq!(plan.sinks[0].deletes, Deletes::Hard);
    vars.push(("USTREAM__SINKS__WAREHOUSE__SOURCES", "[shop, shpo]"));
    let errors = plan_with(ISSUE_SHAPE, &vars).err().expect("unknown source");
    assert_eq!(
        errors,
        [
            "sinks.warehouse.sources[1]: no source is named `shpo`; the sources are: shop \
          (from USTREAM__SINKS__WAREHOUSE__SOURCES)"
        ]
    );
}

#[test]
fn an_unknown_key_is_refused_with_its_line() {
    let text = ISSUE_SHAPE.replace("    deletes: soft", "    delete: soft");
    assert_eq!(
        refusal(&text),
        "sinks.warehouse.delete: unknown key; did you mean `deletes`? (line 12)"
    );
}

#[test]
fn a_wrong_choice_lists_the_right_ones() {
    let text = ISSUE_SHAPE.replace("deletes: soft ", "deletes: gentle");
    assert_eq!(
        refusal(&text),
        "sinks.warehouse.deletes: expected soft or hard, found `gentle` (line 12)"
    );
    assert_eq!(
        refusal(&with_sink("    on_error: retry\n")),
        "sinks.warehouse.on_error: expected stop or dead-letter, found `retry` (line 7)"
    );
}

#[test]
fn a_missing_variable_names_itself_and_its_key() {
    let errors = plan_with(ISSUE_SHAPE, &[("SHOP_PASSWORD", "x")])
        .err()
        .expect("missing");
    assert_eq!(
        errors,
        [
            "sinks.warehouse.url: environment variable PG_PASSWORD is not set; export it, or \
          write ${PG_PASSWORD:-default} (line 9)"
        ]
    );
}

#[test]
fn a_sink_fed_by_an_unknown_source_names_it() {
    assert_eq!(
        refusal(&with_sink("    sources: [shop, billing]\n")),
        "sinks.warehouse.sources[1]: no source is named `billing`; the sources are: shop (line 7)"
    );
    assert_eq!(
        refusal(&with_sink("    sources: []\n")),
        "sinks.warehouse.sources: lists no source; remove the key to take every source (line 7)"
    );
}

#[test]
fn sink_kinds_not_supported_yet_are_refused_by_name() {
    let text = with_sink("").replace(
        "postgres://etl@127.0.0.1/analytics",
        "nats://127.0.0.1:4222",
    );
    assert_eq!(
        refusal(&text),
        "sinks.warehouse.url: nats:// sinks are not supported yet; postgres:// is (line 6)"
    );
    let text = with_sink("").replace("postgres://etl@127.0.0.1/analytics", "redis://127.0.0.1");
    assert!(
        refusal(&text).starts_with("sinks.warehouse.url: redis:// sinks are not supported yet")
    );
    let text = with_sink("").replace("postgres://etl@127.0.0.1/analytics", "mysql://u@h/");
    assert!(refusal(&text).contains("mysql:// and mongodb:// are sources"));
}

#[test]
fn a_bad_url_is_refused_without_its_password() {
    let text = with_source("    url: mysql://repl:${SHOP_PASSWORD}@127.0.0.1:33o6/\n");
    assert_eq!(
        refusal(&text),
        "sources.shop.url: invalid MySQL URL (mysql://repl:***@127.0.0.1:33o6/): port `33o6` \
         is not a number from 1 to 65535 (line 3)"
    );
    let text = with_sink("").replace(
        "postgres://etl@127.0.0.1/analytics",
        "postgres://etl:${PG_PASSWORD}@127.0.0.1:54x2/analytics",
    );
    let error = refusal(&text);
    assert!(
        error.starts_with("sinks.warehouse.url: not a valid PostgreSQL URL (postgres://etl:***@"),
        "{error}"
    );
    assert_eq!(
        refusal(&with_source("    url: postgres://h/db\n")),
        "sources.shop.url: expected a mysql://, mariadb:// or mongodb:// URL; postgres:// is a \
         sink: put it under `sinks` (line 3)"
    );
    assert!(
        refusal(&with_source("    url: localhost\n")).starts_with("sources.shop.url: not a URL")
    );
}

#[test]
fn patterns_and_positions_are_checked() {
    let text = with_source("    url: mysql://u@h/\n    include: [shop.*, 'a b']\n");
    assert!(
        refusal(&text).starts_with("sources.shop.include[1]: patterns cannot contain whitespace"),
        "{}",
        refusal(&text)
    );
    let text = with_source("    url: mysql://u@h/\n    from: yesterday\n");
    let error = refusal(&text);
    assert!(
        error.starts_with("sources.shop.from: expected snapshot, start, end or a position"),
        "{error}"
    );
    assert!(error.ends_with("(line 4)"), "{error}");
    let text = with_source("    url: mysql://u@h/\n    from: end\n");
    assert_eq!(
        plan(&text).expect("valid").sources[0].from,
        StartFrom::Latest
    );
}

#[test]
fn mongodb_full_document_off_is_refused_with_the_reason() {
    let text = with_source("    url: mongodb://127.0.0.1/app\n    full_document: off\n");
    assert_eq!(
        refusal(&text),
        "sources.shop.full_document: `off` is refused: a pipeline to a table needs each update's \
         full document; use update-lookup (the default), when-available or required (line 4)"
    );
    let text = with_source("    url: mongodb://127.0.0.1/app\n");
    let plan = plan(&text).expect("valid");
    let Server::Mongo(config) = &plan.sources[0].server else {
        panic!("a MongoDB source")
    };
    assert_eq!(
        config.full_document,
        stream_mongo::FullDocument::UpdateLookup
    );
}

#[test]
fn settings_of_another_kind_of_source_are_refused() {
    let text = with_source("    url: mysql://u@h/\n    full_document: required\n");
    assert_eq!(
        refusal(&text),
        "sources.shop.full_document: only for MongoDB sources (line 4)"
    );
    let text = with_source("    url: mongodb://h/app\n    server_id: 7\n");
    assert_eq!(
        refusal(&text),
        "sources.shop.server_id: only for MySQL/MariaDB sources (line 4)"
    );
}

#[test]
fn polling_needs_a_column_and_runs_on_an_interval_or_a_cron_schedule() {
    let text = with_source("    url: mysql://u@h/\n    mode: poll\n");
    assert!(refusal(&text).starts_with("sources.shop.column: missing; `mode: poll`"));
    let text = with_source(
        "    url: mysql://u@h/\n    mode: poll\n    column: updated_at\n    schedule: '*/61 * * * *'\n",
    );
    assert_eq!(
        refusal(&text),
        "sources.shop.schedule: cron expression `*/61 * * * *`: minute: step 61 is larger than 59 (line 6)"
    );
    let text = with_source(
        "    url: mysql://u@h/\n    mode: poll\n    column: updated_at\n    interval: 5s\n    schedule: '@hourly'\n",
    );
    assert!(
        refusal(&text)
            .starts_with("sources.shop.schedule: set either `interval` or `schedule`, not both")
    );
    let text = with_source("    url: mysql://u@h/\n    interval: 5s\n");
    assert_eq!(
        refusal(&text),
        "sources.shop.interval: only used with `mode: poll` (line 4)"
    );
    let text = with_source(
        "    url: mongodb://h/app\n    mode: poll\n    column: updatedAt\n    interval: 1m\n",
    );
    let plan = plan(&text).expect("valid");
    assert_eq!(
        plan.sources[0].mode,
        ReadMode::Poll {
            column: "updatedAt".into(),
            schedule: stream_core::PollSchedule::Every(Duration::from_secs(60)),
            safety_lag: Duration::from_secs(1),
        }
    );
    let text = with_source(
        "    url: mongodb://h/app\n    mode: poll\n    column: updatedAt\n    schedule: '*/5 * * * *'\n",
    );
    let scheduled = self::plan(&text).expect("valid");
    assert_eq!(
        scheduled.sources[0].mode,
        ReadMode::Poll {
            column: "updatedAt".into(),
            schedule: stream_core::PollSchedule::Cron("*/5 * * * *".parse().expect("cron")),
            safety_lag: Duration::from_secs(1),
        }
    );
    assert_eq!(
        refusal(&with_source("    url: mysql://u@h/\n    mode: batch\n")),
        "sources.shop.mode: expected stream or poll, found `batch` (line 4)"
    );
}

#[test]
fn dead_letters_go_with_on_error_dead_letter() {
    assert!(
        refusal(&with_sink("    on_error: dead-letter\n")).starts_with(
            "sinks.warehouse.dead_letters: missing; `on_error: dead-letter` needs a file"
        )
    );
    assert_eq!(
        refusal(&with_sink("    dead_letters: x.jsonl\n")),
        "sinks.warehouse.dead_letters: only used with `on_error: dead-letter` (line 7)"
    );
    let plan = plan(&with_sink(
        "    on_error: dead-letter\n    dead_letters: w.jsonl\n",
    ))
    .expect("valid");
    assert_eq!(
        plan.sinks[0].on_error,
        ErrorPolicy::DeadLetter {
            file: "w.jsonl".into()
        }
    );
}

#[test]
fn columns_are_for_sinks_fed_by_mongodb() {
    let columns = "    columns:\n      customer: {path: customer.name, type: text}\n";
    assert_eq!(
        refusal(&with_sink(columns)),
        "sinks.warehouse.columns: only for sinks fed by MongoDB sources (MySQL rows bring their \
         own columns) (line 7)"
    );
    let mongo = with_sink(columns).replace("mysql://repl@127.0.0.1:3306/", "mongodb://h/app");
    let plan = plan(&mongo).expect("valid");
    assert_eq!(plan.sinks[0].columns[0].0, "customer");
    assert_eq!(plan.sinks[0].columns[0].1.sql_type, "text");
    let bad = mongo.replace("type: text", "type: 'text; drop table x'");
    assert!(
        refusal(&bad)
            .starts_with("sinks.warehouse.columns.customer.type: expected a PostgreSQL type")
    );
    let unknown = mongo.replace("type: text", "type: text, nullable: true");
    assert!(
        refusal(&unknown).starts_with("sinks.warehouse.columns.customer.nullable: unknown key")
    );
}

#[test]
fn checkpoints_fit_the_sinks() {
    let text = "sources:\n  shop:\n    url: mysql://u@h/\ncheckpoints: postgres\n";
    assert!(refusal(text).starts_with(
        "checkpoints: `postgres` keeps each position in its sink's database, and there is no sink"
    ));
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("file");
    std::fs::write(&file, "").expect("write");
    let text = format!(
        "sources:\n  shop:\n    url: mysql://u@h/\ncheckpoints: {}\n",
        file.display()
    );
    assert!(refusal(&text).contains("is a file; checkpoints need a directory"));
    let text = format!("{}checkpoints: {}\n", with_sink(""), dir.path().display());
    assert_eq!(
        plan(&text).expect("valid").checkpoints,
        Checkpoints::Directory(dir.path().to_owned())
    );
    let text = "sources:\n  shop:\n    url: mysql://u@h/\n";
    assert_eq!(plan(text).expect("valid").checkpoints, Checkpoints::None);
}

#[test]
fn listen_needs_a_host_and_port() {
    let base = "sources:\n  shop:\n    url: mysql://u@h/\n";
    for bad in ["9464", "localhost", ":9464", "h:99999"] {
        let error = refusal(&format!("{base}listen: '{bad}'\n"));
        assert!(
            error.starts_with("listen: expected host:port"),
            "{bad}: {error}"
        );
    }
    assert!(refusal(&format!("{base}listen: ::1:9464\n")).contains("needs brackets"));
    for good in ["localhost:9464", "[::1]:9464", "0.0.0.0:0"] {
        assert!(plan(&format!("{base}listen: '{good}'\n")).is_ok(), "{good}");
    }
}

#[test]
fn a_config_needs_a_source_and_names_that_fit() {
    assert_eq!(
        refusal("listen: 127.0.0.1:1\n"),
        "sources: at least one source is needed, e.g. `sources: {shop: {url: mysql://...}}`"
    );
    assert_eq!(
        refusal("sources:\n  'my shop':\n    url: mysql://u@h/\n"),
        "sources.my shop: a name holds 1 to 63 letters, digits, `-` and `_` (line 2)"
    );
}

#[test]
fn every_error_of_a_file_is_reported_at_once() {
    let text = "\
sources:
  shop:
    url: mysql://u@h/
    include: ['a b']
    mode: poll
sinks:
  warehouse:
    url: nats://h
    sources: [nope]
listen: nowhere
";
    let errors = plan(text).err().expect("invalid");
    let keys: Vec<&str> = errors
        .iter()
        .map(|e| e.split(':').next().unwrap_or_default())
        .collect();
    assert_eq!(
        keys,
        [
            "sources.shop.include[0]",
            "sources.shop.column",
            "sinks.warehouse.url",
            "sinks.warehouse.sources[0]",
            "listen"
        ],
        "{errors:#?}"
    );
}
