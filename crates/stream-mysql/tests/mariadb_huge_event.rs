//! A rows event larger than one wire packet (16 MB): a 20 MB row of text, binary, JSON and
//! small columns, inserted and updated (a 40 MB event in three packets), decodes to what the
//! server's own SELECT returns.

use crate::support::*;
use mysql_async::prelude::*;
use stream_core::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_a_20_mb_row_in_several_packets_decodes_as_the_server_selects_it() {
    let mut c = conn().await;
    let db = fresh_db(&mut c, "huge").await;
    c.query_drop(format!(
        "CREATE TABLE `{db}`.h (id INT PRIMARY KEY, note LONGTEXT CHARACTER SET utf8mb4, \
         d DECIMAL(30,10), b LONGBLOB, doc JSON, dt DATETIME(6), v VARCHAR(40))"
    ))
    .await
    .expect("table");
    // Multibyte text, so a character may straddle two packets.
    let note: String = "ünï€😀 text, ".repeat(10 * 1024 * 1024 / 18);
    let blob: Vec<u8> = (0..10 * 1024 * 1024)
        .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let start = now(&mut c).await;
    c.exec_drop(
        format!(
            "INSERT INTO `{db}`.h VALUES (1, ?, -12345678901234567890.0123456789, ?, \
             '{{\"k\": [1, 2.5, \"three\"]}}', '2024-02-29 12:34:56.789012', 'first')"
        ),
        (note.clone(), blob.clone()),
    )
    .await
    .expect("insert 20 MB");
    c.query_drop(format!("UPDATE `{db}`.h SET v = 'second', d = d + 1"))
        .await
        .expect("update 20 MB");
    let events = changes(config(&url(), &format!("{db}.*")), start, 2).await;

    let selected: Vec<(String, String, String, String)> = c
        .query(format!(
            "SELECT CAST(d AS CHAR), doc, CAST(dt AS CHAR), v FROM `{db}`.h"
        ))
        .await
        .expect("select");
    let (d, doc, dt, v) = selected.into_iter().next().expect("the row");
    let server_doc: serde_json::Value = serde_json::from_str(&doc).expect("server JSON");
    let insert_after = events[0].after.as_ref().expect("insert after");
    let update_before = events[1].before.as_ref().expect("update before");
    let update_after = events[1].after.as_ref().expect("update after");
    for row in [insert_after, update_before, update_after] {
        assert_eq!(row.get("note"), Some(&Value::String(note.clone())));
        assert_eq!(row.get("b"), Some(&Value::Bytes(blob.clone())));
        let Some(Value::Json(ours)) = row.get("doc") else {
            panic!("doc is not JSON: {:?}", row.get("doc"))
        };
        let ours: serde_json::Value = serde_json::from_str(ours.as_str()).expect("our JSON");
        assert_eq!(ours, server_doc);
        let text = |name: &str| {
            let mut buf = Vec::new();
            stream_core::json::write_value(&mut buf, row.get(name).expect(name));
            String::from_utf8(buf)
                .expect("utf8")
                .trim_matches('"')
                .replace('T', " ")
        };
        assert_eq!(text("dt"), dt);
    }
    let text = |row: &stream_core::Row, name: &str| {
        let mut buf = Vec::new();
        stream_core::json::write_value(&mut buf, row.get(name).expect(name));
        String::from_utf8(buf)
            .expect("utf8")
            .trim_matches('"')
            .to_owned()
    };
    assert_eq!(text(update_after, "d"), d);
    assert_eq!(text(update_after, "v"), v);
    assert_eq!(
        (text(update_before, "v"), text(insert_after, "v")),
        ("first".to_owned(), "first".to_owned())
    );
    c.query_drop(format!("DROP DATABASE `{db}`"))
        .await
        .expect("drop");
}
