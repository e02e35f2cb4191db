//! Typed, resumable stream positions and their printable form.
//!
//! A MySQL/MariaDB position names the *start of a transaction* plus how many row changes of
//! that transaction were already delivered (`skip`). Resuming reconnects at the transaction
//! start and skips exactly those rows, so a position saved in the middle of a transaction
//! neither repeats nor loses a row (row events only decode after their TABLE_MAP, so the
//! offset of the row event itself would not be resumable).
//!
//! | form | meaning |
//! | --- | --- |
//! | `binlog:mysql-bin.000003:1234+2` | file and offset of the transaction start, 2 rows delivered |
//! | `mariadb-gtid:0-1-100,1-2-7+0` | MariaDB GTID state to connect with, nothing of the next transaction delivered |
//! | `mysql-gtid:3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5:7+1` | MySQL executed GTID set |
//! | `mongodb:<base64url>` | MongoDB resume token (raw BSON, opaque) |
//! | `mongodb-time:1700000000.3` | MongoDB cluster time (`t.i`) to start at |
//! | `mongodb-snapshot:<base64url>` | inside a MongoDB initial snapshot (JSON progress) |
//! | `mongodb-poll:<base64url>` | the MongoDB polling fallback's cursors (JSON) |
//! | `app:1732272000000.0` | an application's pushed event: epoch milliseconds and ordinal |

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// A position in a source's change history, resumable and printable.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Position {
    /// MySQL or MariaDB binlog.
    MySql(MySqlPosition),
    /// MongoDB change stream.
    MongoDb(MongoPosition),
    /// An event an application pushed through the hub: when, and its number within that
    /// millisecond. Orders pushed events; not a place to resume a database from.
    App {
        /// Milliseconds since the Unix epoch.
        at_ms: i64,
        /// Ordinal among the events pushed in that millisecond.
        seq: u64,
    },
}

/// A binlog position: where the transaction starts, and how many of its rows were delivered.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MySqlPosition {
    /// The transaction's starting point.
    pub start: TxnStart,
    /// Row changes of that transaction already delivered; resume skips exactly these.
    pub skip: u64,
}

/// How a transaction's start is addressed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TxnStart {
    /// Binlog file name and byte offset of the transaction's first event.
    File {
        /// Binlog file name, e.g. `mysql-bin.000003` (shared: every event of a file names it).
        file: Arc<str>,
        /// Byte offset in that file.
        offset: u64,
    },
    /// MariaDB GTID state (`gtid_slave_pos`) that ends just before the transaction.
    MariaDbGtid(MariaDbGtidList),
    /// MySQL executed GTID set that ends just before the transaction.
    MySqlGtid(GtidSet),
    /// Inside an initial snapshot taken at a binlog file position.
    Snapshot(SnapshotProgress),
    /// The polling fallback's cursors (no binlog involved).
    Poll(PollProgress),
}

/// The polling fallback's progress: per `db.table`, the last change-column value and key read.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize)]
pub struct PollProgress {
    /// `db.table` -> cursor.
    pub cursors: BTreeMap<String, PollCursor>,
}

/// Where polling of one table continues: rows after (`at`, `key`) in (column, key) order.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct PollCursor {
    /// Contract JSON of the change column's last value read.
    pub at: String,
    /// Contract JSON of the last key read at `at`; `None` means every row at `at` was read.
    pub key: Option<String>,
}

/// How far an initial snapshot got: the binlog position it corresponds to, the table being
/// read and the last key read from it (tables are read in name order, rows in key order).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct SnapshotProgress {
    /// Binlog file the snapshot corresponds to.
    pub file: String,
    /// Offset in that file.
    pub offset: u64,
    /// `db.table` being read.
    pub table: String,
    /// Compact JSON of the last key read from `table`; `None` before its first row.
    pub after: Option<String>,
}

/// A MongoDB change-stream position.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MongoPosition {
    /// A resume token: the raw BSON bytes of the `_id` document, treated as opaque.
    ResumeToken(Vec<u8>),
    /// A cluster time (`startAtOperationTime`).
    ClusterTime {
        /// Seconds.
        t: u32,
        /// Increment.
        i: u32,
    },
    /// Inside an initial snapshot whose change stream starts at a cluster time.
    Snapshot(MongoSnapshotProgress),
    /// The polling fallback's cursors (no change stream involved).
    Poll(PollProgress),
}

/// How far a MongoDB initial snapshot got: the cluster time its change stream starts at, the
/// collection being read and the last `_id` read from it (collections in name order, documents
/// in `_id` order).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct MongoSnapshotProgress {
    /// Cluster time seconds the change stream starts at once the scan is done.
    pub t: u32,
    /// Cluster time increment.
    pub i: u32,
    /// `db.collection` being read.
    pub collection: String,
    /// Canonical Extended JSON of the last `_id` read from `collection`; `None` before its
    /// first document.
    pub after: Option<String>,
}

/// Why text could not be read as a position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid position `{input}`: {reason}")]
pub struct PositionParseError {
    /// The rejected text.
    pub input: String,
    /// What is wrong with it.
    pub reason: String,
}

fn parse_err(input: &str, reason: impl Into<String>) -> PositionParseError {
    PositionParseError {
        input: input.to_owned(),
        reason: reason.into(),
    }
}

impl Position {
    /// A file/offset binlog position.
    pub fn binlog(file: impl Into<Arc<str>>, offset: u64, skip: u64) -> Self {
        Position::MySql(MySqlPosition {
            start: TxnStart::File {
                file: file.into(),
                offset,
            },
            skip,
        })
    }

    /// Orders two positions of the same history where that is knowable.
    ///
    /// File positions compare by file sequence number, offset and skip; GTID positions by set
    /// inclusion, then skip; MongoDB tokens are opaque and compare only for equality. `None`
    /// means "not comparable" (different kinds, concurrent GTID sets, different tokens).
    pub fn compare(&self, other: &Position) -> Option<Ordering> {
        match (self, other) {
            (Position::MySql(a), Position::MySql(b)) => {
                let start = match (&a.start, &b.start) {
                    (
                        TxnStart::File {
                            file: fa,
                            offset: oa,
                        },
                        TxnStart::File {
                            file: fb,
                            offset: ob,
                        },
                    ) => compare_binlog_files(fa, fb)?.then(oa.cmp(ob)),
                    (TxnStart::MariaDbGtid(x), TxnStart::MariaDbGtid(y)) => x.compare(y)?,
                    (TxnStart::MySqlGtid(x), TxnStart::MySqlGtid(y)) => x.compare(y)?,
                    (TxnStart::Snapshot(x), TxnStart::Snapshot(y)) => {
                        return (x == y).then_some(Ordering::Equal);
                    }
                    // A snapshot precedes every binlog position from its own onwards.
                    (TxnStart::Snapshot(x), TxnStart::File { file, offset }) => {
                        let at = compare_binlog_files(&x.file, file)?.then(x.offset.cmp(offset));
                        return at.is_le().then_some(Ordering::Less);
                    }
                    (TxnStart::File { file, offset }, TxnStart::Snapshot(y)) => {
                        let at = compare_binlog_files(file, &y.file)?.then(offset.cmp(&y.offset));
                        return at.is_ge().then_some(Ordering::Greater);
                    }
                    _ => return None,
                };
                Some(start.then(a.skip.cmp(&b.skip)))
            }
            (
                Position::MongoDb(MongoPosition::ClusterTime { t: ta, i: ia }),
                Position::MongoDb(MongoPosition::ClusterTime { t: tb, i: ib }),
            ) => Some((ta, ia).cmp(&(tb, ib))),
            (Position::App { at_ms: ma, seq: sa }, Position::App { at_ms: mb, seq: sb }) => {
                Some((ma, sa).cmp(&(mb, sb)))
            }
            (a, b) => (a == b).then_some(Ordering::Equal),
        }
    }
}

fn compare_binlog_files(a: &str, b: &str) -> Option<Ordering> {
    if a == b {
        return Some(Ordering::Equal);
    }
    let (base_a, seq_a) = a.rsplit_once('.')?;
    let (base_b, seq_b) = b.rsplit_once('.')?;
    if base_a != base_b {
        return None;
    }
    let (na, nb) = (seq_a.parse::<u64>().ok()?, seq_b.parse::<u64>().ok()?);
    Some(na.cmp(&nb))
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Position::MySql(p) => {
                match &p.start {
                    TxnStart::File { file, offset } => write!(f, "binlog:{file}:{offset}")?,
                    TxnStart::MariaDbGtid(list) => write!(f, "mariadb-gtid:{list}")?,
                    TxnStart::MySqlGtid(set) => write!(f, "mysql-gtid:{set}")?,
                    TxnStart::Snapshot(progress) => write_json_b64(f, "mysql-snapshot", progress)?,
                    TxnStart::Poll(progress) => write_json_b64(f, "mysql-poll", progress)?,
                }
                write!(f, "+{}", p.skip)
            }
            Position::MongoDb(MongoPosition::ResumeToken(bytes)) => {
                write!(f, "mongodb:{}", URL_SAFE_NO_PAD.encode(bytes))
            }
            Position::MongoDb(MongoPosition::ClusterTime { t, i }) => {
                write!(f, "mongodb-time:{t}.{i}")
            }
            Position::MongoDb(MongoPosition::Snapshot(progress)) => {
                write_json_b64(f, "mongodb-snapshot", progress)
            }
            Position::MongoDb(MongoPosition::Poll(progress)) => {
                write_json_b64(f, "mongodb-poll", progress)
            }
            Position::App { at_ms, seq } => write!(f, "app:{at_ms}.{seq}"),
        }
    }
}

/// `<kind>:<base64url of the JSON of progress>`: progress records are printable but opaque.
fn write_json_b64(
    f: &mut fmt::Formatter<'_>,
    kind: &str,
    progress: &impl serde::Serialize,
) -> fmt::Result {
    let json = serde_json::to_vec(progress).map_err(|_| fmt::Error)?;
    write!(f, "{kind}:{}", URL_SAFE_NO_PAD.encode(json))
}

fn parse_json_b64<T: serde::de::DeserializeOwned>(
    input: &str,
    body: &str,
    what: &str,
) -> Result<T, PositionParseError> {
    let json = URL_SAFE_NO_PAD
        .decode(body)
        .map_err(|e| parse_err(input, format!("{what} is not base64url: {e}")))?;
    serde_json::from_slice(&json).map_err(|e| parse_err(input, format!("{what}: {e}")))
}

impl FromStr for Position {
    type Err = PositionParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (kind, rest) = s.split_once(':').ok_or_else(|| {
            parse_err(
                s,
                "expected `<kind>:...`, e.g. `binlog:mysql-bin.000001:4+0`",
            )
        })?;
        let split_skip = |rest: &str| -> Result<(String, u64), PositionParseError> {
            let (body, skip) = rest
                .rsplit_once('+')
                .ok_or_else(|| parse_err(s, "missing `+<rows already delivered>` suffix"))?;
            let skip = skip
                .parse::<u64>()
                .map_err(|_| parse_err(s, format!("row count `{skip}` is not a number")))?;
            Ok((body.to_owned(), skip))
        };
        match kind {
            "binlog" => {
                let (body, skip) = split_skip(rest)?;
                let (file, offset) = body
                    .rsplit_once(':')
                    .ok_or_else(|| parse_err(s, "expected `binlog:<file>:<offset>+<n>`"))?;
                if file.is_empty() {
                    return Err(parse_err(s, "empty binlog file name"));
                }
                let offset = offset
                    .parse::<u64>()
                    .map_err(|_| parse_err(s, format!("offset `{offset}` is not a number")))?;
                Ok(Position::binlog(file, offset, skip))
            }
            "mariadb-gtid" => {
                let (body, skip) = split_skip(rest)?;
                let list = body
                    .parse::<MariaDbGtidList>()
                    .map_err(|e| parse_err(s, e.reason))?;
                Ok(Position::MySql(MySqlPosition {
                    start: TxnStart::MariaDbGtid(list),
                    skip,
                }))
            }
            "mysql-gtid" => {
                let (body, skip) = split_skip(rest)?;
                let set = body
                    .parse::<GtidSet>()
                    .map_err(|e| parse_err(s, e.reason))?;
                Ok(Position::MySql(MySqlPosition {
                    start: TxnStart::MySqlGtid(set),
                    skip,
                }))
            }
            "mysql-snapshot" => {
                let (body, skip) = split_skip(rest)?;
                let progress = parse_json_b64(s, &body, "snapshot progress")?;
                Ok(Position::MySql(MySqlPosition {
                    start: TxnStart::Snapshot(progress),
                    skip,
                }))
            }
            "mysql-poll" => {
                let (body, skip) = split_skip(rest)?;
                let progress = parse_json_b64(s, &body, "poll progress")?;
                Ok(Position::MySql(MySqlPosition {
                    start: TxnStart::Poll(progress),
                    skip,
                }))
            }
            "mongodb" => {
                let bytes = URL_SAFE_NO_PAD
                    .decode(rest)
                    .map_err(|e| parse_err(s, format!("resume token is not base64url: {e}")))?;
                if bytes.is_empty() {
                    return Err(parse_err(s, "empty resume token"));
                }
                Ok(Position::MongoDb(MongoPosition::ResumeToken(bytes)))
            }
            "mongodb-time" => {
                let (t, i) = rest
                    .split_once('.')
                    .ok_or_else(|| parse_err(s, "expected `mongodb-time:<seconds>.<increment>`"))?;
                let t = t
                    .parse()
                    .map_err(|_| parse_err(s, format!("seconds `{t}` is not a u32")))?;
                let i = i
                    .parse()
                    .map_err(|_| parse_err(s, format!("increment `{i}` is not a u32")))?;
                Ok(Position::MongoDb(MongoPosition::ClusterTime { t, i }))
            }
            "app" => {
                let (ms, seq) = rest
                    .split_once('.')
                    .ok_or_else(|| parse_err(s, "expected `app:<epoch ms>.<ordinal>`"))?;
                let at_ms = ms
                    .parse()
                    .map_err(|_| parse_err(s, format!("milliseconds `{ms}` are not a number")))?;
                let seq = seq
                    .parse()
                    .map_err(|_| parse_err(s, format!("ordinal `{seq}` is not a number")))?;
                Ok(Position::App { at_ms, seq })
            }
            "mongodb-snapshot" => Ok(Position::MongoDb(MongoPosition::Snapshot(parse_json_b64(
                s,
                rest,
                "snapshot progress",
            )?))),
            "mongodb-poll" => Ok(Position::MongoDb(MongoPosition::Poll(parse_json_b64(
                s,
                rest,
                "poll progress",
            )?))),
            other => Err(parse_err(
                s,
                format!(
                    "unknown kind `{other}` (expected binlog, mariadb-gtid, mysql-gtid, mysql-snapshot, mysql-poll, mongodb, mongodb-time, mongodb-snapshot, mongodb-poll or app)"
                ),
            )),
        }
    }
}

impl serde::Serialize for Position {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Position {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// One MariaDB GTID: `domain-server-sequence`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MariaDbGtid {
    /// Replication domain id.
    pub domain: u32,
    /// Server id that wrote the transaction.
    pub server: u32,
    /// Sequence number within the domain.
    pub sequence: u64,
}

impl fmt::Display for MariaDbGtid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{}", self.domain, self.server, self.sequence)
    }
}

impl FromStr for MariaDbGtid {
    type Err = PositionParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut parts = s.trim().splitn(3, '-');
        let mut next = |what: &str| {
            parts
                .next()
                .filter(|p| !p.is_empty())
                .ok_or_else(|| parse_err(s, format!("MariaDB GTID `{s}` lacks its {what}")))
        };
        let (d, sv, sq) = (next("domain")?, next("server id")?, next("sequence")?);
        let bad = |what: &str, v: &str| parse_err(s, format!("GTID {what} `{v}` is not a number"));
        Ok(Self {
            domain: d.parse().map_err(|_| bad("domain", d))?,
            server: sv.parse().map_err(|_| bad("server id", sv))?,
            sequence: sq.parse().map_err(|_| bad("sequence", sq))?,
        })
    }
}

/// A MariaDB GTID state: the last GTID per replication domain (`0-1-100,1-2-7`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct MariaDbGtidList {
    by_domain: BTreeMap<u32, MariaDbGtid>,
}

impl MariaDbGtidList {
    /// Records `gtid` as the latest of its domain.
    pub fn apply(&mut self, gtid: MariaDbGtid) {
        self.by_domain.insert(gtid.domain, gtid);
    }

    /// The GTIDs, ordered by domain.
    pub fn iter(&self) -> impl Iterator<Item = &MariaDbGtid> {
        self.by_domain.values()
    }

    /// Whether no domain has a GTID.
    pub fn is_empty(&self) -> bool {
        self.by_domain.is_empty()
    }

    /// Domain-wise order: `Less` when no domain is ahead in `self` and one is behind.
    pub fn compare(&self, other: &Self) -> Option<Ordering> {
        let mut result = Ordering::Equal;
        let domains: std::collections::BTreeSet<u32> = self
            .by_domain
            .keys()
            .chain(other.by_domain.keys())
            .copied()
            .collect();
        for d in domains {
            let a = self.by_domain.get(&d).map_or(0, |g| g.sequence);
            let b = other.by_domain.get(&d).map_or(0, |g| g.sequence);
            match (result, a.cmp(&b)) {
                (_, Ordering::Equal) => {}
                (Ordering::Equal, o) => result = o,
                (r, o) if r != o => return None,
                _ => {}
            }
        }
        Some(result)
    }
}

impl fmt::Display for MariaDbGtidList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, g) in self.by_domain.values().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{g}")?;
        }
        Ok(())
    }
}

impl FromStr for MariaDbGtidList {
    type Err = PositionParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut list = Self::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let gtid: MariaDbGtid = part.parse()?;
            if list.by_domain.contains_key(&gtid.domain) {
                return Err(parse_err(
                    s,
                    format!("domain {} appears twice in the GTID list", gtid.domain),
                ));
            }
            list.apply(gtid);
        }
        Ok(list)
    }
}

/// A MySQL GTID set (`uuid:1-5:7,uuid2:1-3`, tagged form `uuid:tag:1-3` too), with intervals
/// merged and sorted, as `gtid_executed` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct GtidSet {
    /// Per source (uuid, optional tag): sorted, disjoint, non-adjacent inclusive intervals.
    sources: BTreeMap<(String, String), Vec<(u64, u64)>>,
}

impl GtidSet {
    /// Adds transactions `start..=end` of `uuid` (tag empty for untagged), merging intervals.
    pub fn add(&mut self, uuid: &str, tag: &str, start: u64, end: u64) {
        let (start, end) = (start.min(end), start.max(end));
        let intervals = self
            .sources
            .entry((uuid.to_ascii_lowercase(), tag.to_owned()))
            .or_default();
        intervals.push((start, end));
        intervals.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(intervals.len());
        for &(s, e) in intervals.iter() {
            match merged.last_mut() {
                Some(last) if s <= last.1.saturating_add(1) => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        *intervals = merged;
    }

    /// Whether transaction `gno` of `uuid` (with `tag`) is in the set.
    pub fn contains(&self, uuid: &str, tag: &str, gno: u64) -> bool {
        self.sources
            .get(&(uuid.to_ascii_lowercase(), tag.to_owned()))
            .is_some_and(|iv| iv.iter().any(|&(s, e)| s <= gno && gno <= e))
    }

    /// Whether every transaction of `self` is in `other`.
    pub fn is_subset(&self, other: &Self) -> bool {
        self.sources.iter().all(|(src, ivs)| {
            let Some(theirs) = other.sources.get(src) else {
                return ivs.is_empty();
            };
            ivs.iter()
                .all(|&(s, e)| theirs.iter().any(|&(ts, te)| ts <= s && e <= te))
        })
    }

    /// Order by inclusion; `None` when neither contains the other.
    pub fn compare(&self, other: &Self) -> Option<Ordering> {
        match (self.is_subset(other), other.is_subset(self)) {
            (true, true) => Some(Ordering::Equal),
            (true, false) => Some(Ordering::Less),
            (false, true) => Some(Ordering::Greater),
            (false, false) => None,
        }
    }

    /// Whether the set holds no transaction.
    pub fn is_empty(&self) -> bool {
        self.sources.values().all(Vec::is_empty)
    }
}

impl fmt::Display for GtidSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut prev_uuid: Option<&str> = None;
        let mut first = true;
        for ((uuid, tag), ivs) in &self.sources {
            if prev_uuid != Some(uuid.as_str()) {
                if !first {
                    f.write_str(",")?;
                }
                f.write_str(uuid)?;
                prev_uuid = Some(uuid);
            }
            first = false;
            if !tag.is_empty() {
                write!(f, ":{tag}")?;
            }
            for &(s, e) in ivs {
                if s == e {
                    write!(f, ":{s}")?;
                } else {
                    write!(f, ":{s}-{e}")?;
                }
            }
        }
        Ok(())
    }
}

fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

impl FromStr for GtidSet {
    type Err = PositionParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut set = GtidSet::default();
        for source in s
            .split(',')
            .map(|p| p.trim().trim_matches('\n'))
            .filter(|p| !p.is_empty())
        {
            let mut parts = source.split(':');
            let uuid = parts.next().unwrap_or_default();
            if !is_uuid(uuid) {
                return Err(parse_err(s, format!("`{uuid}` is not a server UUID")));
            }
            let mut tag = String::new();
            let mut any = false;
            for part in parts {
                if part.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
                    tag = part.to_ascii_lowercase();
                    continue;
                }
                let (a, b) = part.split_once('-').unwrap_or((part, part));
                let bad = || parse_err(s, format!("`{part}` is not a transaction interval"));
                let (a, b): (u64, u64) =
                    (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
                if a == 0 || b < a {
                    return Err(bad());
                }
                set.add(uuid, &tag, a, b);
                any = true;
            }
            if !any {
                return Err(parse_err(
                    s,
                    format!("`{source}` has no transaction interval"),
                ));
            }
        }
        Ok(set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const U1: &str = "3e11fa47-71ca-11e1-9e33-c80aa9429562";

    #[test]
    fn every_form_round_trips_through_text() {
        for text in [
            "binlog:mysql-bin.000003:1234+0",
            "binlog:odd:name.000001:4+17",
            "mariadb-gtid:0-1-100,1-2-7+3",
            "mariadb-gtid:+0",
            "mysql-gtid:3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5:7+1",
            "mysql-gtid:3e11fa47-71ca-11e1-9e33-c80aa9429562:1-2:blue:4-9+0",
            "mongodb:gmVCb3Jn",
            "mongodb-time:1700000000.3",
            "mongodb-snapshot:eyJ0IjoxNzAwMDAwMDAwLCJpIjozLCJjb2xsZWN0aW9uIjoic2hvcC5vcmRlcnMiLCJhZnRlciI6bnVsbH0",
            "mongodb-poll:eyJjdXJzb3JzIjp7fX0",
            "app:1732272000000.3",
            "mysql-snapshot:eyJmaWxlIjoibXlzcWwtYmluLjAwMDAwMSIsIm9mZnNldCI6NCwidGFibGUiOiJzaG9wLm9yZGVycyIsImFmdGVyIjoie1wiaWRcIjo3fSJ9+0",
        ] {
            let p: Position = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(p.to_string(), text);
        }
    }

    #[test]
    fn bad_positions_name_the_input_and_the_fault() {
        for (text, fault) in [
            ("nonsense", "expected `<kind>:"),
            ("binlog:f:12", "missing `+"),
            ("binlog:f:x+0", "offset `x`"),
            ("binlog::4+0", "empty binlog file name"),
            ("mariadb-gtid:0-1+0", "lacks its sequence"),
            ("mariadb-gtid:0-1-2,0-1-3+0", "appears twice"),
            ("mysql-gtid:nope:1-3+0", "not a server UUID"),
            (
                "mysql-gtid:3e11fa47-71ca-11e1-9e33-c80aa9429562:5-2+0",
                "not a transaction interval",
            ),
            ("mongodb:!!+", "not base64url"),
            ("kafka:1+0", "unknown kind `kafka`"),
            ("binlog:f:1+x", "row count `x`"),
        ] {
            let err = text.parse::<Position>().expect_err(text).to_string();
            assert!(err.contains(&format!("`{text}`")), "{err}");
            assert!(err.contains(fault), "{text}: {err}");
        }
    }

    #[test]
    fn gtid_set_merges_adjacent_and_overlapping_intervals() {
        let set: GtidSet = format!("{U1}:1-3:4-5:9:7-8:20").parse().expect("set");
        assert_eq!(set.to_string(), format!("{U1}:1-5:7-9:20"));
        let mut grown = set.clone();
        grown.add(&U1.to_uppercase(), "", 6, 6);
        assert_eq!(grown.to_string(), format!("{U1}:1-9:20"));
        assert!(set.contains(U1, "", 8));
        assert!(!set.contains(U1, "", 6));
        assert_eq!(set.compare(&grown), Some(Ordering::Less));
        let other: GtidSet = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee:1"
            .parse()
            .expect("set");
        assert_eq!(set.compare(&other), None);
    }

    #[test]
    fn positions_order_within_one_history_only() {
        let p = |s: &str| s.parse::<Position>().expect(s);
        let a = p("binlog:mysql-bin.000009:900+2");
        let b = p("binlog:mysql-bin.000010:4+0");
        assert_eq!(a.compare(&b), Some(Ordering::Less));
        assert_eq!(
            p("binlog:mysql-bin.000010:4+1").compare(&b),
            Some(Ordering::Greater)
        );
        assert_eq!(p("binlog:other.000001:4+0").compare(&b), None);
        assert_eq!(
            p("mariadb-gtid:0-1-5,1-1-3+0").compare(&p("mariadb-gtid:0-1-6,1-1-3+0")),
            Some(Ordering::Less)
        );
        assert_eq!(
            p("mariadb-gtid:0-1-5,1-1-4+0").compare(&p("mariadb-gtid:0-1-6,1-1-3+0")),
            None
        );
        assert_eq!(p("mongodb:AAAA").compare(&p("mongodb:AAAB")), None);
        assert_eq!(
            p("mongodb:AAAA").compare(&p("mongodb:AAAA")),
            Some(Ordering::Equal)
        );
        assert_eq!(a.compare(&p("mongodb:AAAA")), None);
        let snap = Position::MySql(MySqlPosition {
            start: TxnStart::Snapshot(SnapshotProgress {
                file: "mysql-bin.000009".into(),
                offset: 900,
                table: "shop.orders".into(),
                after: Some("{\"id\":7}".into()),
            }),
            skip: 0,
        });
        assert_eq!(snap.compare(&a), Some(Ordering::Less));
        assert_eq!(b.compare(&snap), Some(Ordering::Greater));
        assert_eq!(
            snap.to_string().parse::<Position>().expect("round trip"),
            snap
        );
    }

    #[test]
    fn positions_serialize_as_their_string() {
        let p: Position = "binlog:mysql-bin.000001:4+0".parse().expect("position");
        let json = serde_json::to_string(&p).expect("serialize");
        assert_eq!(json, "\"binlog:mysql-bin.000001:4+0\"");
        let back: Position = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, p);
        let err = serde_json::from_str::<Position>("\"bad\"").expect_err("bad");
        assert!(err.to_string().contains("invalid position `bad`"));
    }
}
