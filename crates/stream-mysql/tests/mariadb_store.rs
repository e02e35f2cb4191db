//! `MySqlStore` against the shared MariaDB: CRUD, upserts, portable filters, type round trips,
//! and errors that name what is wrong.

use std::time::Duration;

use crate::support::*;
use mysql_async::prelude::*;
use stream_core::{
    Date, DateTime, Decimal, Filter, Json, Namespace, Query, Row, Store, Timestamp, Value,
};
use stream_mysql::{MySqlConfig, MySqlStore};

fn key(id: i64) -> Row {
    [("id", Value::Int(id))].into_iter().collect()
}

fn row(id: i64, status: &str, total: &str) -> Row {
    [
        ("id", Value::Int(id)),
        ("status", Value::Enum(status.into())),
        (
            "total",
            Value::Decimal(Decimal::parse(total).expect("decimal")),
        ),
    ]
    .into_iter()
    .collect()
}

async fn setup() -> (MySqlStore, Namespace) {
    let mut c = conn().await;
    let db = fresh_db(&mut c, "store").await;
    c.query_drop(format!(
        "CREATE TABLE `{db}`.`order items` (id BIGINT PRIMARY KEY, status ENUM('new','paid') NOT NULL, \
         total DECIMAL(8,2) NOT NULL, placed DATETIME(3) NULL, seen TIMESTAMP(3) NULL, doc JSON NULL, \
         tags SET('a','b') NULL, raw VARBINARY(8) NULL)"
    ))
    .await
    .expect("table");
    let store = MySqlStore::new(&MySqlConfig::from_url(&url()).expect("config"));
    (store, Namespace::new(db.as_str(), "order items"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_store_reads_upserts_and_deletes_by_key() {
    let (store, ns) = setup().await;
    assert_eq!(store.read(&ns, &key(1)).await.expect("read"), None);
    store
        .write(&ns, &key(1), &row(1, "new", "19.90"))
        .await
        .expect("insert");
    store
        .write(&ns, &key(1), &row(1, "paid", "21.00"))
        .await
        .expect("upsert");
    let got = store.read(&ns, &key(1)).await.expect("read").expect("row");
    assert_eq!(got.get("status"), Some(&Value::Enum("paid".into())));
    assert_eq!(
        got.get("total"),
        Some(&Value::Decimal(Decimal::parse("21.00").expect("d")))
    );
    assert_eq!(got.get("placed"), Some(&Value::Null));
    assert!(store.delete(&ns, &key(1)).await.expect("delete"));
    assert!(!store.delete(&ns, &key(1)).await.expect("delete again"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_store_round_trips_temporal_json_set_and_binary_values() {
    let (store, ns) = setup().await;
    let placed = DateTime::new(
        Date::new(2024, 2, 29).expect("date"),
        12,
        34,
        56,
        789_000,
        3,
    )
    .expect("dt");
    let seen = Timestamp::new(1_709_210_096, 789_000, 3).expect("ts");
    let mut full = row(2, "new", "-0.50");
    full.push("placed", Value::DateTime(placed));
    full.push("seen", Value::Timestamp(seen));
    full.push(
        "doc",
        Value::Json(Json::parse(r#"{"a":[1,"x"]}"#).expect("json")),
    );
    full.push("tags", Value::Set(vec!["a".into(), "b".into()]));
    full.push("raw", Value::Bytes(vec![0, 255, 7]));
    store.write(&ns, &key(2), &full).await.expect("write");
    let got = store.read(&ns, &key(2)).await.expect("read").expect("row");
    assert_eq!(got, full);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_store_queries_with_filters_order_and_limit() {
    let (store, ns) = setup().await;
    for (id, status, total) in [
        (1, "new", "5.00"),
        (2, "paid", "20.00"),
        (3, "paid", "12.50"),
        (4, "paid", "99.00"),
    ] {
        store
            .write(&ns, &key(id), &row(id, status, total))
            .await
            .expect("write");
    }
    let q = Query::filter(Filter::And(vec![
        Filter::Eq("status".into(), Value::from("paid")),
        Filter::Not(Box::new(Filter::In("id".into(), vec![Value::Int(4)]))),
        Filter::Gte("total".into(), Value::Int(10)),
    ]))
    .order_by("total", false)
    .limit(5);
    let ids: Vec<Option<Value>> = store
        .query(&ns, &q)
        .await
        .expect("query")
        .iter()
        .map(|r| r.get("id").cloned())
        .collect();
    assert_eq!(ids, vec![Some(Value::Int(2)), Some(Value::Int(3))]);
    let none = store
        .query(&ns, &Query::filter(Filter::In("id".into(), vec![])))
        .await
        .expect("query");
    assert!(none.is_empty());
    let nulls = store
        .query(&ns, &Query::filter(Filter::IsNull("placed".into())))
        .await
        .expect("query");
    assert_eq!(nulls.len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_store_errors_name_the_field_or_table() {
    let (store, ns) = setup().await;
    let bad_key: Row = [("nope", Value::Int(1))].into_iter().collect();
    let err = store
        .read(&ns, &bad_key)
        .await
        .expect_err("unknown column")
        .to_string();
    assert!(
        err.contains("no column `nope`") && err.contains(&ns.to_string()),
        "{err}"
    );
    let err = store
        .query(
            &ns,
            &Query::filter(Filter::Eq("id`; DROP TABLE x; --".into(), Value::Int(1))),
        )
        .await
        .expect_err("injection attempt is just an unknown column")
        .to_string();
    assert!(err.contains("no column"), "{err}");
    let missing = Namespace::new(ns.db.clone(), "missing");
    let err = store
        .read(&missing, &key(1))
        .await
        .expect_err("unknown table")
        .to_string();
    assert!(err.contains("unknown table or collection"), "{err}");
    let err = store
        .write(&ns, &key(9), &row(8, "new", "1.00"))
        .await
        .expect_err("key mismatch")
        .to_string();
    assert!(err.contains("`id`"), "{err}");
}

/// How many connections the server holds for `user` (its own count, not the client's).
async fn server_connections_of(c: &mut mysql_async::Conn, user: &str) -> u64 {
    c.exec_first(
        "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = ?",
        (user,),
    )
    .await
    .expect("processlist")
    .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_store_connections_opened_in_a_burst_close_again_once_idle() {
    let (_, ns) = setup().await;
    let mut c = conn().await;
    // A user of its own, so the server's process list counts this store's connections only.
    let user = stream_testkit::unique_name("poolburst");
    c.query_drop(format!(
        "CREATE USER '{user}'@'%' IDENTIFIED BY 'pw'; GRANT SELECT ON `{}`.* TO '{user}'@'%'",
        ns.db
    ))
    .await
    .expect("user");
    let url = url().replacen("ustream:ustream", &format!("{user}:pw"), 1);
    // Idle connections close after 5 s: long enough to count them after the burst on a
    // loaded machine, short enough for the test.
    let options = "pool_min=1&pool_max=6&inactive_connection_ttl=5&ttl_check_interval=1";
    let url = format!(
        "{url}{}{options}",
        if url.contains('?') { '&' } else { '?' }
    );
    let store = MySqlStore::new(&MySqlConfig::from_url(&url).expect("config"));

    let keys: Vec<Row> = (0..24).map(key).collect();
    let burst = keys.iter().map(|k| store.read(&ns, k));
    for got in futures::future::join_all(burst).await {
        assert_eq!(got.expect("read"), None);
    }
    let after_burst = server_connections_of(&mut c, &user).await;
    assert!(
        (2..=6).contains(&after_burst),
        "24 concurrent reads should open several connections and at most pool_max (6): {after_burst}"
    );

    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut open = after_burst;
    while open > 1 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        open = server_connections_of(&mut c, &user).await;
    }
    assert_eq!(
        open, 1,
        "the idle connections above pool_min should have closed within 30 s ({after_burst} after the burst)"
    );
    assert_eq!(store.read(&ns, &key(1)).await.expect("read after"), None);

    store.close().await.expect("close");
    c.query_drop(format!("DROP USER '{user}'@'%'"))
        .await
        .expect("drop user");
}
