//! Resuming inside a transaction whose rows span several rows events: from a sample of row
//! positions (every rows-event boundary and its neighbours among them), in file and GTID form,
//! the stream yields exactly the rows after the position, and its batch positions never fall
//! behind the resume point or each other (a checkpoint store refuses positions that move back).

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::time::Duration;

use crate::support::*;
use futures::StreamExt;
use mysql_async::prelude::*;
use stream_core::{CancellationToken, ChangeEvent, Position, Source, SourceEvent, StartFrom};
use stream_mysql::MySqlSource;

const ROWS: usize = 1000;
/// Fixed-size rows (null bitmap, INT, length byte, 60 latin1 characters): the rows each rows
/// event holds follow from its size.
const ROW_BYTES: u64 = 1 + 4 + 1 + 60;

/// The position `k` rows into the transaction `of` belongs to.
fn skip_to(of: &Position, k: usize) -> Position {
    let text = of.to_string();
    let (base, _) = text.rsplit_once('+').expect("a position with a row count");
    format!("{base}+{k}").parse().expect("position")
}

/// Rows of each rows event of the transaction starting at `file:offset`, in order.
async fn rows_per_event(c: &mut mysql_async::Conn, of: &Position) -> Vec<usize> {
    let text = of.to_string();
    let rest = text.strip_prefix("binlog:").expect("a file position");
    let (file_offset, _) = rest.rsplit_once('+').expect("skip");
    let (file, offset) = file_offset.rsplit_once(':').expect("offset");
    let events: Vec<mysql_async::Row> = c
        .query(format!("SHOW BINLOG EVENTS IN '{file}' FROM {offset}"))
        .await
        .expect("binlog events");
    let mut rows = Vec::new();
    for e in events {
        let kind: String = e.get(2).expect("type");
        let (pos, end): (u64, u64) = (e.get(1).expect("pos"), e.get(4).expect("end"));
        if kind.starts_with("Write_rows") {
            rows.push(((end - pos) / ROW_BYTES) as usize);
        }
        if kind == "Xid" {
            break;
        }
    }
    rows
}

/// Streams from `from` until `want` changes arrived, checking every batch position.
async fn resume_from(
    cfg: stream_mysql::MySqlConfig,
    from: &Position,
    want: usize,
) -> Vec<ChangeEvent> {
    let shutdown = CancellationToken::new();
    let opened = MySqlSource::new(cfg)
        .open(StartFrom::Position(from.clone()), shutdown.clone())
        .await
        .expect("open");
    let mut batches = opened.batches;
    let mut last = from.clone();
    let mut got = Vec::new();
    let mut batches_seen = 0;
    while got.len() < want || batches_seen == 0 {
        batches_seen += 1;
        let batch = tokio::time::timeout(Duration::from_secs(20), batches.next())
            .await
            .unwrap_or_else(|_| panic!("from {from}: {} of {want} rows arrived", got.len()))
            .expect("stream open")
            .expect("no error");
        if let Some(tail) = batch.events.last() {
            assert_eq!(
                &batch.position,
                tail.position(),
                "from {from}: a batch's position is its last event's"
            );
        }
        assert_ne!(
            batch.position.compare(&last),
            Some(Ordering::Less),
            "from {from}: batch position {} falls behind {last}",
            batch.position
        );
        let changes: Vec<ChangeEvent> = batch
            .events
            .into_iter()
            .filter_map(|e| match e {
                SourceEvent::Change(c) => Some(c),
                _ => None,
            })
            .collect();
        last = batch.position;
        got.extend(changes);
    }
    shutdown.cancel();
    got
}

async fn resume_inside_a_large_transaction(gtid: bool) {
    let mut c = conn().await;
    let db = fresh_db(&mut c, if gtid { "bigtxngtid" } else { "bigtxn" }).await;
    c.query_drop(format!(
        "CREATE TABLE `{db}`.t (id INT PRIMARY KEY, pad VARCHAR(60) CHARACTER SET latin1 NOT NULL)"
    ))
    .await
    .expect("table");
    let start = now(&mut c).await;
    c.query_drop(format!(
        "INSERT INTO `{db}`.t SELECT seq, REPEAT('x', 60) FROM `{db}`.seq_1_to_{ROWS}"
    ))
    .await
    .expect("one statement, many rows events");
    let cfg = || {
        let mut cfg = config(&url(), &format!("{db}.t"));
        cfg.gtid_positions = gtid;
        cfg
    };
    let file_form = changes(config(&url(), &format!("{db}.t")), start.clone(), ROWS).await;
    let per_event = rows_per_event(&mut c, &file_form[0].position).await;
    assert_eq!(per_event.iter().sum::<usize>(), ROWS, "{per_event:?}");
    assert!(
        per_event.len() >= 4,
        "the rows span several events: {per_event:?}"
    );
    let all = if gtid {
        changes(cfg(), start, ROWS).await
    } else {
        file_form
    };
    let mut sample: BTreeSet<usize> = (0..=ROWS).step_by(97).collect();
    let mut boundary = 0;
    for n in &per_event {
        boundary += n;
        sample.extend([boundary - 1, boundary, (boundary + 1).min(ROWS)]);
    }
    sample.extend([0, 1, ROWS - 1]);
    for k in sample {
        let from = skip_to(&all[0].position, k);
        let rest = resume_from(cfg(), &from, ROWS - k).await;
        let expected: Vec<String> = all[k..].iter().map(|e| e.to_json()).collect();
        let rest: Vec<String> = rest.iter().map(|e| e.to_json()).collect();
        assert_eq!(rest, expected, "resuming from {from}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_resuming_inside_a_multi_event_transaction_never_moves_batch_positions_back() {
    resume_inside_a_large_transaction(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_gtid_resuming_inside_a_multi_event_transaction_never_moves_batch_positions_back() {
    resume_inside_a_large_transaction(true).await;
}
