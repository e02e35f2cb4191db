//! One source feeding two PostgreSQL sinks, one of which falls behind (its connection paused
//! by `FaultProxy`) when the process is killed: MongoDB resume tokens cannot be ordered, so the
//! restart must not resume from the sink that was ahead, or the other loses what it missed.

use std::time::Duration;

use mongodb::bson::{Document, doc};
use stream_testkit::proxy::Fault;
use stream_testkit::{Server, unique_name};

use super::support::{Running, pg_count, postgres, wait_for, write_config};
use crate::tail_process::proxy_to;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_fed_into_two_postgres_sinks_loses_nothing_in_the_one_behind_after_a_kill() {
    let client = mongodb::Client::with_uri_str(Server::Mongo.url())
        .await
        .expect("client");
    let pg = postgres().await;
    let db = unique_name("mfan");
    let orders = client.database(&db).collection::<Document>("orders");
    orders
        .insert_one(doc! {"_id": 0, "v": "first"})
        .await
        .expect("first document");
    let (proxy, behind_url) = proxy_to(Server::Postgres).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(
        dir.path(),
        &format!(
            "sources:\n  {db}:\n    url: '{}'\n    include: ['{db}.*']\n    from: snapshot\n\
             sinks:\n  ahead:\n    url: '{}'\n    schema: {db}_ahead\n\
             \x20 behind:\n    url: '{behind_url}'\n    schema: {db}_behind\n\
             checkpoints: postgres\n",
            Server::Mongo.url(),
            Server::Postgres.url(),
        ),
    );
    let count = |schema: String| {
        let pg = &pg;
        async move {
            pg_count(pg, &format!("SELECT count(*) FROM \"{schema}\".orders"))
                .await
                .unwrap_or(0)
        }
    };
    let mut running = Running::start(&config);
    for schema in [format!("{db}_ahead"), format!("{db}_behind")] {
        let copied = wait_for(Duration::from_secs(60), || async {
            (count(schema.clone()).await == 1).then_some(())
        })
        .await;
        assert!(copied.is_some(), "{schema}: {:#?}", running.seen);
    }

    // The second sink's PostgreSQL stops answering; the first goes on.
    proxy.set(Fault::Pause);
    // (Few enough source batches to fit the paused sink's queue: the source is not held.)
    orders
        .insert_many((1..=50).map(|id| doc! {"_id": id, "v": format!("v{id}")}))
        .await
        .expect("inserts");
    let ahead = wait_for(Duration::from_secs(60), || async {
        (count(format!("{db}_ahead")).await == 51).then_some(())
    })
    .await;
    assert!(ahead.is_some(), "the first sink: {:#?}", running.seen);
    running.kill();
    proxy.set(Fault::Pass);

    let running = Running::start(&config);
    let caught_up = wait_for(Duration::from_secs(60), || async {
        (count(format!("{db}_behind")).await == 51).then_some(())
    })
    .await;
    assert!(
        caught_up.is_some(),
        "the sink that was behind has {} of 51 rows; stderr: {:#?}",
        count(format!("{db}_behind")).await,
        running.seen
    );
    assert_eq!(count(format!("{db}_ahead")).await, 51);
    drop(running);
    pg.batch_execute(&format!(
        "DROP SCHEMA \"{db}_ahead\" CASCADE; DROP SCHEMA \"{db}_behind\" CASCADE; \
         DELETE FROM ustream.checkpoints WHERE pipeline LIKE '{db}.%'"
    ))
    .await
    .expect("clean up");
    client.database(&db).drop().await.expect("drop");
}
