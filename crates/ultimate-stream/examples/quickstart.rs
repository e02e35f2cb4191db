//! Prints every change of the tables of database `shop` as a JSON line; after a restart it
//! resumes where it stopped (checkpoints in `state/`).
//!
//! cargo run -p ultimate-stream --example quickstart --features full -- mysql://app:secret@127.0.0.1:3306/shop

use ultimate_stream::prelude::*;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "mysql://app:secret@127.0.0.1:3306/shop".to_owned());
    let streamer = Streamer::builder()
        .mysql(&url)
        .checkpoints(FileCheckpointStore::new("state/"))
        // Registered before the start: gets every change at least once, across restarts too.
        .on("shop.*", |event| async move {
            println!("{}", event.to_json());
            Ok(())
        })
        .start()
        .await?; // a wrong URL, password or database name fails here
    eprintln!("streaming shop.*; Ctrl-C to stop");
    tokio::signal::ctrl_c().await?;
    streamer.stop().await?; // what was printed is checkpointed
    Ok(())
}
