//! A `Streamer` process for `cargo xtask chaos`: streams the tables (or collections) matching
//! PATTERN with checkpoints in DIR and prints every change as its event JSON line, the line
//! `ustream tail` prints. The campaign kills it with SIGKILL at random points and restarts it
//! with the same command; a restart resumes after the last checkpoint, which the `Streamer`
//! saves only once the callback returned, so every line is printed at least once.
//!
//! cargo run --release -p ultimate-stream --example chaos_streamer --features streamer,mysql,mongo -- \
//!     URL PATTERN DIR [--from POSITION] [--idle-exit-ms N]
//!
//! Without a checkpoint it starts at `--from` (default: the end). With `--idle-exit-ms` it stops
//! cleanly (checkpointing what it printed) once no change came for that long. MongoDB updates
//! carry no `after` (as `ustream tail --full-document off`): a document looked up when read
//! would make a line printed again after a restart differ from the first.

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ultimate_stream::prelude::*;

const USAGE: &str =
    "usage: chaos_streamer URL PATTERN CHECKPOINT_DIR [--from POSITION] [--idle-exit-ms N]";

struct Args {
    url: String,
    pattern: String,
    dir: String,
    from: StartFrom,
    idle_exit: Option<Duration>,
}

fn parse() -> Result<Args, String> {
    let mut plain = Vec::new();
    let mut from = StartFrom::Latest;
    let mut idle_exit = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--from" => {
                let v = args.next().ok_or("--from needs a position")?;
                from = v.parse().map_err(|e| format!("--from {v}: {e}"))?;
            }
            "--idle-exit-ms" => {
                let v = args.next().ok_or("--idle-exit-ms needs a number")?;
                let ms = v.parse().map_err(|e| format!("--idle-exit-ms {v}: {e}"))?;
                idle_exit = Some(Duration::from_millis(ms));
            }
            _ => plain.push(arg),
        }
    }
    let [url, pattern, dir] = <[String; 3]>::try_from(plain).map_err(|_| USAGE.to_owned())?;
    Ok(Args {
        url,
        pattern,
        dir,
        from,
        idle_exit,
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse()?;
    let builder = if args.url.starts_with("mongodb") {
        let mut config = ultimate_stream::mongo::MongoConfig::from_url(&args.url)?;
        config.full_document = ultimate_stream::mongo::FullDocument::Off;
        Streamer::builder().mongo_config(config)
    } else {
        Streamer::builder().mysql(&args.url)
    };
    // Milliseconds since `started` of the last printed change: the idle exit's clock.
    let started = Instant::now();
    let last = Arc::new(AtomicU64::new(0));
    let seen = last.clone();
    let streamer = builder
        .checkpoints(FileCheckpointStore::new(&args.dir))
        .start_from(args.from)
        .on(&args.pattern, move |event| {
            let seen = seen.clone();
            async move {
                let mut line = event.to_json();
                line.push('\n');
                // Unbuffered: a line is on its way to the file before the callback returns
                // and the checkpoint may move past it.
                std::io::stdout().lock().write_all(line.as_bytes())?;
                seen.store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
                Ok(())
            }
        })
        .start()
        .await?;
    eprintln!("chaos_streamer: streaming {}", args.pattern);
    let idle = async {
        let Some(limit) = args.idle_exit else {
            return std::future::pending().await;
        };
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let quiet = started.elapsed().as_millis() as u64 - last.load(Ordering::Relaxed);
            if quiet >= limit.as_millis() as u64 {
                return;
            }
        }
    };
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        (source, reason) = streamer.failure() => {
            eprintln!("chaos_streamer: error: source {source} stopped: {reason}");
            streamer.stop().await?;
            std::process::exit(1);
        }
        _ = idle => eprintln!("chaos_streamer: idle, stopping"),
        _ = terminate.recv() => eprintln!("chaos_streamer: SIGTERM, stopping"),
        _ = tokio::signal::ctrl_c() => eprintln!("chaos_streamer: interrupted, stopping"),
    }
    streamer.stop().await?;
    Ok(())
}
