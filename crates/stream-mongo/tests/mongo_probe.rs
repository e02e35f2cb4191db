//! `MongoProbe` against the MongoDB of `STREAM_TEST_MONGO_URL`: it answers, its position moves
//! with writes, and a server that is not there is a one-line error without the password.

use mongodb::bson::{Document, doc};
use stream_core::Probe;
use stream_mongo::{MongoConfig, MongoProbe};
use stream_testkit::{Server, unique_name};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_probe_answers_and_its_position_moves_with_writes() {
    let probe = MongoProbe::new(MongoConfig::from_url(&Server::Mongo.url()).expect("url"));
    probe.ping().await.expect("ping");
    let before = probe
        .server_position()
        .await
        .expect("hello")
        .expect("a replica set reports its last write");
    let client = mongodb::Client::with_uri_str(Server::Mongo.url())
        .await
        .expect("client");
    client
        .database(&unique_name("probe"))
        .collection::<Document>("t")
        .insert_one(doc! {"_id": 1})
        .await
        .expect("insert");
    let after = probe.server_position().await.expect("hello");
    assert!(
        after.as_ref().is_some_and(|p| *p != before),
        "{before} -> {after:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_probe_of_a_missing_server_is_one_line_without_the_password() {
    let config =
        MongoConfig::from_url("mongodb://u:Sup3rSecret@127.0.0.1:1/?serverSelectionTimeoutMS=300")
            .expect("url");
    let probe = MongoProbe::new(config);
    let err = probe.ping().await.expect_err("nothing listens on port 1");
    assert!(err.contains("127.0.0.1:1"), "{err}");
    assert!(!err.contains("Sup3rSecret"), "{err}");
    assert!(!format!("{probe:?}").contains("Sup3rSecret"));
    assert_eq!(err.lines().count(), 1, "{err}");
}
