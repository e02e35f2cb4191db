//! The polling fallback: sees new and changed rows by their change column, resumes from its
//! cursor position, cannot see deletes (and says so in its docs), names missing columns.

use std::time::Duration;

use crate::support::*;
use futures::StreamExt;
use mysql_async::prelude::*;
use stream_core::{
    BatchStream, CancellationToken, ChangeEvent, Op, Position, Source, SourceEvent, StartFrom,
};
use stream_mysql::{MySqlConfig, MySqlPollingSource};

async fn open(db: &str, from: StartFrom) -> (BatchStream, CancellationToken) {
    let shutdown = CancellationToken::new();
    let mut source = MySqlPollingSource::new(config(&url(), &format!("{db}.*")), "updated_at")
        .interval(Duration::from_millis(100))
        .safety_lag(Duration::ZERO);
    let opened = source.open(from, shutdown.clone()).await.expect("open");
    (opened.batches, shutdown)
}

/// Changes until at least `want` have come (waiting up to 30 s, for a loaded machine), then
/// until none arrives for `quiet` (so extras show); returns them and the last batch position.
async fn drain(
    batches: &mut BatchStream,
    want: usize,
    quiet: Duration,
) -> (Vec<ChangeEvent>, Option<Position>) {
    let mut changes = Vec::new();
    let mut last = None;
    let patient_until = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let wait = if changes.len() < want {
            patient_until.saturating_duration_since(tokio::time::Instant::now())
        } else {
            quiet
        };
        let Ok(Some(batch)) = tokio::time::timeout(wait, batches.next()).await else {
            break;
        };
        let batch = batch.expect("batch");
        last = Some(batch.position.clone());
        changes.extend(batch.events.into_iter().filter_map(|e| match e {
            SourceEvent::Change(c) => Some(c),
            _ => None,
        }));
    }
    (changes, last)
}

fn ids(changes: &[ChangeEvent]) -> Vec<String> {
    changes.iter().map(|c| field(c, "id")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_polling_sees_new_and_changed_rows_but_not_deletes_and_resumes() {
    let mut c = conn().await;
    let db = fresh_db(&mut c, "poll").await;
    c.query_drop(format!(
        "CREATE TABLE `{db}`.t (id INT PRIMARY KEY, v VARCHAR(5), \
         updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6)); \
         INSERT INTO `{db}`.t (id, v) VALUES (1, 'a'), (2, 'b'), (3, 'c')"
    ))
    .await
    .expect("table");
    let (mut batches, shutdown) = open(&db, StartFrom::Earliest).await;
    let (first, _) = drain(&mut batches, 3, Duration::from_millis(800)).await;
    assert_eq!(ids(&first), ["1", "2", "3"]);
    assert!(
        first
            .iter()
            .all(|e| e.op == Op::Update && e.before.is_none())
    );

    tokio::time::sleep(Duration::from_millis(5)).await;
    c.query_drop(format!("INSERT INTO `{db}`.t (id, v) VALUES (4, 'd'); UPDATE `{db}`.t SET v = 'z' WHERE id = 1; DELETE FROM `{db}`.t WHERE id = 2"))
        .await
        .expect("changes");
    let (second, last) = drain(&mut batches, 2, Duration::from_millis(800)).await;
    let mut seen = ids(&second);
    seen.sort();
    assert_eq!(
        seen,
        ["1", "4"],
        "new and changed rows; the delete is invisible to polling"
    );
    assert_eq!(
        field(
            second
                .iter()
                .find(|e| field(e, "id") == "1")
                .expect("row 1"),
            "v"
        ),
        "\"z\""
    );
    shutdown.cancel();

    // Resume from the last position: only what changed afterwards.
    let resume = last.expect("a position");
    assert!(resume.to_string().starts_with("mysql-poll:"), "{resume}");
    tokio::time::sleep(Duration::from_millis(5)).await;
    c.query_drop(format!("UPDATE `{db}`.t SET v = 'y' WHERE id = 3"))
        .await
        .expect("update");
    let (mut batches, shutdown) = open(&db, StartFrom::Position(resume)).await;
    let (third, _) = drain(&mut batches, 1, Duration::from_millis(800)).await;
    assert_eq!(ids(&third), ["3"]);
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_polling_names_a_table_without_the_change_column() {
    let mut c = conn().await;
    let db = fresh_db(&mut c, "pollbad").await;
    c.query_drop(format!("CREATE TABLE `{db}`.plain (id INT PRIMARY KEY)"))
        .await
        .expect("table");
    let mut source = MySqlPollingSource::new(config(&url(), &format!("{db}.*")), "updated_at");
    let err = source
        .open(StartFrom::Latest, CancellationToken::new())
        .await
        .expect_err("must fail")
        .to_string();
    assert!(
        err.contains(&format!("{db}.plain")) && err.contains("`updated_at`"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_polling_gives_up_after_reconnect_for_once_the_server_is_gone() {
    let mut c = conn().await;
    let db = fresh_db(&mut c, "pollgone").await;
    c.query_drop(format!(
        "CREATE TABLE `{db}`.t (id INT PRIMARY KEY, updated_at BIGINT NOT NULL); \
         INSERT INTO `{db}`.t VALUES (1, 1)"
    ))
    .await
    .expect("table");
    let proxy = Proxy::start(MySqlConfig::from_url(&url()).expect("url").endpoint()).await;
    let mut cfg = config(&proxy.url(&url()), &format!("{db}.*"));
    let window = Duration::from_millis(500);
    cfg.reconnect_for = window;
    let mut source = MySqlPollingSource::new(cfg, "updated_at")
        .interval(Duration::from_millis(50))
        .safety_lag(Duration::ZERO);
    let shutdown = CancellationToken::new();
    let mut batches = source
        .open(StartFrom::Earliest, shutdown.clone())
        .await
        .expect("open through the proxy")
        .batches;
    let first = tokio::time::timeout(Duration::from_secs(10), batches.next())
        .await
        .expect("the first poll")
        .expect("open")
        .expect("rows");
    assert_eq!(first.events.len(), 1);
    let err = error_once_gone(&proxy, &mut batches, window).await;
    assert_eq!(err.to_string(), refused_text(proxy.port));
    shutdown.cancel();
}
