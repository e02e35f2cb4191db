//! `ustream tail mongodb://...` reading the shared MongoDB through a fault proxy while a writer
//! inserts and updates documents: after each network fault the source resumes with nothing
//! lost, repeated or misread. Every printed line is compared with what was written and with an
//! uninterrupted run straight to the server.

use std::time::Duration;

use crate::tail_process::{FaultGate, NetFault, Tail, out_path, proxy_to, tail_through_fault};
use mongodb::bson::{Document, doc};
use serde_json::{Value, json};
use stream_testkit::{Server, unique_name};

const INSERTS: i64 = 120;
/// An update of an earlier document after every fourth insert.
const CHANGES: usize = 150;
const FINISH_WITHIN: Duration = Duration::from_secs(12);
/// The driver notices a silent connection through its server monitoring (a check every 10 s
/// that times out): measured 10 to 20 s.
const HALF_OPEN_NOTICED_WITHIN: Duration = Duration::from_secs(30);

/// (op, _id, the value written: `after.v` of inserts, `update.set.v` of updates)
type Expected = Vec<(&'static str, i64, String)>;

async fn write(db: String, gate: FaultGate) -> Expected {
    let client = mongodb::Client::with_uri_str(Server::Mongo.url())
        .await
        .expect("client");
    let coll = client.database(&db).collection::<Document>("t");
    let mut expected = Expected::new();
    for id in 0..INSERTS {
        if id == INSERTS * 2 / 5 {
            gate.wait().await;
        }
        let v = format!("r{id}-{}", "é".repeat((id % 13) as usize));
        coll.insert_one(doc! {"_id": id, "v": &v})
            .await
            .expect("insert");
        expected.push(("insert", id, v));
        if id % 4 == 3 {
            let target = id / 2;
            let v = format!("u{id}");
            coll.update_one(doc! {"_id": target}, doc! {"$set": {"v": &v}})
                .await
                .expect("update");
            expected.push(("update", target, v));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    expected
}

/// A tail through the proxy while the writer writes, `fault` injected once a quarter of the
/// changes are printed; then every change must arrive within `FINISH_WITHIN`, as written and
/// as an uninterrupted run prints it.
async fn tail_through(prefix: &str, fault: NetFault, within: Duration) -> Result<(), String> {
    let db = unique_name(prefix);
    let (proxy, url) = proxy_to(Server::Mongo).await;
    let include = format!("{db}.t");
    let limit = CHANGES.to_string();
    // The start: where a tail of the same scope from `end` says it streams from, before
    // anything is written (a resume token is bound to its change stream's scope).
    let probe = out_path(&db, "start");
    let start = {
        let tail = Tail::start(
            &[
                &Server::Mongo.url(),
                "--include",
                &include,
                "--from",
                "end",
                "--limit",
                "1",
            ],
            probe.clone(),
        );
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let stderr = tail.stderr();
            // Whole lines only: the last one may still be being written.
            let whole = &stderr[..stderr.rfind('\n').map_or(0, |end| end + 1)];
            if let Some(pos) = whole
                .lines()
                .find_map(|l| l.strip_prefix("streaming from "))
            {
                break pos.to_owned();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no start: {}",
                tail.stderr()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    let _ = std::fs::remove_file(&probe);
    let args = |url: &str| {
        [
            url,
            "--include",
            &include,
            "--from",
            &start,
            "--limit",
            &limit,
        ]
        .map(str::to_owned)
    };
    let (printed, expected) = tail_through_fault(
        &proxy,
        &args(&url).each_ref().map(String::as_str),
        out_path(&db, "faulted"),
        CHANGES,
        |gate| write(db.clone(), gate),
        fault,
        within,
    )
    .await;
    let printed = printed?;
    assert_eq!(printed.len(), expected.len(), "as many lines as changes");
    for (i, (line, (op, id, v))) in printed.iter().zip(&expected).enumerate() {
        let value = if *op == "insert" {
            &line["after"]["v"]
        } else {
            &line["update"]["set"]["v"]
        };
        assert_eq!(
            (&line["op"], &line["key"]["_id"], value),
            (&json!(op), &json!(id), &Value::String(v.clone())),
            "line {i} is not the change written at that place"
        );
    }
    let reference = Tail::start(
        &args(&Server::Mongo.url()).each_ref().map(String::as_str),
        out_path(&db, "reference"),
    )
    .finish(Duration::from_secs(30))
    .await
    .expect("the uninterrupted run finishes");
    for (i, (line, want)) in printed.iter().zip(&reference).enumerate() {
        assert_eq!(line, want, "line {i} differs from the uninterrupted run");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_tail_through_a_reset_connection_resumes_without_loss_or_repeat() {
    tail_through("mnet_reset", NetFault::Reset, FINISH_WITHIN)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_tail_through_a_paused_connection_resumes_without_loss_or_repeat() {
    tail_through("mnet_pause", NetFault::Pause, FINISH_WITHIN)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_tail_notices_a_half_open_connection_and_resumes_without_loss() {
    tail_through(
        "mnet_halfopen",
        NetFault::HalfOpen,
        HALF_OPEN_NOTICED_WITHIN,
    )
    .await
    .unwrap_or_else(|e| panic!("half-open connection not noticed: {e}"));
}
