//! The `Streamer` with a MongoDB source (and a MariaDB one beside it): another client's write
//! reaches a subscriber and the cache; reads route to the database that streams the namespace.

use std::time::Duration;

use futures::StreamExt;
use mongodb::bson::{Document, doc};
use mysql_async::prelude::*;
use stream_core::{Delivery, Row, Value};
use stream_testkit::{Server, unique_name};
use ultimate_stream::Streamer;
use ultimate_stream::cache::CacheConfig;

const WAIT: Duration = Duration::from_secs(30);

fn url_with_db(url: &str, db: &str) -> String {
    // mongodb://host:port/?opts -> mongodb://host:port/<db>?opts
    match url.split_once("/?") {
        Some((base, opts)) => format!("{base}/{db}?{opts}"),
        None => format!("{}/{db}", url.trim_end_matches('/')),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_streamer_write_by_another_client_reaches_subscribers_and_the_cache() {
    let db = unique_name("mstreamer");
    let mongo_url = url_with_db(&Server::Mongo.url(), &db);
    let client = mongodb::Client::with_uri_str(Server::Mongo.url())
        .await
        .expect("client");
    let users = client.database(&db).collection::<Document>("users");
    users.insert_one(doc! {"_id": 0}).await.expect("create");
    // A MariaDB source beside it: namespaces route to the database that streams them.
    let mysql_db = unique_name("mstreamer");
    let mut c =
        mysql_async::Conn::new(mysql_async::Opts::from_url(&Server::MySql.url()).expect("url"))
            .await
            .expect("connect");
    c.query_drop(format!(
        "CREATE DATABASE `{mysql_db}`; CREATE TABLE `{mysql_db}`.t (id INT PRIMARY KEY); \
         INSERT INTO `{mysql_db}`.t VALUES (7)"
    ))
    .await
    .expect("schema");
    let streamer = Streamer::builder()
        .mongo(&mongo_url)
        .mysql(&format!("{}/{mysql_db}", Server::MySql.url()))
        .cache(CacheConfig::default())
        .start()
        .await
        .expect("start");
    let ns = format!("{db}.users");
    let key: Row = [("_id", Value::Int(1))].into_iter().collect();
    let mut subscription = streamer.subscribe(&ns).expect("subscribe");
    assert_eq!(streamer.read(&ns, &key).await.expect("read"), None);
    users
        .insert_one(doc! {"_id": 1, "name": "ann"})
        .await
        .expect("insert by another client");
    let delivered = tokio::time::timeout(WAIT, subscription.next())
        .await
        .expect("an event")
        .expect("open");
    let Delivery::Event(event) = delivered else {
        panic!("{delivered:?}")
    };
    assert_eq!(event.key.as_ref(), Some(&key));
    let doc = streamer
        .read(&ns, &key)
        .await
        .expect("read")
        .expect("document");
    assert_eq!(doc.get("name"), Some(&Value::String("ann".into())));
    let mysql_key: Row = [("id", Value::Int(7))].into_iter().collect();
    let row = streamer
        .read(&format!("{mysql_db}.t"), &mysql_key)
        .await
        .expect("read from MariaDB")
        .expect("row");
    assert_eq!(row.get("id"), Some(&Value::Int(7)));
    let err = streamer
        .read("elsewhere.x", &mysql_key)
        .await
        .expect_err("no source streams it");
    assert!(err.to_string().contains("elsewhere.x"), "{err}");
    assert_eq!(streamer.health().len(), 2);
    streamer.stop().await.expect("stop");
}
