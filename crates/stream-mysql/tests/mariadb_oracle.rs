//! Property test with the server as the oracle: random values of every numeric, temporal and
//! string type are written, streamed through our decoder, and compared with what the server
//! itself renders for the same rows.

use crate::seeded::{Rng, seed};
use crate::support::*;
use mysql_async::prelude::*;
use stream_core::Value;

const COLUMNS: &str = "ti TINYINT, tiu TINYINT UNSIGNED, si SMALLINT, siu SMALLINT UNSIGNED, \
  mi MEDIUMINT, miu MEDIUMINT UNSIGNED, i INT, iu INT UNSIGNED, bi BIGINT, biu BIGINT UNSIGNED, \
  dc DECIMAL(30,10), dc2 DECIMAL(7,2), dc0 DECIMAL(18,0), fl FLOAT, db DOUBLE, yr YEAR, bt BIT(20), \
  dt DATE, dtm0 DATETIME, dtm3 DATETIME(3), dtm6 DATETIME(6), ts TIMESTAMP(6) NULL, \
  tm0 TIME, tm2 TIME(2), tm6 TIME(6), vc VARCHAR(40), l1 VARCHAR(40) CHARACTER SET latin1, \
  ch CHAR(10), bn VARBINARY(20), en ENUM('x','y z','é'), st SET('a','b','c','d')";

const UTF8: &[char] = &[
    'a', 'Z', '0', ' ', '\'', '"', '\\', 'é', 'ß', '中', '😀', '\t', 'Ω',
];
const LATIN1: &[char] = &['a', 'Z', '0', ' ', 'é', 'ü', 'ß', '£', '€', '\''];

fn random_row(rng: &mut Rng, id: u64) -> String {
    let dec = |rng: &mut Rng, int: usize, frac: usize| {
        let sign = if rng.below(2) == 0 { "-" } else { "" };
        let len = 1 + rng.below(int as u64) as usize;
        let i = rng.digits(len);
        if frac == 0 {
            format!("{sign}{i}")
        } else {
            format!("{sign}{i}.{}", rng.digits(frac))
        }
    };
    let date = |rng: &mut Rng| {
        format!(
            "{:04}-{:02}-{:02}",
            1000 + rng.below(9000),
            1 + rng.below(12),
            1 + rng.below(28)
        )
    };
    let clock = |rng: &mut Rng| {
        format!(
            "{:02}:{:02}:{:02}",
            rng.below(24),
            rng.below(60),
            rng.below(60)
        )
    };
    let time = |rng: &mut Rng, fsp: usize| {
        let sign = if rng.below(2) == 0 { "-" } else { "" };
        let frac = if fsp > 0 {
            format!(".{}", rng.digits(fsp))
        } else {
            String::new()
        };
        format!(
            "{sign}{}:{:02}:{:02}{frac}",
            rng.below(839),
            rng.below(60),
            rng.below(60)
        )
    };
    let quote = |s: &str| format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''"));
    let fl = f32::from_bits(rng.next() as u32);
    let fl = if fl.is_finite() { fl } else { 1.5 };
    let db = f64::from_bits(rng.next());
    let db = if db.is_finite() { db } else { -2.25 };
    let hex: String = (0..rng.below(21))
        .map(|_| format!("{:02x}", rng.below(256)))
        .collect();
    let set: Vec<&str> = ["a", "b", "c", "d"]
        .into_iter()
        .filter(|_| rng.below(2) == 0)
        .collect();
    let values = [
        id.to_string(),
        rng.signed(8).to_string(),
        rng.unsigned(8).to_string(),
        rng.signed(16).to_string(),
        rng.unsigned(16).to_string(),
        rng.signed(24).to_string(),
        rng.unsigned(24).to_string(),
        rng.signed(32).to_string(),
        rng.unsigned(32).to_string(),
        rng.signed(64).to_string(),
        rng.unsigned(64).to_string(),
        dec(rng, 20, 10),
        dec(rng, 5, 2),
        dec(rng, 18, 0),
        format!("{fl:e}"),
        format!("{db:e}"),
        (1901 + rng.below(255)).to_string(),
        rng.unsigned(20).to_string(),
        quote(&date(rng)),
        quote(&format!("{} {}", date(rng), clock(rng))),
        quote(&format!("{} {}.{}", date(rng), clock(rng), rng.digits(3))),
        quote(&format!("{} {}.{}", date(rng), clock(rng), rng.digits(6))),
        quote(&format!(
            "{:04}-{:02}-{:02} {}.{}",
            1971 + rng.below(60),
            1 + rng.below(12),
            1 + rng.below(28),
            clock(rng),
            rng.digits(6)
        )),
        quote(&time(rng, 0)),
        quote(&time(rng, 2)),
        quote(&time(rng, 6)),
        quote(&rng.text(UTF8, 40)),
        quote(&rng.text(LATIN1, 40)),
        quote(rng.text(UTF8, 10).trim_end()),
        format!("x'{hex}'"),
        (1 + rng.below(3)).to_string(),
        quote(&set.join(",")),
    ];
    format!("({})", values.join(","))
}

/// The server's text for each column, next to what our decoder produced, as comparable text.
fn ours(v: &Value) -> String {
    let mut buf = Vec::new();
    stream_core::json::write_value(&mut buf, v);
    let json = String::from_utf8(buf).expect("utf8");
    match v {
        Value::Null => "NULL".to_owned(),
        Value::String(s) | Value::Enum(s) => s.clone(),
        Value::Set(labels) => labels.join(","),
        Value::Bytes(b) => b.iter().map(|x| format!("{x:02X}")).collect(),
        Value::DateTime(_) => json.trim_matches('"').replace('T', " "),
        Value::Timestamp(_) => json
            .trim_matches('"')
            .trim_end_matches('Z')
            .replace('T', " "),
        Value::Float(f) => format!("{f:e}"),
        Value::Double(d) => format!("{d:e}"),
        _ => json.trim_matches('"').to_owned(),
    }
}

async fn server_renders_the_same(mode: &str, seed: u64) {
    let mut c = conn().await;
    let db = fresh_db(&mut c, "oracle").await;
    c.query_drop(format!(
        "CREATE TABLE `{db}`.o (id BIGINT PRIMARY KEY, {COLUMNS})"
    ))
    .await
    .expect("table");
    c.query_drop("SET SESSION time_zone = '+00:00', sql_mode = 'STRICT_ALL_TABLES'")
        .await
        .expect("session");
    let start = now(&mut c).await;
    const ROWS: u64 = 200;
    let mut rng = Rng::new(seed);
    let rows: Vec<String> = (0..ROWS).map(|id| random_row(&mut rng, id)).collect();
    with_metadata(mode, || async {
        for chunk in rows.chunks(50) {
            c.query_drop(format!("INSERT INTO `{db}`.o VALUES {}", chunk.join(",")))
                .await
                .unwrap_or_else(|e| panic!("seed {seed}: insert failed: {e}"));
        }
    })
    .await;
    let events = changes(config(&url(), &format!("{db}.*")), start, ROWS as usize).await;

    let names: Vec<String> = COLUMNS
        .split(", ")
        .map(|c| c.split(' ').next().unwrap_or_default().to_owned())
        .collect();
    let render: Vec<String> = names
        .iter()
        .map(|n| match n.as_str() {
            "bn" => format!("HEX({n})"),
            "bt" => format!("CAST({n} AS UNSIGNED)"),
            "fl" | "db" => n.clone(),
            _ => format!("CAST({n} AS CHAR)"),
        })
        .collect();
    let oracle: Vec<mysql_async::Row> = c
        .exec(
            format!("SELECT id, {} FROM `{db}`.o ORDER BY id", render.join(", ")),
            (),
        )
        .await
        .expect("oracle query");
    let mut mismatches = Vec::new();
    for (ev, row) in events.iter().zip(&oracle) {
        let after = ev.after.as_ref().expect("after");
        for (i, name) in names.iter().enumerate() {
            let theirs = match row.as_ref(i + 1).expect("column") {
                mysql_async::Value::NULL => "NULL".to_owned(),
                mysql_async::Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
                mysql_async::Value::Float(f) => format!("{f:e}"),
                mysql_async::Value::Double(d) => format!("{d:e}"),
                mysql_async::Value::Int(v) => v.to_string(),
                mysql_async::Value::UInt(v) => v.to_string(),
                other => format!("{other:?}"),
            };
            let mine = ours(after.get(name).expect("column present"));
            if mine != theirs {
                mismatches.push(format!(
                    "{}: {name}: server {theirs:?}, decoder {mine:?}",
                    ev.position
                ));
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "binlog_row_metadata={mode}, seed {seed}: {} mismatches:\n{}",
        mismatches.len(),
        mismatches
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    c.query_drop(format!("DROP DATABASE `{db}`"))
        .await
        .expect("drop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_decoder_agrees_with_the_server_on_random_values_without_metadata() {
    let seed = seed();
    eprintln!("seed {seed} (rerun with STREAM_TEST_SEED={seed})");
    server_renders_the_same("NO_LOG", seed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_decoder_agrees_with_the_server_on_random_values_with_full_metadata() {
    let seed = seed().rotate_left(17) | 1;
    eprintln!("seed {seed} (rerun with STREAM_TEST_SEED={seed})");
    server_renders_the_same("FULL", seed).await;
}
