//! The tracker fed with binlog streams recorded from MariaDB (`tests/fixtures/binlog`, see
//! its README for the statements): no server needed.

use std::cmp::Ordering;

use stream_core::NamespaceFilter;

use super::*;

const BY_FILE: &[u8] = include_bytes!("../../tests/fixtures/binlog/by_file.bin");
const BY_GTID: &[u8] = include_bytes!("../../tests/fixtures/binlog/by_gtid.bin");
const FILE: &str = "mysql-bin.000001";
/// Where both recordings start, and the GTID state there.
const START: u64 = 163_456_682;
const START_STATE: &str = "0-1-1487";
/// The transaction inserting 150 rows in rows events of 64, 64 and 22 rows, and the GTID
/// state before it.
const BIG_TXN: u64 = 163_457_019;
const BIG_TXN_STATE: &str = "0-1-1489";
const BIG_TXN_ROWS: usize = 150;

/// One recorded event.
#[derive(Debug, Clone)]
pub(super) struct Recorded {
    kind: u8,
    timestamp: u32,
    server_id: u32,
    size: u32,
    end: u32,
    flags: u16,
    pub(super) data: Vec<u8>,
}

impl Recorded {
    pub(super) fn new(kind: u8, end: u32, flags: u16, data: Vec<u8>) -> Self {
        Self {
            kind,
            timestamp: 1_700_000_000,
            server_id: 1,
            size: 19 + data.len() as u32 + 4,
            end,
            flags,
            data,
        }
    }

    pub(super) fn raw(&self) -> RawEvent<'_> {
        RawEvent {
            kind: self.kind,
            timestamp: self.timestamp,
            server_id: self.server_id,
            size: self.size,
            end: self.end,
            flags: self.flags,
            data: &self.data,
        }
    }

    fn start(&self) -> u64 {
        self.raw().start()
    }
}

/// Records: `u32` length, the 19-byte header, the data.
pub(super) fn recorded(mut bytes: &[u8]) -> Vec<Recorded> {
    let u32_at = |b: &[u8], at: usize| u32::from_le_bytes(b[at..at + 4].try_into().expect("4"));
    let mut events = Vec::new();
    while !bytes.is_empty() {
        let len = u32_at(bytes, 0) as usize;
        let record = &bytes[4..4 + len];
        events.push(Recorded {
            timestamp: u32_at(record, 0),
            kind: record[4],
            server_id: u32_at(record, 5),
            size: u32_at(record, 9),
            end: u32_at(record, 13),
            flags: u16::from_le_bytes([record[17], record[18]]),
            data: record[19..].to_vec(),
        });
        bytes = &bytes[4 + len..];
    }
    events
}

pub(super) fn config() -> MySqlConfig {
    let mut config = MySqlConfig::from_url("mysql://u@h/fx").expect("url");
    config.filter = NamespaceFilter::parse("fx.t", "").expect("filter");
    config
}

fn file_start(offset: u64, skip: u64) -> Resume {
    Resume {
        file: FilePos {
            file: FILE.into(),
            offset,
            skip,
        },
        gtid: None,
    }
}

fn state(text: &str) -> MariaDbGtidList {
    text.parse().expect("GTID state")
}

/// In GTID form, requested by file position.
fn gtid_at(offset: u64, before: &str, skip: u64) -> Resume {
    Resume {
        gtid: Some((state(before), skip)),
        ..file_start(offset, skip)
    }
}

/// Requested by GTID state (no file known yet).
fn by_gtid_state(before: &str, skip: u64) -> Resume {
    Resume {
        file: FilePos {
            file: "".into(),
            offset: 4,
            skip: 0,
        },
        gtid: Some((state(before), skip)),
    }
}

/// The table definitions as of `offset`: the DDL of the recording before it, applied.
fn catalog_at(events: &[Recorded], offset: u64) -> Catalog {
    let mut catalog = Catalog::default();
    let mut tracker = Tracker::new(&file_start(START, 0), true, None);
    for e in events.iter().filter(|e| e.end > 0 && e.start() < offset) {
        tracker
            .handle(e.raw(), &config(), &mut catalog, &mut Vec::new())
            .expect("handled");
    }
    catalog
}

/// Feeds `events` to a tracker started at `start`, checking after every event what a batch
/// flushed there would carry: a position never behind the previous one nor the start, and,
/// when it ends with pushed events, exactly the last one's position.
fn run(start: &Resume, events: &[Recorded], mut catalog: Catalog) -> Vec<SourceEvent> {
    let mut tracker = Tracker::new(start, true, None);
    let mut out = Vec::new();
    let mut last = start.position();
    for e in events {
        let pushed = out.len();
        tracker
            .handle(e.raw(), &config(), &mut catalog, &mut out)
            .expect("handled");
        let now = tracker.resume();
        for before in [&last, &start.position()] {
            assert_ne!(
                now.position().compare(before),
                Some(Ordering::Less),
                "from {}: {} falls behind {before}",
                start.position(),
                now.position()
            );
        }
        if let Some(tail) = out.get(pushed..).and_then(<[SourceEvent]>::last) {
            assert_eq!(&tracker.resume_after(tail).position(), tail.position());
        }
        last = now.position();
    }
    out
}

/// What a server sends when asked for `from`: its fake ROTATE and the format description,
/// then the recorded events from that offset on.
fn from_offset(events: &[Recorded], from: u64) -> Vec<Recorded> {
    let mut rotate = events[0].clone();
    rotate.data[..8].copy_from_slice(&from.to_le_bytes());
    let mut sent = vec![rotate, events[1].clone()];
    sent.extend(
        events
            .iter()
            .filter(|e| e.end > 0 && e.start() >= from)
            .cloned(),
    );
    sent
}

fn changes(events: &[SourceEvent]) -> Vec<&ChangeEvent> {
    events
        .iter()
        .filter_map(|e| match e {
            SourceEvent::Change(c) => Some(c),
            _ => None,
        })
        .collect()
}

fn json(events: &[&ChangeEvent]) -> Vec<String> {
    events.iter().map(|e| e.to_json()).collect()
}

#[test]
fn a_recorded_stream_becomes_its_row_changes_and_ddl_in_order() {
    let events = recorded(BY_FILE);
    let out = run(&file_start(START, 0), &events, Catalog::default());
    let schema: Vec<String> = out
        .iter()
        .filter_map(|e| match e {
            SourceEvent::Schema(s) => Some(format!("{:?} {}", s.kind, s.namespace)),
            _ => None,
        })
        .collect();
    assert_eq!(schema, ["Create fx.t", "Alter fx.t"]);
    let rows = changes(&out);
    assert_eq!(rows.len(), BIG_TXN_ROWS + 3, "fx.other is not selected");
    for (i, row) in rows[..BIG_TXN_ROWS].iter().enumerate() {
        assert_eq!(row.op, Op::Insert);
        assert_eq!(
            row.position,
            Position::binlog(FILE, BIG_TXN, i as u64 + 1),
            "row {i}"
        );
        assert_eq!(row.txn.as_deref(), Some("0-1-1490"));
    }
    let tail: Vec<Op> = rows[BIG_TXN_ROWS..].iter().map(|r| r.op).collect();
    assert_eq!(tail, [Op::Update, Op::Delete, Op::Insert]);
    // The UPDATE and DELETE share a transaction with an unselected row: counted over fx.t only.
    let skips: Vec<u64> = rows[BIG_TXN_ROWS..]
        .iter()
        .map(|r| match &r.position {
            Position::MySql(p) => p.skip,
            other => panic!("{other}"),
        })
        .collect();
    assert_eq!(skips, [1, 2, 1]);
    assert!(rows[BIG_TXN_ROWS + 2].to_json().contains(r#""n":7"#));
}

#[test]
fn resuming_at_every_row_of_a_multi_event_transaction_yields_exactly_the_rest_by_file() {
    let events = recorded(BY_FILE);
    let all = run(&file_start(START, 0), &events, Catalog::default());
    let all = json(&changes(&all));
    let catalog = catalog_at(&events, BIG_TXN);
    for k in 0..=BIG_TXN_ROWS {
        let start = file_start(BIG_TXN, k as u64);
        let out = run(&start, &from_offset(&events, BIG_TXN), catalog.clone());
        assert_eq!(json(&changes(&out)), all[k..], "resuming at row {k}");
    }
}

#[test]
fn resuming_at_every_row_of_a_multi_event_transaction_yields_exactly_the_rest_in_gtid_form() {
    let events = recorded(BY_FILE);
    let all = run(&gtid_at(START, START_STATE, 0), &events, Catalog::default());
    let all = json(&changes(&all));
    assert!(all[0].contains("mariadb-gtid:0-1-1489+1"), "{}", all[0]);
    let catalog = catalog_at(&events, BIG_TXN);
    for k in 0..=BIG_TXN_ROWS {
        let start = gtid_at(BIG_TXN, BIG_TXN_STATE, k as u64);
        let out = run(&start, &from_offset(&events, BIG_TXN), catalog.clone());
        assert_eq!(json(&changes(&out)), all[k..], "resuming at row {k}");
    }
}

#[test]
fn a_stream_requested_by_gtid_state_starts_where_the_server_says_not_at_the_file_start() {
    let events = recorded(BY_GTID);
    let start = by_gtid_state(START_STATE, 0);
    let by_file = run(
        &gtid_at(START, START_STATE, 0),
        &recorded(BY_FILE),
        Catalog::default(),
    );
    let mut tracker = Tracker::new(&start, true, None);
    let mut catalog = Catalog::default();
    let mut out = Vec::new();
    for e in &events {
        tracker
            .handle(e.raw(), &config(), &mut catalog, &mut out)
            .expect("handled");
        let at = tracker.resume();
        // Before the server's artificial GTID list: still "by GTID state", never the file
        // start (a reconnect from there would repeat the whole file).
        assert!(at.by_gtid() || at.file.offset >= START, "{at:?}");
        assert!(at.gtid.is_some());
        assert_ne!(
            at.position().compare(&start.position()),
            Some(Ordering::Less),
            "{}",
            at.position()
        );
    }
    assert_eq!(json(&changes(&out)), json(&changes(&by_file)));
}

/// MariaDB's artificial GTID list announcing `state`, sent before the event at `next`.
fn artificial_gtid_list(state: &MariaDbGtidList, next: u64) -> Recorded {
    let mut data = (state.iter().count() as u32).to_le_bytes().to_vec();
    for g in state.iter() {
        data.extend_from_slice(&g.domain.to_le_bytes());
        data.extend_from_slice(&g.server.to_le_bytes());
        data.extend_from_slice(&g.sequence.to_le_bytes());
    }
    Recorded::new(event_type::MARIADB_GTID_LIST, next as u32, ARTIFICIAL, data)
}

#[test]
fn resuming_by_gtid_state_inside_a_multi_event_transaction_skips_the_delivered_rows() {
    let recorded_by_gtid = recorded(BY_GTID);
    let header: Vec<Recorded> = recorded_by_gtid
        .iter()
        .take_while(|e| e.flags & ARTIFICIAL == 0 || e.end == 0)
        .cloned()
        .collect();
    assert_eq!(
        header.iter().map(|e| e.kind).collect::<Vec<_>>(),
        [4, 15, 163, 161],
        "fake rotate, format description, the file's GTID list, binlog checkpoint"
    );
    let by_file = recorded(BY_FILE);
    let all = run(
        &gtid_at(START, START_STATE, 0),
        &by_file,
        Catalog::default(),
    );
    let all = json(&changes(&all));
    let catalog = catalog_at(&by_file, BIG_TXN);
    for k in [0, 1, 63, 64, 65, 127, 128, 129, 149, 150] {
        let mut sent = header.clone();
        sent.push(artificial_gtid_list(&state(BIG_TXN_STATE), BIG_TXN));
        sent.extend(
            by_file
                .iter()
                .filter(|e| e.end > 0 && e.start() >= BIG_TXN)
                .cloned(),
        );
        let out = run(
            &by_gtid_state(BIG_TXN_STATE, k as u64),
            &sent,
            catalog.clone(),
        );
        assert_eq!(json(&changes(&out)), all[k..], "resuming at row {k}");
    }
}

#[test]
fn while_skipping_delivered_rows_the_position_stays_at_the_resume_point_whatever_the_rotate_says() {
    // The fake ROTATE at connect names the transaction's start (+0); the suppressed rows must
    // not carry the position from there: a batch handed over mid-skip resumes where we started.
    let events = recorded(BY_FILE);
    let catalog = catalog_at(&events, BIG_TXN);
    for k in [1, 63, 64, 65, 100, 128, 149, 150] {
        for start in [file_start(BIG_TXN, k), gtid_at(BIG_TXN, BIG_TXN_STATE, k)] {
            let mut tracker = Tracker::new(&start, true, None);
            let mut catalog = catalog.clone();
            let mut out = Vec::new();
            for e in from_offset(&events, BIG_TXN) {
                tracker
                    .handle(e.raw(), &config(), &mut catalog, &mut out)
                    .expect("handled");
                let skipping =
                    tracker.suppress > 0 || tracker.skip.is_some() || tracker.skip_gtid.is_some();
                if skipping {
                    assert_eq!(tracker.resume(), start, "resuming at row {k}");
                }
                assert_ne!(
                    tracker.resume().position().compare(&start.position()),
                    Some(Ordering::Less),
                    "resuming at row {k}"
                );
            }
        }
    }
}
