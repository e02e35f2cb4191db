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
