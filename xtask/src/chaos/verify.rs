//! The oracles: an uninterrupted reference read (hash and position of every line), the tables
//! rebuilt from events and compared with the server's `SELECT`, and the walk of restarted runs
//! over the reference that counts what was lost, misread and repeated.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash as _, Hasher as _};
use std::io::{BufRead as _, BufReader};
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde_json::Value;
use stream_testkit::mariadb::MariaDb;

use super::workload::{Kind, TABLES, TableSpec};

/// How many examples of each kind of failure a report shows.
pub(crate) const EXAMPLES: usize = 5;

pub(crate) fn hash(text: &str) -> u64 {
    let mut h = DefaultHasher::new();
    text.hash(&mut h);
    h.finish()
}

/// A binlog file position as a comparable tuple: (file sequence number, offset, rows
/// delivered). Other position forms (snapshot, GTID) are `None`.
pub(crate) fn binlog_position(position: &str) -> Option<(u64, u64, u64)> {
    let rest = position.strip_prefix("binlog:")?;
    let (rest, skip) = rest.rsplit_once('+')?;
    let (file, offset) = rest.rsplit_once(':')?;
    let seq = file.rsplit('.').next()?.parse().ok()?;
    Some((seq, offset.parse().ok()?, skip.parse().ok()?))
}

/// Calls `each` with every whole line of a file (a last line without its newline was cut by a
/// kill: never delivered); returns whether such a cut line was there.
pub(crate) fn for_each_line(path: &Path, mut each: impl FnMut(&str) -> Result<()>) -> Result<bool> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(false);
        }
        let Some(whole) = line.strip_suffix('\n') else {
            return Ok(true);
        };
        each(whole)?;
    }
}

/// Rows of the workload's tables rebuilt from change events, as hashes of their compared
/// columns; every `before` image is checked against the row it replaces.
#[derive(Debug, Default)]
pub(crate) struct Replica {
    rows: HashMap<(usize, i64), u64>,
    /// Events whose `before` did not match the rebuilt row, or that could not be applied.
    pub(crate) misread: u64,
    /// Snapshot rows read again after a restart inside the snapshot (same row, same content).
    pub(crate) repeats: u64,
    /// Snapshot rows read again with newer content (a restarted snapshot's newer view).
    pub(crate) superseded: u64,
    pub(crate) examples: Vec<String>,
    /// While set, a delete of a row never delivered is counted in `unknown_deletes` instead of
    /// as misread: a resumed snapshot delivers the deletes of rows that existed while the
    /// attempt before it ran, which may have printed them past its checkpoint (at least once;
    /// a row that still exists at the end shows in the comparison with the server).
    pub(crate) hold_unknown_deletes: bool,
    pub(crate) unknown_deletes: u64,
}

fn canonical_value(value: Option<&Value>, kind: Kind) -> String {
    match (value, kind) {
        (None, _) => "<absent>".to_owned(),
        (Some(Value::Null), _) => "NULL".to_owned(),
        (Some(v), Kind::Float) => v.as_f64().map_or_else(|| v.to_string(), |f| f.to_string()),
        (Some(v), Kind::Json) => sorted_json(v),
        (Some(Value::String(s)), Kind::Plain) => s.clone(),
        (Some(v), Kind::Plain) => v.to_string(),
    }
}

/// JSON text with every object's keys in order, whatever order the map keeps (serde_json's
/// `preserve_order` may be on through another crate of the workspace).
fn sorted_json(v: &Value) -> String {
    match v {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            let inner: Vec<String> = entries
                .into_iter()
                .map(|(k, v)| format!("{}:{}", Value::String(k.clone()), sorted_json(v)))
                .collect();
            format!("{{{}}}", inner.join(","))
        }
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(sorted_json).collect();
            format!("[{}]", inner.join(","))
        }
        other => other.to_string(),
    }
}

fn canonical_text(text: &str, kind: Kind) -> String {
    match kind {
        _ if text == "NULL" => "NULL".to_owned(),
        Kind::Float => text
            .parse::<f64>()
            .map_or_else(|_| text.to_owned(), |f| f.to_string()),
        Kind::Json => serde_json::from_str::<Value>(text)
            .map_or_else(|_| text.to_owned(), |v| sorted_json(&v)),
        Kind::Plain => text.to_owned(),
    }
}

fn row_of_event(spec: &TableSpec, image: &Value) -> String {
    let values: Vec<String> = spec
        .columns
        .iter()
        .map(|(name, _, kind)| canonical_value(image.get(*name), *kind))
        .collect();
    values.join("\u{1f}")
}

impl Replica {
    fn note(&mut self, what: String) {
        self.misread += 1;
        if self.examples.len() < EXAMPLES {
            self.examples.push(what);
        }
    }

    /// Applies one printed event.
    pub(crate) fn apply(&mut self, event: &Value) {
        let table = event["table"].as_str().unwrap_or_default();
        let Some(t) = TABLES.iter().position(|s| s.name == table) else {
            self.note(format!("an event of an unknown table `{table}`"));
            return;
        };
        let spec = &TABLES[t];
        let Some(id) = event["key"]["id"].as_i64() else {
            self.note(format!(
                "an event of {table} without an integer key: {event}"
            ));
            return;
        };
        let position = event["position"].as_str().unwrap_or_default();
        let op = event["op"].as_str().unwrap_or_default();
        if op == "update" || op == "delete" {
            let before = hash(&row_of_event(spec, &event["before"]));
            match self.rows.get(&(t, id)) {
                Some(&had) if had == before => {}
                Some(_) => self.note(format!(
                    "{table} id {id}: the before image at {position} is not the row as rebuilt"
                )),
                None if op == "delete" && self.hold_unknown_deletes => {
                    self.unknown_deletes += 1;
                }
                None => self.note(format!(
                    "{table} id {id}: {op} at {position} of a row never inserted"
                )),
            }
        }
        match op {
            "insert" | "update" => {
                let after = hash(&row_of_event(spec, &event["after"]));
                match self.rows.insert((t, id), after) {
                    Some(had) if op == "insert" => {
                        if !position.starts_with("mysql-snapshot:") {
                            self.note(format!(
                                "{table} id {id}: inserted at {position} while it exists"
                            ));
                        } else if had == after {
                            self.repeats += 1;
                        } else {
                            self.superseded += 1;
                        }
                    }
                    _ => {}
                }
            }
            "delete" => {
                self.rows.remove(&(t, id));
            }
            other => self.note(format!("unknown op `{other}` at {position}")),
        }
    }

    /// Compares the rebuilt rows of `db` with the server's.
    pub(crate) fn compare(&self, server: &MariaDb, db: &str) -> Result<Comparison> {
        let mut c = Comparison::default();
        let mut seen: u64 = 0;
        for (t, spec) in TABLES.iter().enumerate() {
            let exists = server
                .sql(&format!(
                    "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{db}' \
                     AND TABLE_NAME = '{}'",
                    spec.name
                ))
                .map_err(anyhow::Error::msg)?;
            if exists.trim() == "0" {
                continue;
            }
            let exprs: Vec<&str> = spec.columns.iter().map(|c| c.1).collect();
            let text = server
                .sql(&format!(
                    "SELECT {} FROM `{db}`.`{}`",
                    exprs.join(", "),
                    spec.name
                ))
                .map_err(anyhow::Error::msg)?;
            for line in text.lines() {
                c.rows += 1;
                let fields: Vec<String> = line
                    .split('\t')
                    .zip(spec.columns)
                    .map(|(f, c)| canonical_text(f, c.2))
                    .collect();
                let id: i64 = fields[0]
                    .parse()
                    .with_context(|| format!("{}: id `{}`", spec.name, fields[0]))?;
                match self.rows.get(&(t, id)) {
                    Some(&h) if h == hash(&fields.join("\u{1f}")) => seen += 1,
                    Some(_) => {
                        seen += 1;
                        c.differ += 1;
                        c.example(format!(
                            "{db}.{} id {id}: the rebuilt row differs",
                            spec.name
                        ));
                    }
                    None => {
                        c.missing += 1;
                        c.example(format!(
                            "{db}.{} id {id}: no event made this row",
                            spec.name
                        ));
                    }
                }
            }
        }
        c.extra = self.rows.len() as u64 - seen;
        if c.extra > 0 {
            c.example(format!(
                "{} rows rebuilt from events are not on the server",
                c.extra
            ));
        }
        Ok(c)
    }
}

/// Rebuilt tables against the server's: rows are missing or extra when events were lost,
/// differ when one was misread (or lost: an update).
#[derive(Debug, Default)]
pub(crate) struct Comparison {
    pub(crate) rows: u64,
    pub(crate) missing: u64,
    pub(crate) extra: u64,
    pub(crate) differ: u64,
    pub(crate) examples: Vec<String>,
}

impl Comparison {
    fn example(&mut self, what: String) {
        if self.examples.len() < EXAMPLES {
            self.examples.push(what);
        }
    }

    /// One line for the report.
    pub(crate) fn summary(&self) -> String {
        format!(
            "tables rebuilt from the events against the server's SELECT: {} rows, {} missing, \
             {} extra, {} different",
            self.rows, self.missing, self.extra, self.differ
        )
    }
}

/// The uninterrupted read every restarted run is compared with.
#[derive(Debug, Default)]
pub(crate) struct Reference {
    hashes: Vec<u64>,
    /// Binlog positions in order (empty for other sources).
    positions: Vec<(u64, u64, u64)>,
    /// The line of each position (by the position's hash): any source.
    at: HashMap<u64, usize>,
}

/// The `position` of a printed event line.
fn position_of(event: &Value) -> &str {
    event["position"].as_str().unwrap_or_default()
}

impl Reference {
    /// Reads a reference output of binlog events, feeding every event to `replica`; fails when
    /// its positions are not binlog file positions in strictly increasing order.
    pub(crate) fn load(path: &Path, replica: &mut Replica) -> Result<Self> {
        Self::load_with(path, true, |event| {
            replica.apply(event);
            Ok(())
        })
    }

    /// Reads a reference output, calling `each` with every event. `binlog`: positions must be
    /// binlog file positions in strictly increasing order; otherwise each must be unique.
    pub(crate) fn load_with(
        path: &Path,
        binlog: bool,
        mut each: impl FnMut(&Value) -> Result<()>,
    ) -> Result<Self> {
        let mut reference = Reference::default();
        let cut = for_each_line(path, |line| {
            let event: Value = serde_json::from_str(line)
                .with_context(|| format!("a reference line is not JSON: {line}"))?;
            let position = position_of(&event);
            if binlog {
                let Some(tuple) = binlog_position(position) else {
                    bail!("reference position `{position}` is not a binlog file position");
                };
                if reference
                    .positions
                    .last()
                    .is_some_and(|&last| last >= tuple)
                {
                    bail!("reference positions do not increase at `{position}`");
                }
                reference.positions.push(tuple);
            }
            let index = reference.hashes.len();
            if reference.at.insert(hash(position), index).is_some() {
                bail!("reference position `{position}` is printed twice");
            }
            each(&event)?;
            reference.hashes.push(hash(line));
            Ok(())
        })?;
        if cut {
            bail!("the reference output ends in a cut line");
        }
        Ok(reference)
    }

    pub(crate) fn len(&self) -> usize {
        self.hashes.len()
    }

    /// The index of this line in the reference (same position, same content).
    fn locate(&self, line: &str, line_hash: u64) -> Option<usize> {
        let event = serde_json::from_str::<Value>(line).ok()?;
        let i = *self.at.get(&hash(position_of(&event)))?;
        (self.hashes[i] == line_hash).then_some(i)
    }

    /// The index of the first line after a binlog `position` (where a resume from it starts).
    pub(crate) fn first_after(&self, position: (u64, u64, u64)) -> usize {
        self.positions.partition_point(|&p| p <= position)
    }
}

/// Restarted runs laid over the reference, in order.
#[derive(Debug)]
pub(crate) struct Walk<'a> {
    reference: &'a Reference,
    delivered: Vec<bool>,
    pub(crate) repeats: u64,
    pub(crate) most_repeats_at_once: u64,
    pub(crate) misread: u64,
    /// Runs that did not start exactly after the checkpoint they resumed from.
    pub(crate) off_checkpoint: u64,
    pub(crate) cut_lines: u64,
    pub(crate) lines: u64,
    pub(crate) examples: Vec<String>,
}

impl<'a> Walk<'a> {
    pub(crate) fn new(reference: &'a Reference) -> Self {
        Self {
            reference,
            delivered: vec![false; reference.len()],
            repeats: 0,
            most_repeats_at_once: 0,
            misread: 0,
            off_checkpoint: 0,
            cut_lines: 0,
            lines: 0,
            examples: Vec::new(),
        }
    }

    fn example(&mut self, what: String) {
        if self.examples.len() < EXAMPLES {
            self.examples.push(what);
        }
    }

    /// Lays one run's output over the reference. `expected`: the reference line it must start
    /// at (after the checkpoint it resumed from; `None`: not checked).
    pub(crate) fn run(&mut self, name: &str, output: &Path, expected: Option<usize>) -> Result<()> {
        let mut next: Option<usize> = None;
        let mut repeats = 0;
        let cut = for_each_line(output, |line| {
            self.lines += 1;
            let line_hash = hash(line);
            let index = match next {
                Some(i) if self.reference.hashes.get(i) == Some(&line_hash) => i,
                _ => {
                    let Some(i) = self.reference.locate(line, line_hash) else {
                        self.misread += 1;
                        self.example(format!("{name}: a line not in the reference: {line}"));
                        return Ok(());
                    };
                    match next {
                        None if expected.is_some_and(|e| e != i) => {
                            self.off_checkpoint += 1;
                            self.example(format!(
                                "{name}: resumed at reference line {i}, its checkpoint says {expected:?}"
                            ));
                        }
                        None => {}
                        Some(n) => {
                            self.example(format!("{name}: jumped from reference line {n} to {i}"))
                        }
                    }
                    i
                }
            };
            next = Some(index + 1);
            if std::mem::replace(&mut self.delivered[index], true) {
                repeats += 1;
            }
            Ok(())
        })?;
        self.cut_lines += u64::from(cut);
        self.repeats += repeats;
        self.most_repeats_at_once = self.most_repeats_at_once.max(repeats);
        Ok(())
    }

    /// Reference lines no run delivered.
    pub(crate) fn lost(&self) -> u64 {
        self.delivered.iter().filter(|d| !**d).count() as u64
    }

    /// The index of the first line not delivered yet.
    pub(crate) fn first_missing(&self) -> Option<usize> {
        self.delivered.iter().position(|d| !d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binlog_positions_compare_by_file_offset_and_rows() {
        let a = binlog_position("binlog:mysql-bin.000002:900+3").expect("parses");
        let b = binlog_position("binlog:mysql-bin.000010:4+0").expect("parses");
        assert_eq!(a, (2, 900, 3));
        assert!(a < b);
        assert_eq!(binlog_position("mysql-snapshot:abc"), None);
    }

    #[test]
    fn values_compare_alike_from_events_and_from_select() {
        let cases = [
            (serde_json::json!(2.0), "2", Kind::Float),
            (serde_json::json!(1.25), "1.25", Kind::Float),
            (
                serde_json::json!({"b": [1, "x"], "a": 2}),
                "{\"a\": 2, \"b\": [1, \"x\"]}",
                Kind::Json,
            ),
            (serde_json::json!("12.30"), "12.30", Kind::Plain),
            (serde_json::json!(-7), "-7", Kind::Plain),
            (Value::Null, "NULL", Kind::Plain),
        ];
        for (event, text, kind) in cases {
            assert_eq!(
                canonical_value(Some(&event), kind),
                canonical_text(text, kind)
            );
        }
    }

    #[test]
    fn a_before_image_that_differs_from_the_rebuilt_row_is_a_misread() {
        let mut replica = Replica::default();
        let insert = serde_json::json!({"table": "marker", "op": "insert", "key": {"id": 1},
            "after": {"id": 1}, "position": "p1"});
        let delete = serde_json::json!({"table": "marker", "op": "delete", "key": {"id": 1},
            "before": {"id": 2}, "position": "p2"});
        replica.apply(&insert);
        replica.apply(&delete);
        assert_eq!(replica.misread, 1, "{:?}", replica.examples);
    }
}
