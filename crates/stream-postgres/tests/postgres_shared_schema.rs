//! Sinks that create tables in one new schema at the same moment (one `ustream run` with a
//! MySQL and a MongoDB source into `schema: combo`): PostgreSQL's `IF NOT EXISTS` is not safe
//! against a concurrent creator, and the loser must not fail.

use std::sync::Arc;

use stream_core::{Namespace, Op, Sink};
use stream_postgres::PostgresSink;
use stream_testkit::unique_name;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_sinks_creating_tables_in_the_same_new_schema_at_once_both_succeed() {
    let pg = pg().await;
    for round in 0..4 {
        let schema = unique_name("combo");
        let mut sinks = Vec::new();
        for (i, table) in ["orders", "customers"].into_iter().enumerate() {
            let mut config = sink_config();
            config.schema = Some(schema.clone());
            let mut event = (*change(
                &format!("src{i}"),
                Op::Insert,
                1,
                Some(row(1, "ann")),
                "binlog:b.000001:10+1",
            ))
            .clone();
            event.namespace = Namespace::new(format!("src{i}"), table);
            sinks.push((PostgresSink::new(format!("s{i}"), config), Arc::new(event)));
        }
        let mut it = sinks.into_iter();
        let (mut a, ea) = it.next().expect("first");
        let (mut b, eb) = it.next().expect("second");
        let ea = [ea];
        let eb = [eb];
        let (ra, rb) = tokio::join!(a.write(&ea), b.write(&eb));
        ra.unwrap_or_else(|e| panic!("round {round}, first sink: {e}"));
        rb.unwrap_or_else(|e| panic!("round {round}, second sink: {e}"));
        for table in ["orders", "customers"] {
            let n = count(&pg, &format!("SELECT count(*) FROM \"{schema}\".{table}")).await;
            assert_eq!(n, 1, "round {round}: {schema}.{table}");
        }
    }
}

/// A change of `db.table` with key 1.
fn change_of(db: &str, table: &str) -> Arc<stream_core::ChangeEvent> {
    let mut event = (*change(
        db,
        Op::Insert,
        1,
        Some(row(1, "ann")),
        "binlog:b.000001:10+1",
    ))
    .clone();
    event.namespace = Namespace::new(db, table);
    Arc::new(event)
}

#[tokio::test]
async fn postgres_sinks_of_two_source_tables_mapping_to_one_target_table_refuse_the_second_naming_both()
 {
    let schema = unique_name("combo");
    let mut config = sink_config();
    config.schema = Some(schema.clone());
    let mut mysql_side = PostgresSink::new("combo.shop", config.clone());
    let mut mongo_side = PostgresSink::new("combo.app", config);
    mysql_side
        .write(&[change_of("shop", "orders")])
        .await
        .expect("the first source table creates the target");
    let e = mongo_side
        .write(&[change_of("app", "orders")])
        .await
        .expect_err("app.orders would write into shop.orders's table");
    let said = e.to_string();
    assert!(
        said.contains("app.orders and shop.orders both map to"),
        "{said}"
    );
    assert!(said.contains(&schema), "{said}");
    // The first keeps working (a new connection reads the mark back).
    let mut again = PostgresSink::new("combo.shop2", {
        let mut c = sink_config();
        c.schema = Some(schema.clone());
        c
    });
    again
        .write(&[change_of("shop", "orders")])
        .await
        .expect("the owner writes on");
}

#[tokio::test]
async fn postgres_table_name_longer_than_63_bytes_is_refused_by_name() {
    let long = format!("orders_{}", "x".repeat(57));
    assert_eq!(long.len(), 64);
    let mut config = sink_config();
    config.schema = Some(unique_name("long"));
    let mut sink = PostgresSink::new("long", config);
    let e = sink
        .write(&[change_of("shop", &long)])
        .await
        .expect_err("PostgreSQL would truncate it");
    let said = e.to_string();
    assert!(said.contains(&format!("`{long}` is 64 bytes")), "{said}");
}
