//! First contact with the MongoDB of `STREAM_TEST_MONGO_URL`: a URL naming a database that
//! holds nothing yet is warned about, connection errors are one line naming the host and what
//! to do, a malformed start position names the positions a source takes, and required pre- or
//! post-images of a collection that records none fail at open.

use futures::StreamExt;
use mongodb::bson::{Document, doc};
use stream_core::{CancellationToken, Position, Probe, Source, SourceError, StartFrom};
use stream_mongo::{
    FullDocument, MongoConfig, MongoPollingSource, MongoProbe, MongoSource, MongoStore, PreImages,
};
use stream_testkit::{Server, unique_name};

use crate::support::logs::Logs;

/// The test server's URL with `db` as its path.
fn url_with_database(db: &str) -> String {
    let url = Server::Mongo.url();
    let (scheme, rest) = url.split_once("://").expect("scheme");
    let (hosts, options) = match rest.split_once('/') {
        Some((hosts, path)) => (hosts, path.split_once('?').map_or("", |(_, o)| o)),
        None => (rest, ""),
    };
    format!("{scheme}://{hosts}/{db}?{options}")
}

// A current-thread runtime: every task logs on this thread, into the capture.
#[tokio::test]
async fn mongo_url_naming_an_empty_database_is_warned_about_listing_the_databases_that_exist() {
    let client = mongodb::Client::with_uri_str(Server::Mongo.url())
        .await
        .expect("client");
    let existing = unique_name("exists");
    client
        .database(&existing)
        .collection::<Document>("t")
        .insert_one(doc! {"_id": 1})
        .await
        .expect("insert");
    let logs = Logs::capture();
    // One letter off the database that exists.
    let misspelt = format!("{existing}x");
    let config = MongoConfig::from_url(&url_with_database(&misspelt)).expect("url");
    let opened = MongoSource::new(config.clone())
        .open(StartFrom::Latest, CancellationToken::new())
        .await
        .expect("an empty database can be watched");
    drop(opened);
    let warned = logs.text();
    let line = warned
        .lines()
        .find(|l| l.contains("WARN") && l.contains(&misspelt))
        .unwrap_or_else(|| panic!("no warning naming {misspelt}: {warned}"));
    assert!(line.contains("holds no collections"), "{line}");
    assert!(
        line.contains(&existing),
        "lists the databases that exist: {line}"
    );
    let opened = MongoPollingSource::new(config, "updatedAt")
        .open(StartFrom::Latest, CancellationToken::new())
        .await
        .expect("poll");
    drop(opened);
    let polled = logs.text();
    assert_eq!(
        polled.matches("holds no collections").count(),
        2,
        "the poller warns too: {polled}"
    );
    // A database with a collection is not warned about.
    let config = MongoConfig::from_url(&url_with_database(&existing)).expect("url");
    let opened = MongoSource::new(config)
        .open(StartFrom::Latest, CancellationToken::new())
        .await
        .expect("open");
    drop(opened);
    assert_eq!(logs.text().matches("holds no collections").count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_connection_errors_are_one_line_naming_the_host_and_what_to_do() {
    let url = "mongodb://app:Sup3rSecret@127.0.0.1:1/shop?serverSelectionTimeoutMS=300";
    let config = MongoConfig::from_url(url).expect("url");
    let source = MongoSource::new(config.clone())
        .open(StartFrom::Latest, CancellationToken::new())
        .await
        .expect_err("nothing listens on port 1")
        .to_string();
    let store = MongoStore::connect(url)
        .await
        .expect_err("nothing listens on port 1")
        .to_string();
    let probe = MongoProbe::new(config)
        .ping()
        .await
        .expect_err("nothing listens on port 1");
    for (what, text) in [("source", &source), ("store", &store), ("probe", &probe)] {
        assert_eq!(text.lines().count(), 1, "{what}: {text}");
        assert!(text.contains("127.0.0.1:1"), "{what}: {text}");
        assert!(
            text.contains("no MongoDB server answered"),
            "{what}: {text}"
        );
        assert!(text.contains("within 0.3 s"), "{what}: {text}");
        assert!(text.contains("is it running"), "{what}: {text}");
        for noise in ["Topology", "labels", "Sup3rSecret", "server response"] {
            assert!(!text.contains(noise), "{what} shows `{noise}`: {text}");
        }
    }
    assert!(
        source.contains("replica set (change streams need one)"),
        "{source}"
    );
    assert_eq!(
        source.matches("127.0.0.1:1").count(),
        1,
        "the host once: {source}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_malformed_start_positions_name_the_positions_a_source_takes() {
    let mut not_a_token = Vec::new();
    doc! {"_data": "zz"}
        .to_writer(&mut not_a_token)
        .expect("bytes");
    let positions = [
        Position::MongoDb(stream_core::MongoPosition::ResumeToken(not_a_token)),
        Position::MongoDb(stream_core::MongoPosition::ResumeToken(vec![1, 2, 3])),
        "binlog:mysql-bin.000001:4+0".parse().expect("position"),
    ];
    for position in positions {
        let mut config = MongoConfig::from_url(&Server::Mongo.url()).expect("url");
        config.filter =
            stream_core::NamespaceFilter::parse(&format!("{}.t", unique_name("pos")), "")
                .expect("filter");
        let err = MongoSource::new(config)
            .open(
                StartFrom::Position(position.clone()),
                CancellationToken::new(),
            )
            .await
            .expect_err("a malformed position");
        let text = err.to_string();
        assert_eq!(err.class(), stream_core::ErrorClass::Definite, "{text}");
        assert!(!matches!(err, SourceError::ConnectionLost { .. }), "{text}");
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.contains(&position.to_string()), "{text}");
        for noise in ["RawDocumentBuf", "labels", "server response"] {
            assert!(!text.contains(noise), "shows `{noise}`: {text}");
        }
        for kind in [
            "`start`",
            "`end`",
            "`snapshot`",
            "`mongodb:",
            "`mongodb-time:1700000000.1`",
            "`mongodb-snapshot:",
        ] {
            assert!(text.contains(kind), "does not name {kind}: {text}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_required_images_of_a_collection_that_records_none_fail_at_open_naming_the_fix() {
    let client = mongodb::Client::with_uri_str(Server::Mongo.url())
        .await
        .expect("client");
    let db = unique_name("images");
    let database = client.database(&db);
    database
        .run_command(doc! {"create": "kept", "changeStreamPreAndPostImages": {"enabled": true}})
        .await
        .expect("create with images");
    database
        .run_command(doc! {"create": "plain"})
        .await
        .expect("create");
    let open = |pre: PreImages, full: FullDocument| {
        let mut config = MongoConfig::from_url(&url_with_database(&db)).expect("url");
        config.pre_images = pre;
        config.full_document = full;
        async move {
            let shutdown = CancellationToken::new();
            let opened = MongoSource::new(config)
                .open(StartFrom::Latest, shutdown.clone())
                .await?;
            // Stopped as documented: cancelled, then read to its end.
            shutdown.cancel();
            opened.batches.for_each(|_| async {}).await;
            Ok::<(), SourceError>(())
        }
    };
    for (pre, full, setting) in [
        (
            PreImages::Required,
            FullDocument::UpdateLookup,
            "pre_images",
        ),
        (PreImages::Off, FullDocument::Required, "full_document"),
    ] {
        let Err(e) = open(pre, full).await else {
            panic!("{setting}: required opened on {db}.plain, which records no images");
        };
        assert!(matches!(e, SourceError::Prerequisite { .. }), "{e:?}");
        let text = e.to_string();
        for part in [
            format!("changeStreamPreAndPostImages of {db}.plain"),
            format!("{setting}: required"),
            "collMod: \"plain\"".to_owned(),
        ] {
            assert!(text.contains(&part), "`{part}` missing from: {text}");
        }
        assert!(!text.contains("kept"), "{text}");
    }
    open(PreImages::WhenAvailable, FullDocument::WhenAvailable)
        .await
        .expect("when-available needs no images");
    database
        .run_command(doc! {"collMod": "plain", "changeStreamPreAndPostImages": {"enabled": true}})
        .await
        .expect("collMod");
    open(PreImages::Required, FullDocument::Required)
        .await
        .expect("every collection records images now");
}
