//! The tracker: a pure state machine from binlog events to change events, with no I/O, so it
//! is tested with recorded events (`tests/fixtures/binlog`). It follows files, transactions
//! (BEGIN/COMMIT, XID, GTID groups), TABLE_MAPs and DDL; it counts the selected rows of each
//! transaction so every event's position resumes exactly after it; it skips the rows a resume
//! position says were delivered before, and never reports a position behind the one it
//! started from.

use std::collections::HashMap;
use std::sync::Arc;

use stream_core::{
    ChangeEvent, MariaDbGtid, MariaDbGtidList, MySqlPosition, Namespace, Op, Position, Row,
    SchemaChange, SourceError, SourceEvent, SourceKind, TxnStart,
};

use crate::MySqlConfig;
use crate::binary::{Malformed, Reader};
use crate::chunks::RowInput;
use crate::decoder::TableDecoder;
use crate::query::{QueryEvent, Statement};
use crate::schema::Catalog;
use crate::start::{FilePos, Resume};
use crate::tablemap::TableMap;
use crate::view_filter::ViewFilter;

#[cfg(test)]
mod crafted;
mod packets;
#[cfg(test)]
mod tests;

/// Binlog event type codes (`Log_event_type`).
pub(crate) mod event_type {
    pub(crate) const QUERY: u8 = 2;
    pub(crate) const ROTATE: u8 = 4;
    pub(crate) const FORMAT_DESCRIPTION: u8 = 15;
    pub(crate) const XID: u8 = 16;
    pub(crate) const TABLE_MAP: u8 = 19;
    pub(crate) const WRITE_ROWS_V1: u8 = 23;
    pub(crate) const UPDATE_ROWS_V1: u8 = 24;
    pub(crate) const DELETE_ROWS_V1: u8 = 25;
    pub(crate) const WRITE_ROWS_V2: u8 = 30;
    pub(crate) const UPDATE_ROWS_V2: u8 = 31;
    pub(crate) const DELETE_ROWS_V2: u8 = 32;
    pub(crate) const MYSQL_GTID: u8 = 33;
    pub(crate) const MYSQL_ANONYMOUS_GTID: u8 = 34;
    pub(crate) const XA_PREPARE: u8 = 38;
    pub(crate) const PARTIAL_UPDATE_ROWS: u8 = 39;
    pub(crate) const MARIADB_GTID: u8 = 162;
    pub(crate) const MARIADB_GTID_LIST: u8 = 163;
    pub(crate) const MARIADB_QUERY_COMPRESSED: u8 = 165;
    pub(crate) const MARIADB_ROWS_COMPRESSED_FIRST: u8 = 166;
    pub(crate) const MARIADB_ROWS_COMPRESSED_LAST: u8 = 171;
}

/// `LOG_EVENT_ARTIFICIAL_F`: made up by the server for this stream, not read from the file.
const ARTIFICIAL: u16 = 0x20;

/// One binlog event as the tracker needs it: the v4 header's fields and the event's data
/// (checksum removed).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawEvent<'a> {
    pub(crate) kind: u8,
    pub(crate) timestamp: u32,
    pub(crate) server_id: u32,
    /// The whole event's size, header and checksum included.
    pub(crate) size: u32,
    /// The position after the event in its file (0 for some artificial events).
    pub(crate) end: u32,
    pub(crate) flags: u16,
    pub(crate) data: &'a [u8],
}

impl<'a> RawEvent<'a> {
    pub(crate) fn of(event: &'a mysql_async::binlog::events::Event) -> Self {
        let header = event.header();
        Self {
            kind: header.event_type_raw(),
            timestamp: header.timestamp(),
            server_id: header.server_id(),
            size: header.event_size(),
            end: header.log_pos(),
            flags: header.flags_raw(),
            data: event.data(),
        }
    }

    fn artificial(&self) -> bool {
        self.end == 0 || self.flags & ARTIFICIAL != 0
    }

    /// Where the event starts in its file.
    fn start(&self) -> u64 {
        u64::from(self.end).saturating_sub(u64::from(self.size))
    }
}

/// A rows event read up to its first row image.
struct RowsHead {
    decoder: Arc<TableDecoder>,
    /// The position before the event, for errors.
    at: FilePos,
    /// Where the columns bitmaps are in the event's data.
    before: std::ops::Range<usize>,
    after: std::ops::Range<usize>,
    /// How many columns each image holds.
    before_n: usize,
    after_n: usize,
    /// Where the first row image starts.
    body: usize,
}

/// An open transaction (or event group).
#[derive(Debug, Clone)]
struct Txn {
    start: u64,
    /// Selected row changes seen so far in this transaction.
    ordinal: u64,
    id: Option<Arc<str>>,
    /// MariaDB standalone group (DDL): ends after its one statement.
    standalone: bool,
}

/// What a TABLE_MAP resolved to.
enum TableEntry {
    Wanted(Arc<TableDecoder>),
    Unwanted,
}

/// Follows files, transactions and table maps; turns row events into change events.
pub(crate) struct Tracker {
    /// The file events come from.
    file: Arc<str>,
    /// The file position after everything handled so far; an empty file name while a stream
    /// requested by GTID state has not reached its first event.
    at: FilePos,
    txn: Option<Txn>,
    /// Where the stream was requested from: reported until the stream has passed it.
    start: Resume,
    /// Rows already delivered of the transaction at this file position (file resume).
    skip: Option<FilePos>,
    /// Rows already delivered of the transaction that follows this GTID state (GTID resume).
    skip_gtid: Option<(MariaDbGtidList, u64)>,
    /// Rows of the open transaction still to skip.
    suppress: u64,
    checksum: bool,
    seen_fde: bool,
    last_table_map_start: u64,
    tables: HashMap<u64, (Vec<u8>, TableEntry)>,
    view_filter: Option<ViewFilter>,
    /// Report MariaDB GTID positions instead of file positions.
    gtid_mode: bool,
    /// GTID state after the last committed transaction.
    gtid_state: MariaDbGtidList,
    /// The open transaction's GTID, applied to the state at commit.
    txn_gtid: Option<MariaDbGtid>,
    /// A DDL statement changed the known table definitions.
    schema_changed: bool,
    /// A DDL statement changed (or named) a selected table or database.
    selected_schema_changed: bool,
    /// The file position of the last event pushed.
    last_pushed: Option<FilePos>,
}

/// An event that cannot be read, named by table (or what was read) and position.
fn malformed(table: &str, what: &str, at: &FilePos, e: Malformed) -> SourceError {
    SourceError::Decode {
        table: table.into(),
        column: what.into(),
        position: at.position().to_string(),
        reason: e.0,
    }
}

impl Tracker {
    /// A tracker for a stream requested at `start` (by file position, or by GTID state when
    /// its file name is empty); `checksum` says whether events carry CRC32 checksums.
    pub(crate) fn new(start: &Resume, checksum: bool, view_filter: Option<ViewFilter>) -> Self {
        let (gtid_state, skip_gtid) = match &start.gtid {
            Some((state, skip)) => (
                state.clone(),
                (start.by_gtid() && *skip > 0).then(|| (state.clone(), *skip)),
            ),
            None => (MariaDbGtidList::default(), None),
        };
        let at = FilePos {
            skip: 0,
            ..start.file.clone()
        };
        Self {
            file: start.file.file.clone(),
            skip: (!start.by_gtid() && start.file.skip > 0).then(|| start.file.clone()),
            last_table_map_start: start.file.offset,
            at,
            txn: None,
            start: start.clone(),
            skip_gtid,
            suppress: 0,
            checksum,
            seen_fde: false,
            tables: HashMap::new(),
            view_filter: view_filter.filter(|f| !f.passed_by(&start.file)),
            gtid_mode: start.gtid.is_some(),
            gtid_state,
            txn_gtid: None,
            schema_changed: false,
            selected_schema_changed: false,
            last_pushed: None,
        }
    }

    /// Where the stream stands after everything handled: never behind where it started,
    /// also while the rows delivered before a resume are being skipped.
    pub(crate) fn resume(&self) -> Resume {
        if self.skip.is_some() || self.skip_gtid.is_some() || self.suppress > 0 {
            return self.start.clone();
        }
        Resume {
            file: self.at.clone(),
            gtid: self.gtid_mode.then(|| {
                let skip = self.txn.as_ref().map_or(0, |t| t.ordinal);
                (self.gtid_state.clone(), skip)
            }),
        }
    }

    /// Where a batch resumes that ends with `last`, the last event this tracker pushed.
    pub(crate) fn resume_after(&self, last: &SourceEvent) -> Resume {
        let gtid = match last.position() {
            Position::MySql(MySqlPosition {
                start: TxnStart::MariaDbGtid(state),
                skip,
            }) => Some((state.clone(), *skip)),
            _ => None,
        };
        Resume {
            file: self.last_pushed.clone().unwrap_or_else(|| self.at.clone()),
            gtid,
        }
    }

    /// Whether a DDL statement changed the table definitions since the last call.
    pub(crate) fn take_schema_changed(&mut self) -> bool {
        std::mem::take(&mut self.schema_changed)
    }

    /// Whether a DDL statement about a selected table or database was handled since the last
    /// call (DDL elsewhere leaves the selected definitions as they were).
    pub(crate) fn take_selected_schema_changed(&mut self) -> bool {
        std::mem::take(&mut self.selected_schema_changed)
    }

    fn begin(&mut self, start: u64, id: Option<Arc<str>>, standalone: bool) {
        self.suppress = 0;
        if let Some(skip) = self.skip.take()
            && skip.file == self.file
            && skip.offset == start
        {
            self.suppress = skip.skip;
        }
        if let Some((state, rows)) = self.skip_gtid.take()
            && state == self.gtid_state
        {
            self.suppress = rows;
        }
        self.txn = Some(Txn {
            start,
            ordinal: 0,
            id,
            standalone,
        });
    }

    fn commit(&mut self, end: u64) {
        self.txn = None;
        self.suppress = 0;
        if let Some(gtid) = self.txn_gtid.take() {
            self.gtid_state.apply(gtid);
        }
        self.at = FilePos {
            file: self.file.clone(),
            offset: end,
            skip: 0,
        };
        if let Some(filter) = &self.view_filter
            && filter.passed_by(&self.at)
        {
            filter.release();
            self.view_filter = None;
        }
    }

    /// Handles one event, pushing the change and schema events it makes onto `out`.
    pub(crate) fn handle(
        &mut self,
        event: RawEvent<'_>,
        config: &MySqlConfig,
        catalog: &mut Catalog,
        out: &mut Vec<SourceEvent>,
    ) -> Result<(), SourceError> {
        use event_type::*;
        let ts_ms = i64::from(event.timestamp) * 1000;
        match event.kind {
            ROTATE => self.rotate(event.data)?,
            FORMAT_DESCRIPTION => self.seen_fde = true,
            MARIADB_GTID => self.mariadb_gtid(&event)?,
            MARIADB_GTID_LIST if self.txn.is_none() => self.gtid_list(&event)?,
            MYSQL_GTID | MYSQL_ANONYMOUS_GTID if !event.artificial() => {
                let id = (event.kind == MYSQL_GTID)
                    .then(|| mysql_gtid(event.data))
                    .flatten();
                self.begin(event.start(), id, false);
            }
            QUERY => self.query(&event, config, catalog, ts_ms, out)?,
            XID | XA_PREPARE => self.commit(u64::from(event.end)),
            TABLE_MAP => self.table_map(&event, config, catalog)?,
            WRITE_ROWS_V1 | UPDATE_ROWS_V1 | DELETE_ROWS_V1 | WRITE_ROWS_V2 | UPDATE_ROWS_V2
            | DELETE_ROWS_V2 => self.rows(event.kind, event.data, ts_ms, out)?,
            PARTIAL_UPDATE_ROWS => {
                return Err(SourceError::Unsupported {
                    what: "partial JSON updates (binlog_row_value_options=PARTIAL_JSON); unset it on the server".into(),
                });
            }
            MARIADB_QUERY_COMPRESSED
            | MARIADB_ROWS_COMPRESSED_FIRST..=MARIADB_ROWS_COMPRESSED_LAST => {
                return Err(SourceError::Unsupported {
                    what: "MariaDB binlog compression (log_bin_compress=ON); turn it off on the server".into(),
                });
            }
            _ => {}
        }
        Ok(())
    }

    fn rotate(&mut self, data: &[u8]) -> Result<(), SourceError> {
        let mut r = Reader::new(data);
        let pos = r
            .uint_le(8, "the rotate position")
            .map_err(|e| malformed("(binlog)", "(rotate)", &self.at, e))?;
        let mut name = r.rest();
        // The first (fake) rotate is read before the format description is known, so its
        // checksum is still attached to the file name.
        if !self.seen_fde && self.checksum && name.len() > 4 {
            name = &name[..name.len() - 4];
        }
        self.file = String::from_utf8_lossy(name).as_ref().into();
        // By GTID state, the server starts at the beginning of the file and the position it
        // really starts at comes with its artificial GTID list.
        if self.txn.is_none() && !self.at.file.is_empty() {
            self.at = FilePos {
                file: self.file.clone(),
                offset: pos,
                skip: 0,
            };
        }
        Ok(())
    }

    fn mariadb_gtid(&mut self, event: &RawEvent<'_>) -> Result<(), SourceError> {
        let mut r = Reader::new(event.data);
        let bad = |e| malformed("(binlog)", "(GTID)", &self.at, e);
        let sequence = r.uint_le(8, "the GTID sequence").map_err(bad)?;
        let domain = r.uint_le(4, "the GTID domain").map_err(bad)? as u32;
        let flags = r.u8("the GTID flags").map_err(bad)?;
        if event.artificial() {
            return Ok(());
        }
        let id: Arc<str> = format!("{domain}-{}-{sequence}", event.server_id).into();
        // FL_STANDALONE: a group of one statement without BEGIN/COMMIT (DDL).
        self.begin(event.start(), Some(id), flags & 1 != 0);
        self.txn_gtid = Some(MariaDbGtid {
            domain,
            server: event.server_id,
            sequence,
        });
        Ok(())
    }

    fn gtid_list(&mut self, event: &RawEvent<'_>) -> Result<(), SourceError> {
        let requested_by_gtid = self.at.file.is_empty();
        if requested_by_gtid && !event.artificial() {
            // The file's own list, older than the requested state.
            return Ok(());
        }
        let mut r = Reader::new(event.data);
        let bad = |e| malformed("(binlog)", "(GTID list)", &self.at, e);
        let count = r.uint_le(4, "the GTID list count").map_err(bad)? & 0x0fff_ffff;
        let mut list = MariaDbGtidList::default();
        for _ in 0..count {
            let domain = r.uint_le(4, "a GTID domain").map_err(bad)? as u32;
            let server = r.uint_le(4, "a GTID server").map_err(bad)? as u32;
            let sequence = r.uint_le(8, "a GTID sequence").map_err(bad)?;
            list.apply(MariaDbGtid {
                domain,
                server,
                sequence,
            });
        }
        if !list.is_empty() {
            self.gtid_state = list;
        }
        if requested_by_gtid && event.end > 0 {
            // Where the server really starts: the next event.
            self.at = FilePos {
                file: self.file.clone(),
                offset: u64::from(event.end),
                skip: 0,
            };
        }
        Ok(())
    }

    fn query(
        &mut self,
        event: &RawEvent<'_>,
        config: &MySqlConfig,
        catalog: &mut Catalog,
        ts_ms: i64,
        out: &mut Vec<SourceEvent>,
    ) -> Result<(), SourceError> {
        let q = QueryEvent::parse(event.data)
            .map_err(|e| malformed("(binlog)", "(query)", &self.at, e))?;
        let end = u64::from(event.end);
        match q.statement() {
            Statement::Begin => {
                if self.txn.is_none() {
                    self.begin(event.start(), None, false);
                }
            }
            Statement::End => self.commit(end),
            Statement::Ignore => {}
            Statement::Other => {
                let changed =
                    crate::ddl::apply(&q.sql, q.db.as_deref(), |d, t| config.wants(d, t), catalog);
                if crate::ddl::is_table_ddl(&q.sql) {
                    // Cached decoders may describe the old definition: rebuild them.
                    self.tables.clear();
                    self.schema_changed = true;
                }
                self.selected_schema_changed |= changed.is_some();
                // DDL commits implicitly; a statement inside a transaction does not.
                if self
                    .txn
                    .as_ref()
                    .is_none_or(|t| t.standalone || t.ordinal == 0)
                {
                    self.commit(end);
                }
                // A dropped database is reported whatever it is: only the selected ones count.
                let changed =
                    changed.filter(|(ns, _)| !ns.table.is_empty() || config.wants_database(&ns.db));
                if let Some((namespace, kind)) = changed {
                    out.push(SourceEvent::Schema(SchemaChange {
                        source: SourceKind::MySql,
                        namespace,
                        kind,
                        statement: Some(q.sql),
                        position: self.here_position(),
                        ts_ms,
                    }));
                    self.last_pushed = Some(self.at.clone());
                }
            }
        }
        Ok(())
    }

    /// The position after everything handled, in the form the stream reports.
    fn here_position(&self) -> Position {
        let skip = self.txn.as_ref().map_or(0, |t| t.ordinal);
        if self.gtid_mode {
            Position::MySql(MySqlPosition {
                start: TxnStart::MariaDbGtid(self.gtid_state.clone()),
                skip,
            })
        } else {
            self.at.position()
        }
    }

    fn table_map(
        &mut self,
        event: &RawEvent<'_>,
        config: &MySqlConfig,
        catalog: &Catalog,
    ) -> Result<(), SourceError> {
        let data = event.data;
        self.last_table_map_start = event.start();
        let table_id = Reader::new(data)
            .uint_le(6, "the table id")
            .map_err(|e| malformed("(binlog)", "(table map)", &self.at, e))?;
        if self
            .tables
            .get(&table_id)
            .is_some_and(|(raw, _)| raw.as_slice() == data)
        {
            return Ok(());
        }
        let map = TableMap::parse(data).map_err(|e| {
            let table =
                crate::tablemap::name_of(data).unwrap_or_else(|| format!("(table id {table_id})"));
            malformed(&table, "(table map)", &self.at, e)
        })?;
        let entry = if config.wants(&map.db, &map.table) {
            let schema = catalog.table(&map.db, &map.table).cloned();
            let decoder = TableDecoder::build(&map, schema.as_deref(), catalog).map_err(|m| {
                SourceError::Schema {
                    table: format!("{}.{}", map.db, map.table),
                    position: self.at.position().to_string(),
                    reason: m.0,
                }
            })?;
            TableEntry::Wanted(Arc::new(decoder))
        } else {
            TableEntry::Unwanted
        };
        self.tables.insert(table_id, (data.to_vec(), entry));
        Ok(())
    }

    fn rows(
        &mut self,
        kind: u8,
        data: &[u8],
        ts_ms: i64,
        out: &mut Vec<SourceEvent>,
    ) -> Result<(), SourceError> {
        let Some(head) = self.rows_head(kind, data)? else {
            return Ok(());
        };
        let (before, after) = (&data[head.before.clone()], &data[head.after.clone()]);
        let mut r = Reader::new(&data[head.body..]);
        self.rows_body(kind, &head, before, after, &mut r, ts_ms, out)
    }

    /// Reads a rows event up to its first row image; `None` for a table not streamed.
    fn rows_head(&mut self, kind: u8, data: &[u8]) -> Result<Option<RowsHead>, SourceError> {
        use event_type::*;
        let at = self.at.clone();
        let mut r = Reader::new(data);
        let table_id = r
            .uint_le(6, "the table id")
            .map_err(|e| malformed("(binlog)", "(rows)", &at, e))?;
        let Some((_, entry)) = self.tables.get(&table_id) else {
            return Err(SourceError::Decode {
                table: format!("(table id {table_id})"),
                column: "(rows)".into(),
                position: at.position().to_string(),
                reason: "row event without a preceding TABLE_MAP".into(),
            });
        };
        let TableEntry::Wanted(decoder) = entry else {
            return Ok(None);
        };
        let decoder = decoder.clone();
        let bad = |e| malformed(&decoder.namespace.to_string(), "(rows)", &at, e);
        r.uint_le(2, "the rows flags").map_err(bad)?;
        if kind >= WRITE_ROWS_V2 {
            let extra = r.uint_le(2, "the extra data length").map_err(bad)? as usize;
            r.take(extra.saturating_sub(2), "the extra data")
                .map_err(bad)?;
        }
        let count = r.lenenc("the column count").map_err(bad)?;
        if count != decoder.columns.len() as u64 {
            return Err(SourceError::Schema {
                table: decoder.namespace.to_string(),
                position: at.position().to_string(),
                reason: format!(
                    "the rows event has {count} columns but its TABLE_MAP {}",
                    decoder.columns.len()
                ),
            });
        }
        let count = decoder.columns.len();
        let bitmap_len = count.div_ceil(8);
        let before_at = data.len() - r.remaining();
        let before_cols = r.take(bitmap_len, "the columns bitmap").map_err(bad)?;
        let is_update = kind == UPDATE_ROWS_V1 || kind == UPDATE_ROWS_V2;
        let after_at = data.len() - r.remaining();
        let after_cols = if is_update {
            r.take(bitmap_len, "the after-image columns bitmap")
                .map_err(bad)?
        } else {
            before_cols
        };
        let present = |bits: &[u8]| {
            (0..count)
                .filter(|i| bits[i / 8] & (1 << (i % 8)) != 0)
                .count()
        };
        let (before_n, after_n) = (present(before_cols), present(after_cols));
        if before_n + after_n == 0 {
            // Row images without a column take no bytes: rows would never run out.
            return Err(SourceError::Decode {
                table: decoder.namespace.to_string(),
                column: "(rows)".into(),
                position: at.position().to_string(),
                reason: "the rows event's images hold no column".into(),
            });
        }
        let after = if is_update { after_at } else { before_at };
        Ok(Some(RowsHead {
            decoder,
            at,
            before: before_at..before_at + bitmap_len,
            after: after..after + bitmap_len,
            before_n,
            after_n,
            body: data.len() - r.remaining(),
        }))
    }

    /// Decodes a rows event's row images from `r`.
    #[allow(clippy::too_many_arguments)]
    fn rows_body<'a>(
        &mut self,
        kind: u8,
        head: &RowsHead,
        before_cols: &[u8],
        after_cols: &[u8],
        r: &mut impl RowInput<'a>,
        ts_ms: i64,
        out: &mut Vec<SourceEvent>,
    ) -> Result<(), SourceError> {
        use event_type::*;
        let RowsHead {
            decoder,
            at,
            before_n,
            after_n,
            ..
        } = head;
        let (before_n, after_n) = (*before_n, *after_n);
        if self.txn.is_none() {
            // Rows outside BEGIN/COMMIT: the group starts at its TABLE_MAP.
            self.begin(self.last_table_map_start, None, false);
        }
        while !r.is_empty() {
            let decode = |r: &mut _, cols: &[u8], n: usize| {
                decoder
                    .decode_row(r, cols, n)
                    .map_err(|e| SourceError::Decode {
                        table: decoder.namespace.to_string(),
                        column: e.column,
                        position: at.position().to_string(),
                        reason: e.reason,
                    })
            };
            let (op, before, after) = match kind {
                WRITE_ROWS_V1 | WRITE_ROWS_V2 => {
                    (Op::Insert, None, Some(decode(r, after_cols, after_n)?))
                }
                DELETE_ROWS_V1 | DELETE_ROWS_V2 => {
                    (Op::Delete, Some(decode(r, before_cols, before_n)?), None)
                }
                _ => {
                    let b = decode(r, before_cols, before_n)?;
                    let a = decode(r, after_cols, after_n)?;
                    (Op::Update, Some(b), Some(a))
                }
            };
            let Some(txn) = self.txn.as_mut() else {
                continue;
            };
            txn.ordinal += 1;
            self.at = FilePos {
                file: self.file.clone(),
                offset: txn.start,
                skip: txn.ordinal,
            };
            if self.suppress > 0 {
                self.suppress -= 1;
                continue;
            }
            let key = after
                .as_ref()
                .or(before.as_ref())
                .and_then(|row: &Row| decoder.key_of(row));
            if let Some(filter) = &self.view_filter {
                let moved_from = match (op, &before) {
                    (Op::Update, Some(b)) => decoder.key_of(b),
                    _ => None,
                };
                let (key_before, key_after) = match op {
                    Op::Insert => (None, key.as_ref()),
                    Op::Delete => (key.as_ref(), None),
                    _ => (moved_from.as_ref(), key.as_ref()),
                };
                let table = decoder.namespace.to_string();
                if filter.skips(&table, op, key_before, key_after) {
                    continue;
                }
            }
            out.push(SourceEvent::Change(ChangeEvent {
                source: SourceKind::MySql,
                namespace: Namespace::clone(&decoder.namespace),
                op,
                key,
                before,
                after,
                update: None,
                position: Position::MySql(MySqlPosition {
                    start: if self.gtid_mode {
                        TxnStart::MariaDbGtid(self.gtid_state.clone())
                    } else {
                        TxnStart::File {
                            file: self.file.clone(),
                            offset: txn.start,
                        }
                    },
                    skip: txn.ordinal,
                }),
                ts_ms,
                txn: txn.id.clone(),
            }));
            self.last_pushed = Some(self.at.clone());
        }
        Ok(())
    }
}

/// A MySQL GTID event's `uuid:number`, when the event holds one.
fn mysql_gtid(data: &[u8]) -> Option<Arc<str>> {
    let sid = data.get(1..17)?;
    let gno = i64::from_le_bytes(data.get(17..25)?.try_into().ok()?);
    let hex: String = sid.iter().map(|b| format!("{b:02x}")).collect();
    Some(
        format!(
            "{}-{}-{}-{}-{}:{gno}",
            &hex[0..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..32]
        )
        .into(),
    )
}
