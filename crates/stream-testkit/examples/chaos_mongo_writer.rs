//! The MongoDB writer of `cargo xtask chaos`: seeded inserts (one to twenty documents at a
//! time, of mixed sizes), updates (`$set` and `$unset`, one document or a group) and deletes
//! into DB.COLL, each retried until the server acknowledges it, so the stand-in can be
//! restarted and killed under it. Every operation is idempotent, so a retry of one the server
//! did before it went away changes nothing. Runs until the file STOP exists, then writes the
//! documents it expects (OUT.expected.jsonl) and the ones the server has (OUT.server.jsonl),
//! each sorted by `_id`, as relaxed extended JSON, and prints its counts.
//!
//! cargo run -p stream-testkit --example chaos_mongo_writer -- URL DB COLL SEED STOP OUT

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use mongodb::Collection;
use mongodb::bson::{Bson, Document, doc};

/// How long one operation is retried while the server is away.
const RETRY_FOR: Duration = Duration::from_secs(300);

/// xorshift64*: the same sequence for the same seed, with no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn duplicate_only(e: &mongodb::error::Error) -> bool {
    let text = e.to_string();
    text.contains("E11000") || text.contains("duplicate key")
}

/// Runs `op` until it succeeds; an error `done` says means an earlier attempt did it.
async fn retried<F, Fut, T>(what: &str, done: fn(&mongodb::error::Error) -> bool, op: F) -> u64
where
    F: Fn() -> Fut,
    Fut: std::future::IntoFuture<Output = Result<T, mongodb::error::Error>>,
{
    let started = Instant::now();
    let mut failures = 0;
    loop {
        match op().await {
            Ok(_) => return failures,
            Err(e) if failures > 0 && done(&e) => return failures,
            Err(e) => {
                failures += 1;
                if started.elapsed() > RETRY_FOR {
                    eprintln!("chaos_mongo_writer: {what} failed for {RETRY_FOR:?}: {e}");
                    std::process::exit(1);
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

fn document(id: i64, rng: &mut Rng) -> Document {
    // One in fifty is large (20 to 60 KB), the rest tens of bytes.
    let pad = if rng.below(50) == 0 {
        20_000 + rng.below(40_000)
    } else {
        rng.below(40)
    } as usize;
    doc! {
        "_id": id,
        "grp": id % 7,
        "v": 0_i64,
        "name": format!("名前-{id}-é"),
        "pad": "abcdefghij".repeat(pad / 10 + 1)[..pad].to_owned(),
        "nested": {"a": [id, "s"], "b": Bson::Null},
    }
}

fn set_path(doc: &mut Document, path: &str, value: Bson) {
    match path.split_once('.') {
        Some((head, rest)) => {
            if !matches!(doc.get(head), Some(Bson::Document(_))) {
                doc.insert(head, Document::new());
            }
            if let Some(Bson::Document(inner)) = doc.get_mut(head) {
                set_path(inner, rest, value);
            }
        }
        None => {
            doc.insert(path, value);
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, db, coll, seed, stop, out] = <[String; 6]>::try_from(args)
        .map_err(|_| "usage: chaos_mongo_writer URL DB COLL SEED STOP OUT")?;
    let client = mongodb::Client::with_uri_str(&url).await?;
    let docs: Collection<Document> = client.database(&db).collection(&coll);
    let mut rng = Rng(seed.parse::<u64>()? | 1);
    // What the collection must hold: the model every operation is applied to once acknowledged.
    let mut model: BTreeMap<i64, Document> = BTreeMap::new();
    let mut next_id: i64 = 1;
    let (mut ops, mut failures) = (0u64, 0u64);
    let started = Instant::now();
    while !Path::new(&stop).exists() {
        let roll = rng.below(100);
        let alive: Vec<i64> = if roll >= 50 && !model.is_empty() {
            model.keys().copied().collect()
        } else {
            Vec::new()
        };
        if alive.is_empty() {
            let n = 1 + rng.below(20) as i64;
            let batch: Vec<Document> = (next_id..next_id + n)
                .map(|id| document(id, &mut rng))
                .collect();
            next_id += n;
            failures += retried("insert_many", duplicate_only, || {
                docs.insert_many(batch.clone()).ordered(false)
            })
            .await;
            for d in batch {
                if let Ok(id) = d.get_i64("_id") {
                    model.insert(id, d);
                }
            }
        } else if roll < 80 {
            let id = alive[rng.below(alive.len() as u64) as usize];
            let v = rng.below(1_000_000) as i64;
            let update = if rng.below(5) == 0 {
                doc! {"$set": {"v": v}, "$unset": {"pad": ""}}
            } else {
                doc! {"$set": {"v": v, "nested.b": format!("b{v}")}}
            };
            failures += retried(
                "update_one",
                |_| false,
                || docs.update_one(doc! {"_id": id}, update.clone()),
            )
            .await;
            if let Some(d) = model.get_mut(&id) {
                d.insert("v", v);
                if update.contains_key("$unset") {
                    d.remove("pad");
                } else {
                    set_path(d, "nested.b", Bson::String(format!("b{v}")));
                }
            }
        } else if roll < 85 {
            let grp = rng.below(7) as i64;
            let tag = format!("t{}", rng.below(1_000_000));
            // A group of the newest documents: one update_many, several events.
            let floor = next_id - 40;
            failures += retried(
                "update_many",
                |_| false,
                || {
                    docs.update_many(
                        doc! {"grp": grp, "_id": {"$gte": floor}},
                        doc! {"$set": {"tag": &tag}},
                    )
                },
            )
            .await;
            for (_, d) in model.range_mut(floor..) {
                if d.get_i64("grp") == Ok(grp) {
                    d.insert("tag", tag.clone());
                }
            }
        } else {
            let id = alive[rng.below(alive.len() as u64) as usize];
            failures += retried(
                "delete_one",
                |_| false,
                || docs.delete_one(doc! {"_id": id}),
            )
            .await;
            model.remove(&id);
        }
        ops += 1;
        if ops.is_multiple_of(100) {
            println!("ops {ops}");
        }
    }
    let write = |path: String, docs: &mut dyn Iterator<Item = Document>| -> std::io::Result<()> {
        let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
        for d in docs {
            writeln!(file, "{}", Bson::Document(d).into_relaxed_extjson())?;
        }
        file.flush()
    };
    write(format!("{out}.expected.jsonl"), &mut model.into_values())?;
    let mut server: Vec<Document> = Vec::new();
    let mut cursor = docs.find(doc! {}).sort(doc! {"_id": 1}).await?;
    while cursor.advance().await? {
        server.push(cursor.deserialize_current()?);
    }
    write(format!("{out}.server.jsonl"), &mut server.into_iter())?;
    println!(
        "done: {ops} operations in {:.0} s, {failures} attempts failed while the server was away",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
