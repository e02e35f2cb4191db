//! A binlog stream through the binlog source's tracker (the code between the server's events
//! and the change events), with no server: GTID, QUERY (DDL), TABLE_MAP, rows, XID, ROTATE,
//! anything. Every change and schema event it makes must print as the event JSON contract
//! says, with a position that prints and parses back to itself (it is what a checkpoint
//! saves); nothing may panic, hang or allocate without bound.
//!
//! Input: a flags byte (bit 0: MariaDB, bit 1: requested by GTID state, bit 2: CRC32
//! checksums), a byte whose low two
//! bits are the rows of the first transaction delivered before (a resume), then events, each
//! a type code and a chunk with its data (after the 19-byte header, without checksum).
#![no_main]

use libfuzzer_sys::fuzz_target;
use stream_core::{Position, SourceEvent};
use stream_mysql::bench_support::BinlogReplay;
use ultimate_stream_fuzz::{Frames, on_worker_stack};

#[allow(dead_code)]
#[path = "../../crates/stream-core/tests/json_shape.rs"]
mod json_shape;

fn resumable(position: &Position) {
    let text = position.to_string();
    match text.parse::<Position>() {
        Ok(back) => assert_eq!(&back, position, "{text} reads back as another position"),
        Err(e) => panic!("the position of an event does not parse back: {e}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let data = data.to_vec();
    on_worker_stack(move || {
        let mut input = Frames::new(&data);
        let flags = input.byte();
        let skip = u64::from(input.byte() & 3);
        let mut replay = BinlogReplay::new(flags & 1 != 0, flags & 2 != 0, skip, flags & 4 != 0)
            .expect("a replay starts");
        while !input.is_empty() {
            let kind = input.byte();
            let body = input.chunk();
            let events = match replay.feed(kind, body) {
                Ok(events) => events,
                Err(e) => {
                    assert!(!e.trim().is_empty(), "an empty error");
                    return;
                }
            };
            for event in &events {
                match event {
                    SourceEvent::Change(change) => {
                        let text = change.to_json();
                        if let Err(e) = json_shape::check_event(change, &text) {
                            panic!("{e}\n{text}");
                        }
                        resumable(&change.position);
                    }
                    SourceEvent::Schema(schema) => resumable(&schema.position),
                    _ => {}
                }
            }
        }
        resumable(&replay.resume_position());
    });
});
