//! MongoDB → PostgreSQL through `ustream run`: inserts, updates and deletes of documents land
//! as rows (`_id`, `doc`, extracted columns).

use std::time::Duration;

use mongodb::bson::{Document, doc};
use stream_testkit::{Server, unique_name};

use super::support::{Running, postgres, wait_for, write_config};

/// `mongodb-time:<t>.<i>` of the deployment now.
async fn now(client: &mongodb::Client) -> String {
    let hello = client
        .database("admin")
        .run_command(doc! {"hello": 1})
        .await
        .expect("hello");
    let ts = hello
        .get_timestamp("operationTime")
        .or_else(|_| {
            hello
                .get_document("$clusterTime")
                .and_then(|c| c.get_timestamp("clusterTime"))
        })
        .expect("cluster time");
    format!("mongodb-time:{}.{}", ts.time, ts.increment)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_to_postgres_applies_inserts_updates_and_deletes() {
    let client = mongodb::Client::with_uri_str(Server::Mongo.url())
        .await
        .expect("client");
    let pg = postgres().await;
    let db = unique_name("mpg");
    let start = now(&client).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(
        dir.path(),
        &format!(
            "sources:\n  {db}:\n    url: '{}'\n    include: ['{db}.*']\n    from: '{start}'\n\
             sinks:\n  replica:\n    url: '{}'\n    columns:\n      total: {{path: amount.total, type: numeric}}\n\
             checkpoints: postgres\n",
            Server::Mongo.url(),
            Server::Postgres.url(),
        ),
    );
    let mut running = Running::start(&config);
    running.line_starting("ustream: running 1 source", Duration::from_secs(60));
    let orders = client.database(&db).collection::<Document>("orders");
    for (id, total) in [("a", 10), ("b", 20), ("c", 30)] {
        orders
            .insert_one(doc! {"_id": id, "name": format!("n-{id}"), "amount": {"total": total}})
            .await
            .expect("insert");
    }
    orders
        .update_one(
            doc! {"_id": "b"},
            doc! {"$set": {"name": "two", "amount.total": 21}},
        )
        .await
        .expect("update");
    orders.delete_one(doc! {"_id": "c"}).await.expect("delete");

    let expected = vec![
        ("a".to_owned(), "n-a".to_owned(), "10".to_owned()),
        ("b".to_owned(), "two".to_owned(), "21".to_owned()),
    ];
    let sql = format!("SELECT _id, doc->>'name', total::text FROM \"{db}\".orders ORDER BY _id");
    let read = async || -> Vec<(String, String, String)> {
        let rows = pg.query(sql.as_str(), &[]).await.unwrap_or_default();
        rows.iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect()
    };
    let applied = wait_for(Duration::from_secs(60), || async {
        (read().await == expected).then_some(())
    })
    .await;
    assert!(
        applied.is_some(),
        "target rows {:?}; stderr: {:#?}",
        read().await,
        running.seen
    );
    let (status, stderr) = running.terminate();
    assert_eq!(status.code(), Some(0), "{stderr}");
    let stored: i64 = pg
        .query_one(
            "SELECT count(*) FROM ustream.checkpoints WHERE pipeline = $1",
            &[&format!("{db}.replica")],
        )
        .await
        .expect("checkpoint")
        .get(0);
    assert_eq!(stored, 1, "the position is kept in the sink's database");
    let _ = client.database(&db).drop().await;
    pg.batch_execute(&format!(
        "DROP SCHEMA \"{db}\" CASCADE; DELETE FROM ustream.checkpoints WHERE pipeline = '{db}.replica'"
    ))
    .await
    .expect("drop schema");
}
