//! Events read by our own binlog client ([`crate::wire`]): one-packet events go the usual
//! way; a rows event of several packets is decoded from a cursor over them.

use stream_core::{SourceError, SourceEvent};

use super::{RawEvent, Tracker, event_type};
use crate::MySqlConfig;
use crate::chunks::ChunkCursor;
use crate::schema::Catalog;
use crate::wire::WireEvent;

impl Tracker {
    /// The position `offset` of the file the stream is in.
    pub(crate) fn position_at(&self, offset: u64) -> stream_core::Position {
        stream_core::Position::binlog(self.file.clone(), offset, 0)
    }

    /// Handles one event as [`Tracker::handle`] does.
    pub(crate) fn handle_wire(
        &mut self,
        event: WireEvent,
        config: &MySqlConfig,
        catalog: &mut Catalog,
        out: &mut Vec<SourceEvent>,
    ) -> Result<(), SourceError> {
        use event_type::*;
        let raw = |data| RawEvent {
            kind: event.kind(),
            timestamp: event.timestamp(),
            server_id: event.server_id(),
            size: event.size(),
            end: event.end(),
            flags: event.flags(),
            data,
        };
        if event.is_single() {
            return self.handle(raw(event.single()), config, catalog, out);
        }
        match event.kind() {
            kind @ (WRITE_ROWS_V1 | UPDATE_ROWS_V1 | DELETE_ROWS_V1 | WRITE_ROWS_V2
            | UPDATE_ROWS_V2 | DELETE_ROWS_V2) => {
                let ts_ms = i64::from(event.timestamp()) * 1000;
                self.rows_chunked(kind, event, ts_ms, out)
            }
            // Never large in practice, but read whole.
            ROTATE | MARIADB_GTID | MARIADB_GTID_LIST | MYSQL_GTID | MYSQL_ANONYMOUS_GTID
            | QUERY | TABLE_MAP => {
                let header = raw(&[]);
                let data = event.contiguous();
                self.handle(
                    RawEvent {
                        data: &data,
                        ..header
                    },
                    config,
                    catalog,
                    out,
                )
            }
            // The tracker reads only the header of the others (a MariaDB annotate event holds
            // the statement, as large as its literals).
            _ => self.handle(raw(&[]), config, catalog, out),
        }
    }

    /// A rows event that came in several packets: decoded from a cursor that frees each
    /// packet once it has read past it.
    fn rows_chunked(
        &mut self,
        kind: u8,
        event: WireEvent,
        ts_ms: i64,
        out: &mut Vec<SourceEvent>,
    ) -> Result<(), SourceError> {
        let first = event.chunks.front().map_or(&[][..], |c| &c[event.offset..]);
        let Some(head) = self.rows_head(kind, first)? else {
            return Ok(());
        };
        let before = first[head.before.clone()].to_vec();
        let after = first[head.after.clone()].to_vec();
        let mut cursor = ChunkCursor::new(event.chunks, event.offset + head.body);
        self.rows_body(kind, &head, &before, &after, &mut cursor, ts_ms, out)
    }
}
