//! Our own client for the binlog dump connection only (every other query goes through
//! mysql_async): handshake, TLS, `mysql_native_password` or `caching_sha2_password`, the session settings, `COM_REGISTER_SLAVE`, `COM_BINLOG_DUMP`, then
//! events read packet by packet. mysql_async reassembles a multi-packet event (a 64 MB row
//! makes a 128 MB UPDATE event) in a buffer that doubles as it grows and then copies it whole;
//! here an event stays the wire packets it came in (at most 16 MB each), its CRC32 checked as
//! they arrive, so the row decoder can free each packet once it has read past it.
//!
//! TLS is as mysql_async does it for the same URL ([`crate::wire_tls`]). What this client
//! cannot do (authentication plugins other than those two, a full `caching_sha2_password`
//! exchange without TLS, compressed transaction payloads) makes the reader use mysql_async's
//! stream for that connection instead ([`Dial::Unsupported`]); the memory bound for huge
//! events then does not hold.

use std::collections::VecDeque;

use mysql_common::constants::CapabilityFlags;
use mysql_common::io::ParseBuf;
use mysql_common::packets::{
    AuthPlugin, AuthSwitchRequest, ComBinlogDump, ComRegisterSlave, ErrPacket, HandshakePacket,
    HandshakeResponse, SslRequest,
};
use mysql_common::proto::MySerialize;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_util::either::Either;

use crate::MySqlConfig;
use crate::config::SslMode;

/// Largest payload of one wire packet; a longer logical packet continues in the next.
const MAX_PAYLOAD: usize = 0xff_ffff;

/// The v4 binlog event header's length.
pub(crate) const HEADER_LEN: usize = 19;

const COM_QUERY: u8 = 0x03;

/// The result of trying to open the dump connection ourselves.
pub(crate) enum Dial {
    Open(WireConn),
    /// This client cannot serve this connection; the reason, for the debug log.
    Unsupported(&'static str),
}

/// A connection after login.
pub(crate) struct WireConn {
    io: BufReader<Either<TcpStream, Box<TlsStream<TcpStream>>>>,
    /// Whether the connection is secured (the password may then go as it is).
    tls: bool,
    seq: u8,
    capabilities: CapabilityFlags,
    /// A packet being read, kept here so that dropping a read mid-way loses nothing.
    partial: Partial,
}

/// The state of a logical packet being read (every await point reads into it).
#[derive(Default)]
struct Partial {
    header: [u8; 4],
    header_filled: usize,
    payload: Option<Vec<u8>>,
    payload_filled: usize,
    chunks: VecDeque<Vec<u8>>,
}

fn protocol(what: impl Into<String>) -> mysql_async::Error {
    mysql_async::Error::Io(std::io::Error::new(std::io::ErrorKind::InvalidData, what.into()).into())
}

/// The server's ERR packet as the driver error mysql_async would have returned.
fn server_error(payload: &[u8], capabilities: CapabilityFlags) -> mysql_async::Error {
    match ParseBuf(payload).parse::<ErrPacket<'_>>(capabilities) {
        Ok(ErrPacket::Error(e)) => mysql_async::Error::Server(mysql_async::ServerError {
            code: e.error_code(),
            message: e.message_str().into_owned(),
            state: e
                .sql_state_ref()
                .map(|s| s.as_str().into_owned())
                .unwrap_or_default(),
        }),
        _ => protocol("the server sent an unreadable error packet"),
    }
}

impl WireConn {
    /// Connects and logs in, or says why this client cannot serve the connection.
    pub(crate) async fn dial(config: &MySqlConfig) -> Result<Dial, mysql_async::Error> {
        let tcp = TcpStream::connect((config.host.as_str(), config.port)).await?;
        tcp.set_nodelay(true)?;
        let mut conn = WireConn {
            io: BufReader::with_capacity(64 * 1024, Either::Left(tcp)),
            tls: false,
            seq: 0,
            capabilities: CapabilityFlags::CLIENT_PROTOCOL_41,
            partial: Partial::default(),
        };
        let hello = conn.read_whole().await?;
        if hello.first() == Some(&0xff) {
            return Err(server_error(&hello, conn.capabilities));
        }
        let handshake: HandshakePacket<'_> = ParseBuf(&hello)
            .parse(())
            .map_err(|e| protocol(format!("unreadable handshake: {e}")))?;
        let wanted = CapabilityFlags::CLIENT_PROTOCOL_41
            | CapabilityFlags::CLIENT_SECURE_CONNECTION
            | CapabilityFlags::CLIENT_LONG_PASSWORD
            | CapabilityFlags::CLIENT_LONG_FLAG
            | CapabilityFlags::CLIENT_TRANSACTIONS
            | CapabilityFlags::CLIENT_PLUGIN_AUTH
            | CapabilityFlags::CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA;
        let server_caps = handshake.capabilities();
        if !server_caps
            .contains(CapabilityFlags::CLIENT_PROTOCOL_41 | CapabilityFlags::CLIENT_PLUGIN_AUTH)
        {
            return Ok(Dial::Unsupported(
                "the server predates protocol 4.1 plugin authentication",
            ));
        }
        conn.capabilities = wanted & server_caps;
        if config.ssl_mode != SslMode::Disabled {
            if !server_caps.contains(CapabilityFlags::CLIENT_SSL) {
                return Err(protocol(
                    "the server does not offer TLS, which the URL's ssl-mode asks for",
                ));
            }
            conn.capabilities |= CapabilityFlags::CLIENT_SSL;
            let mut buf = Vec::new();
            // utf8mb4_general_ci, as in the handshake response.
            SslRequest::new(conn.capabilities, 1 << 30, 45).serialize(&mut buf);
            conn.write(&buf).await?;
            let Either::Left(tcp) = conn.io.into_inner() else {
                return Err(protocol("TLS was started twice"));
            };
            let tls = crate::wire_tls::secure(config, tcp).await?;
            conn.io = BufReader::with_capacity(64 * 1024, Either::Right(Box::new(tls)));
            conn.tls = true;
        }
        let nonce = handshake.nonce();
        let plugin = handshake
            .auth_plugin_name_ref()
            .unwrap_or(b"mysql_native_password")
            .to_vec();
        let Some(scramble) = scramble(&plugin, &nonce, &config.password) else {
            return Ok(Dial::Unsupported("the server's authentication plugin"));
        };
        let version = handshake.server_version_parsed().unwrap_or((5, 7, 0));
        let response = HandshakeResponse::new(
            Some(scramble),
            version,
            Some(config.user.as_bytes()),
            None::<&[u8]>,
            Some(AuthPlugin::from_bytes(&plugin)),
            conn.capabilities,
            None,
            1 << 30,
        );
        let mut buf = Vec::new();
        response.serialize(&mut buf);
        conn.write(&buf).await?;
        conn.authenticate(config, plugin).await
    }

    /// The server's answers after the handshake response, up to OK.
    async fn authenticate(
        mut self,
        config: &MySqlConfig,
        mut plugin: Vec<u8>,
    ) -> Result<Dial, mysql_async::Error> {
        loop {
            let reply = self.read_whole().await?;
            match reply.first() {
                Some(0x00) => return Ok(Dial::Open(self)),
                Some(0xff) => return Err(server_error(&reply, self.capabilities)),
                Some(0xfe) => {
                    let switch: AuthSwitchRequest<'_> = ParseBuf(&reply)
                        .parse(())
                        .map_err(|e| protocol(format!("unreadable auth switch request: {e}")))?;
                    plugin = switch.auth_plugin().as_bytes().to_vec();
                    let nonce = switch
                        .plugin_data()
                        .strip_suffix(&[0])
                        .unwrap_or(switch.plugin_data());
                    let Some(scramble) = scramble(&plugin, nonce, &config.password) else {
                        return Ok(Dial::Unsupported(
                            "the authentication plugin the server switched to",
                        ));
                    };
                    self.write(&scramble).await?;
                }
                // caching_sha2_password: 3 is "fast authentication done, OK follows"; 4 asks
                // for the password, which may go as it is over TLS only (else the exchange
                // needs the server's RSA key, which this client does not do).
                Some(0x01) if plugin == b"caching_sha2_password" && reply.get(1) == Some(&3) => {}
                Some(0x01)
                    if plugin == b"caching_sha2_password"
                        && reply.get(1) == Some(&4)
                        && self.tls =>
                {
                    let mut password = config.password.as_bytes().to_vec();
                    password.push(0);
                    self.write(&password).await?;
                }
                Some(0x01) => {
                    return Ok(Dial::Unsupported(
                        "caching_sha2_password full authentication without TLS (an RSA key exchange)",
                    ));
                }
                _ => return Err(protocol("unexpected packet during authentication")),
            }
        }
    }

    /// Runs a statement that returns no rows (`SET ...`).
    pub(crate) async fn query_drop(&mut self, sql: &str) -> Result<(), mysql_async::Error> {
        let mut command = Vec::with_capacity(sql.len() + 1);
        command.push(COM_QUERY);
        command.extend_from_slice(sql.as_bytes());
        self.command(&command).await
    }

    /// Sends a command and expects OK.
    async fn command(&mut self, command: &[u8]) -> Result<(), mysql_async::Error> {
        self.seq = 0;
        self.write(command).await?;
        let reply = self.read_whole().await?;
        match reply.first() {
            Some(0x00) => Ok(()),
            Some(0xff) => Err(server_error(&reply, self.capabilities)),
            _ => Err(protocol(
                "the server answered a command with neither OK nor an error",
            )),
        }
    }

    /// Registers as a replica and asks for the binlog from `file` at `pos` (by GTID state when
    /// `file` is empty and `@slave_connect_state` is set).
    pub(crate) async fn dump(
        mut self,
        server_id: u32,
        file: &[u8],
        pos: u64,
        checksum: bool,
    ) -> Result<WireStream, mysql_async::Error> {
        self.query_drop("SET @master_binlog_checksum='ALL'").await?;
        let mut buf = Vec::new();
        ComRegisterSlave::new(server_id).serialize(&mut buf);
        self.command(&buf).await?;
        buf.clear();
        ComBinlogDump::new(server_id)
            .with_pos(pos as u32)
            .with_filename(file)
            .serialize(&mut buf);
        self.seq = 0;
        self.write(&buf).await?;
        Ok(WireStream {
            conn: self,
            checksum,
            seen_fde: false,
        })
    }

    /// Writes one logical packet.
    async fn write(&mut self, payload: &[u8]) -> Result<(), mysql_async::Error> {
        let mut out = Vec::with_capacity(payload.len() + 4);
        // A payload of a multiple of 16 MB (or none) ends with an empty packet.
        let parts = payload.chunks(MAX_PAYLOAD);
        let empty_tail = payload.len().is_multiple_of(MAX_PAYLOAD);
        for part in parts.chain(empty_tail.then_some(&[][..])) {
            out.extend_from_slice(&(part.len() as u32).to_le_bytes()[..3]);
            out.push(self.seq);
            self.seq = self.seq.wrapping_add(1);
            out.extend_from_slice(part);
        }
        let io = self.io.get_mut();
        io.write_all(&out).await?;
        io.flush().await?;
        Ok(())
    }

    /// Reads one logical packet as its wire packets' payloads (each at most 16 MB).
    /// Cancel-safe: every await point is a `read` whose bytes land in `self.partial`.
    async fn read_chunks(&mut self) -> Result<VecDeque<Vec<u8>>, mysql_async::Error> {
        let eof =
            || mysql_async::Error::from(std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
        let p = &mut self.partial;
        loop {
            if p.header_filled < 4 {
                let n = self.io.read(&mut p.header[p.header_filled..]).await?;
                if n == 0 {
                    return Err(eof());
                }
                p.header_filled += n;
                continue;
            }
            let header = p.header;
            let len =
                usize::from(header[0]) | usize::from(header[1]) << 8 | usize::from(header[2]) << 16;
            let payload = match &mut p.payload {
                Some(payload) => payload,
                None => {
                    if header[3] != self.seq {
                        return Err(protocol(format!(
                            "packet {} arrived where {} was expected",
                            header[3], self.seq
                        )));
                    }
                    p.payload_filled = 0;
                    p.payload.insert(vec![0u8; len])
                }
            };
            if p.payload_filled < len {
                let n = self.io.read(&mut payload[p.payload_filled..]).await?;
                if n == 0 {
                    return Err(eof());
                }
                p.payload_filled += n;
                continue;
            }
            self.seq = self.seq.wrapping_add(1);
            p.header_filled = 0;
            let payload = p.payload.take().unwrap_or_default();
            if !payload.is_empty() || p.chunks.is_empty() {
                p.chunks.push_back(payload);
            }
            if len < MAX_PAYLOAD {
                return Ok(std::mem::take(&mut p.chunks));
            }
        }
    }

    /// Reads one logical packet in one buffer (handshake and command replies: small).
    async fn read_whole(&mut self) -> Result<Vec<u8>, mysql_async::Error> {
        let mut chunks = self.read_chunks().await?;
        let mut whole = chunks.pop_front().unwrap_or_default();
        for more in chunks {
            whole.extend_from_slice(&more);
        }
        Ok(whole)
    }
}

/// The authentication data for `plugin`, or `None` when this client cannot do it.
fn scramble(plugin: &[u8], nonce: &[u8], password: &str) -> Option<Vec<u8>> {
    let password = password.as_bytes();
    match plugin {
        b"mysql_native_password" => Some(
            mysql_common::scramble::scramble_native(nonce, password)
                .map(|s| s.to_vec())
                .unwrap_or_default(),
        ),
        b"caching_sha2_password" => Some(
            mysql_common::scramble::scramble_sha256(nonce, password)
                .map(|s| s.to_vec())
                .unwrap_or_default(),
        ),
        _ => None,
    }
}

/// One binlog event as read from the wire: its v4 header and its data (checksum verified and
/// removed) as the wire packets' bytes.
pub(crate) struct WireEvent {
    pub(crate) header: [u8; HEADER_LEN],
    /// The data, in pieces: the first starts right after the header.
    pub(crate) chunks: VecDeque<Vec<u8>>,
    /// Where the data starts in the first piece.
    pub(crate) offset: usize,
    /// Where it ends in the last piece (past it: the checksum).
    pub(crate) len: usize,
}

impl WireEvent {
    /// The header field at `at` of `n` bytes (little-endian).
    fn field(&self, at: usize, n: usize) -> u32 {
        self.header[at..at + n]
            .iter()
            .rev()
            .fold(0u32, |acc, &b| (acc << 8) | u32::from(b))
    }

    pub(crate) fn kind(&self) -> u8 {
        self.header[4]
    }

    pub(crate) fn timestamp(&self) -> u32 {
        self.field(0, 4)
    }

    pub(crate) fn server_id(&self) -> u32 {
        self.field(5, 4)
    }

    pub(crate) fn size(&self) -> u32 {
        self.field(9, 4)
    }

    pub(crate) fn end(&self) -> u32 {
        self.field(13, 4)
    }

    pub(crate) fn flags(&self) -> u16 {
        self.field(17, 2) as u16
    }

    /// Whether the data came in one wire packet.
    pub(crate) fn is_single(&self) -> bool {
        self.chunks.len() == 1
    }

    /// The data of a single-packet event.
    pub(crate) fn single(&self) -> &[u8] {
        match self.chunks.front() {
            Some(c) if self.chunks.len() == 1 => &c[self.offset..self.len],
            _ => &[],
        }
    }

    /// The data's length.
    pub(crate) fn data_len(&self) -> usize {
        let n = self.chunks.len();
        let full: usize = self.chunks.iter().map(Vec::len).sum();
        let last = self.chunks.back().map_or(0, Vec::len);
        if n == 0 {
            return 0;
        }
        full - self.offset - (last - self.len)
    }

    /// The data in one buffer (for events other than rows, which are never huge).
    pub(crate) fn contiguous(self) -> Vec<u8> {
        let n = self.chunks.len();
        let mut out = Vec::with_capacity(self.data_len());
        for (i, c) in self.chunks.into_iter().enumerate() {
            let from = if i == 0 { self.offset } else { 0 };
            let to = if i + 1 == n { self.len } else { c.len() };
            out.extend_from_slice(&c[from..to]);
        }
        out
    }
}

/// Why the next event could not be read.
pub(crate) enum WireError {
    /// The connection or the server failed (as mysql_async would report it).
    Driver(mysql_async::Error),
    /// The event's bytes are not what the server computed its checksum over; `start` is
    /// where the event starts in its file.
    Checksum { start: u64, reason: String },
}

impl From<mysql_async::Error> for WireError {
    fn from(e: mysql_async::Error) -> Self {
        WireError::Driver(e)
    }
}

/// The binlog dump's events.
pub(crate) struct WireStream {
    conn: WireConn,
    /// The binlog events carry a CRC32 checksum (the server's setting at first, then what
    /// the format description says).
    checksum: bool,
    seen_fde: bool,
}

impl WireStream {
    /// The next event; `None` when the server ended the stream.
    pub(crate) async fn next(&mut self) -> Option<Result<WireEvent, WireError>> {
        let chunks = match self.conn.read_chunks().await {
            Ok(chunks) => chunks,
            Err(e) => return Some(Err(e.into())),
        };
        let total: usize = chunks.iter().map(Vec::len).sum();
        match chunks.front().and_then(|c| c.first()) {
            Some(0x00) => Some(self.event(chunks, total)),
            Some(0xff) => {
                let whole: Vec<u8> = chunks.into_iter().flatten().collect();
                Some(Err(server_error(&whole, self.conn.capabilities).into()))
            }
            Some(0xfe) if total < 8 => None,
            _ => Some(Err(protocol(
                "the binlog stream sent a packet that is not an event",
            )
            .into())),
        }
    }

    fn event(&mut self, chunks: VecDeque<Vec<u8>>, total: usize) -> Result<WireEvent, WireError> {
        event_of(chunks, total, &mut self.checksum, &mut self.seen_fde)
    }
}

/// The event in a binlog packet's pieces (the OK byte first); `seen_fde` says whether the
/// format description has gone by (events before it keep their checksum bytes).
fn event_of(
    chunks: VecDeque<Vec<u8>>,
    total: usize,
    checksum: &mut bool,
    seen_fde: &mut bool,
) -> Result<WireEvent, WireError> {
    let Some(first) = chunks.front().filter(|c| c.len() > HEADER_LEN) else {
        return Err(protocol("a binlog event shorter than its header").into());
    };
    let mut header = [0u8; HEADER_LEN];
    header.copy_from_slice(&first[1..1 + HEADER_LEN]);
    // A format description's byte before its checksum: the checksum algorithm.
    let algorithm = (first.len() == total && total >= 5).then(|| first[total - 5]);
    let last_len = chunks.back().map_or(0, Vec::len);
    let mut event = WireEvent {
        header,
        chunks,
        offset: 1 + HEADER_LEN,
        len: last_len,
    };
    let is_fde = event.kind() == crate::tracker::event_type::FORMAT_DESCRIPTION;
    if is_fde {
        // The format description names the checksum algorithm in its byte before the
        // checksum (1: CRC32); the events after it follow that.
        *checksum = algorithm == Some(1);
    }
    // Like mysql_common: events before the format description (the fake rotate) keep
    // their checksum bytes; the tracker knows.
    if *checksum && (*seen_fde || is_fde) {
        verify_and_strip(&mut event, total).map_err(|reason| WireError::Checksum {
            start: u64::from(event.end()).saturating_sub(u64::from(event.size())),
            reason,
        })?;
    }
    *seen_fde |= is_fde;
    Ok(event)
}

/// Checks the event's CRC32 (over header and data, piece by piece) against its last four
/// bytes, then drops them.
fn verify_and_strip(event: &mut WireEvent, total: usize) -> Result<(), String> {
    // The OK byte is not part of the event.
    if total < 1 + HEADER_LEN + 4 {
        return Err("the event is too short for its checksum".into());
    }
    let covered = total - 4;
    let mut hasher = crc32fast::Hasher::new();
    let mut stored = Vec::with_capacity(4);
    let mut at = 0usize;
    for (i, c) in event.chunks.iter().enumerate() {
        let from = if i == 0 { 1 } else { 0 };
        let end = at + c.len();
        let hashed_to = covered.clamp(at, end) - at;
        if hashed_to > from {
            hasher.update(&c[from..hashed_to]);
        }
        stored.extend_from_slice(&c[hashed_to.max(from)..]);
        at = end;
    }
    let stored: [u8; 4] = stored
        .try_into()
        .map_err(|_| "the event's checksum is not 4 bytes".to_owned())?;
    let (stored, computed) = (u32::from_le_bytes(stored), hasher.finalize());
    if stored != computed {
        return Err(format!(
            "the event's CRC32 checksum is {stored:#010x} but its bytes give {computed:#010x}; \
             the event was damaged on the way"
        ));
    }
    // Drop the checksum bytes, which may span the last pieces.
    let mut strip = 4usize;
    while strip > 0 {
        let only = event.chunks.len() == 1;
        let Some(last) = event.chunks.back_mut() else {
            break;
        };
        let from = if only { event.offset } else { 0 };
        let available = last.len() - from;
        if available > strip {
            last.truncate(last.len() - strip);
            strip = 0;
        } else {
            strip -= available;
            if only {
                last.truncate(from);
                strip = 0;
            } else {
                event.chunks.pop_back();
            }
        }
    }
    event.len = event.chunks.back().map_or(0, Vec::len);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A binlog packet (OK byte, header, `data`, CRC32) cut into pieces of `piece` bytes.
    fn packet(data: &[u8], piece: usize, damage: bool) -> (VecDeque<Vec<u8>>, usize) {
        let size = (HEADER_LEN + data.len() + 4) as u32;
        let mut event = vec![0u8; HEADER_LEN];
        event[4] = crate::tracker::event_type::WRITE_ROWS_V2;
        event[9..13].copy_from_slice(&size.to_le_bytes());
        event[13..17].copy_from_slice(&(1000 + size).to_le_bytes());
        event.extend_from_slice(data);
        let crc = crc32fast::hash(&event);
        event.extend_from_slice(&crc.to_le_bytes());
        if damage {
            let at = event.len() / 2;
            event[at] ^= 1;
        }
        let mut bytes = vec![0u8];
        bytes.extend_from_slice(&event);
        let total = bytes.len();
        (bytes.chunks(piece).map(<[u8]>::to_vec).collect(), total)
    }

    #[test]
    fn a_multi_packet_event_is_checked_and_its_checksum_dropped_wherever_the_pieces_end() {
        let data: Vec<u8> = (0..300u32).map(|i| (i * 7) as u8).collect();
        // Pieces ending right after the header, inside the checksum, right before it.
        for piece in [20, 21, 64, 100, 101, 321, 322, 323, 1000] {
            let (chunks, total) = packet(&data, piece, false);
            let mut seen_fde = true;
            let Ok(event) = event_of(chunks, total, &mut true, &mut seen_fde) else {
                panic!("pieces of {piece}: refused")
            };
            assert_eq!(event.data_len(), data.len(), "pieces of {piece}");
            assert_eq!(event.contiguous(), data, "pieces of {piece}");
        }
    }

    #[test]
    fn a_damaged_multi_packet_event_is_refused_naming_where_it_starts() {
        let data = vec![0x5a; 5000];
        let (chunks, total) = packet(&data, 1024, true);
        assert!(chunks.len() > 1);
        let mut seen_fde = true;
        match event_of(chunks, total, &mut true, &mut seen_fde) {
            Err(WireError::Checksum { start, reason }) => {
                assert_eq!(start, 1000);
                assert!(reason.contains("checksum"), "{reason}");
            }
            Err(WireError::Driver(e)) => panic!("not a checksum error: {e}"),
            Ok(_) => panic!("a damaged event was accepted"),
        }
    }
}
