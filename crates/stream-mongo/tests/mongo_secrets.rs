//! No part of a password (one holding a raw `?`, which the driver would split into hosts and
//! options, and the same percent-encoded) nor an `authMechanismProperties` session token
//! appears in any error, log line or `Debug` output of the config, the sources, the store or
//! the probe, against the MongoDB of `STREAM_TEST_MONGO_URL`.

use std::time::Duration;

use crate::support::logs::Logs;
use stream_core::{CancellationToken, NamespaceFilter, Probe, Source, StartFrom};
use stream_mongo::{MongoConfig, MongoPollingSource, MongoProbe, MongoSource, MongoStore};
use stream_testkit::{Server, unique_name};

/// The password `Pa55?Wd9xQ`: its parts on either side of the `?`.
const PASSWORD_PARTS: [&str; 2] = ["Pa55", "Wd9xQ"];
const TOKEN: &str = "FwoGZXIvYXdzEXAMPLEt0ken";

#[track_caller]
fn assert_hidden(what: &str, text: &str) {
    for secret in PASSWORD_PARTS.iter().chain([&TOKEN]) {
        assert!(!text.contains(secret), "{what} shows `{secret}`: {text}");
    }
}

/// `host:port` of the test server.
fn server() -> String {
    let url = Server::Mongo.url();
    let rest = url.split_once("://").expect("scheme").1;
    let rest = rest.rsplit_once('@').map_or(rest, |(_, hosts)| hosts);
    rest.split(['/', '?']).next().expect("hosts").to_owned()
}

// A current-thread runtime: every task logs on this thread, into the capture.
#[tokio::test]
async fn mongo_secrets_never_appear_in_errors_logs_or_debug_output() {
    let logs = Logs::capture();
    let host = server();
    let options = format!(
        "directConnection=true&serverSelectionTimeoutMS=10000&authMechanismProperties=AWS_SESSION_TOKEN:{TOKEN}"
    );

    // A raw `?` in the password: refused before the driver sees it, without quoting it.
    let raw = format!("mongodb://app:Pa55?Wd9xQ@{host}/shop?{options}");
    let err = MongoConfig::from_url(&raw).expect_err("a raw `?` in the password");
    assert!(err.to_string().contains("%3F"), "{err}");
    assert_hidden("the config error", &format!("{err} {err:?}"));
    let err = MongoStore::connect(&raw).await.expect_err("store");
    assert_hidden("the store error", &format!("{err} {err:?}"));

    // Percent-encoded, the password reaches the server, which refuses it.
    let encoded = format!("mongodb://app:Pa55%3FWd9xQ@{host}/shop?{options}");
    let mut config = MongoConfig::from_url(&encoded).expect("encoded password");
    config.filter = NamespaceFilter::parse("shop.orders", "").expect("filter");
    config.reconnect_for = Duration::ZERO;
    assert_hidden("the config", &format!("{config:?} {}", config.shown()));
    let mut source = MongoSource::new(config.clone());
    assert_hidden("the source", &format!("{source:?}"));
    let err = source
        .open(StartFrom::Latest, CancellationToken::new())
        .await
        .expect_err("wrong password");
    assert_hidden("the source error", &format!("{err} {err:?}"));
    let mut poller = MongoPollingSource::new(config.clone(), "updatedAt");
    assert_hidden("the poller", &format!("{poller:?}"));
    let err = poller
        .open(StartFrom::Latest, CancellationToken::new())
        .await
        .expect_err("wrong password");
    assert_hidden("the poller error", &format!("{err} {err:?}"));
    let err = MongoStore::connect(&encoded).await.expect_err("store");
    assert_hidden("the store error", &format!("{err} {err:?}"));
    let probe = MongoProbe::new(config);
    assert_hidden("the probe", &format!("{probe:?}"));
    let err = probe.ping().await.expect_err("wrong password");
    assert_hidden("the probe error", &err);

    // Without credentials the server lets us in; the token is still in the URI.
    let open = format!("mongodb://{host}/?{options}");
    let store = MongoStore::connect(&open).await.expect("store");
    assert_hidden("the store", &format!("{store:?}"));
    let mut config = MongoConfig::from_url(&open).expect("url");
    config.filter =
        NamespaceFilter::parse(&format!("{}.*", unique_name("none")), "").expect("filter");
    let opened = MongoPollingSource::new(config.clone(), "updatedAt")
        .open(StartFrom::Latest, CancellationToken::new())
        .await
        .expect("poll nothing");
    drop(opened);

    let logged = logs.text();
    assert!(
        logged.contains(&host),
        "the URI was logged (shown redacted): {logged}"
    );
    assert_hidden("the log", &logged);
    assert!(
        !logged.contains("MongoDB server lost"),
        "a refused login is not a lost server: {logged}"
    );
}
