//! MongoDB server faults, on a stand-in of the command's own (secantusdb, `--sync-on-commit`:
//! an acknowledged write survives a SIGKILL): stopped cleanly and killed with SIGKILL in turn
//! while a writer inserts, updates and deletes and one `ustream tail --checkpoint` keeps
//! running; every printed line is checked against an uninterrupted read afterwards and the
//! collection rebuilt from the events against what the writer wrote and what the server
//! holds. Then the oplog is cut short past the tail's checkpoint: the same command must fail
//! with the typed error naming the oldest position, and the way back (re-snapshot, killed once
//! inside the snapshot, then stream) must rebuild every collection.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Map, Value};
use stream_testkit::secantus::Secantus;

use super::crash::saved_position;
use super::tail::{Follower, Tail, read_uninterrupted};
use super::verify::{EXAMPLES, Reference, Walk, for_each_line, hash};
use super::{Ctx, Outcome};

pub(crate) const DB: &str = "chaos_mongo";
/// Lines the tail must print between two faults (proof it is streaming again).
const BETWEEN: u64 = 1_000;
/// The faults at the end that come back to back instead.
const BURST: usize = 4;
/// The stand-in's flags: acknowledged writes durable, an oplog long enough for the run.
pub(crate) const DURABLE: &[&str] = &["--sync-on-commit", "--oplog-max-entries", "1000000"];
/// Printed lines carry only what the change itself says (no `after` looked up at read time),
/// so a line read later is the same line.
pub(crate) const FULL_DOCUMENT: [&str; 2] = ["--full-document", "off"];

/// A running `chaos_mongo_writer`.
pub(crate) struct Writer {
    child: Child,
    stop: PathBuf,
    out: PathBuf,
    log: PathBuf,
}

impl Writer {
    pub(crate) fn start(ctx: &Ctx, url: &str, collection: &str, seed: u64) -> Result<Self> {
        let out = ctx.work.join(format!("mongo-{collection}"));
        let stop = out.with_extension("stop");
        let log = out.with_extension("log");
        let child = Command::new(&ctx.mongo_writer)
            .args([url, DB, collection, &seed.to_string()])
            .arg(&stop)
            .arg(&out)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log)?)
            .stderr(std::fs::File::create(out.with_extension("stderr"))?)
            .spawn()
            .with_context(|| format!("starting {}", ctx.mongo_writer.display()))?;
        Ok(Self {
            child,
            stop,
            out,
            log,
        })
    }

    /// Operations acknowledged so far (the writer prints every hundredth).
    pub(crate) fn ops(&self) -> u64 {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("ops ")?.parse().ok())
            .unwrap_or(0)
    }

    /// Tells it to stop, waits for its files; its last line.
    pub(crate) fn finish(mut self) -> Result<String> {
        std::fs::write(&self.stop, b"")?;
        let deadline = Instant::now() + Duration::from_secs(600);
        let status = loop {
            if let Some(status) = self.child.try_wait()? {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                bail!("the MongoDB writer did not stop within 10 minutes");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        if !status.success() {
            bail!(
                "the MongoDB writer failed ({status}): {}",
                crate::util::tail(&self.out.with_extension("stderr"), 5)
            );
        }
        Ok(crate::util::tail(&self.log, 1).trim().to_owned())
    }

    /// (documents it expects, documents the server held when it stopped).
    pub(crate) fn files(&self) -> (PathBuf, PathBuf) {
        let name = |what: &str| PathBuf::from(format!("{}.{what}.jsonl", self.out.display()));
        (name("expected"), name("server"))
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Documents by (collection, `_id` as JSON).
#[derive(Debug, Default)]
pub(crate) struct Docs {
    docs: HashMap<(String, String), Value>,
    /// Events that could not be applied (an update or delete of a document never inserted).
    pub(crate) misread: u64,
    pub(crate) examples: Vec<String>,
    /// While set, an update or delete of a document never delivered is held in `unknown`
    /// rather than counted as misread: a resumed snapshot delivers every change of a document
    /// that existed while the attempt before it ran, which may have printed it past its
    /// checkpoint (at least once; docs/reliability.md). Whether each is explained is settled
    /// against the final documents by [`Docs::settle_unknown`].
    pub(crate) resumed_snapshot: bool,
    /// (document, position, `update` or `delete`, `ts_ms`)
    unknown: Vec<((String, String), String, &'static str, i64)>,
}

/// Sets or removes (`None`) a dotted path.
fn at_path(doc: &mut Map<String, Value>, path: &str, value: Option<Value>) {
    match path.split_once('.') {
        Some((head, rest)) => {
            if !doc.get(head).is_some_and(Value::is_object) {
                if value.is_none() {
                    return;
                }
                doc.insert(head.to_owned(), Value::Object(Map::new()));
            }
            if let Some(Value::Object(inner)) = doc.get_mut(head) {
                at_path(inner, rest, value);
            }
        }
        None => match value {
            Some(v) => {
                doc.insert(path.to_owned(), v);
            }
            None => {
                doc.remove(path);
            }
        },
    }
}

impl Docs {
    fn note(&mut self, what: String) {
        self.misread += 1;
        if self.examples.len() < EXAMPLES {
            self.examples.push(what);
        }
    }

    /// Applies one printed event; snapshot rows and inserts replace what is there.
    pub(crate) fn apply(&mut self, event: &Value) {
        let key = (
            event["table"].as_str().unwrap_or_default().to_owned(),
            event["key"]["_id"].to_string(),
        );
        let position = event["position"].as_str().unwrap_or_default();
        // When the change was made; unknown: after any window.
        let at = event["ts_ms"].as_i64().unwrap_or(i64::MAX);
        match event["op"].as_str().unwrap_or_default() {
            "insert" | "replace" => {
                self.docs.insert(key, event["after"].clone());
            }
            "update" => {
                let Some(Value::Object(doc)) = self.docs.get_mut(&key) else {
                    if self.resumed_snapshot {
                        return self.unknown.push((key, position.to_owned(), "update", at));
                    }
                    return self.note(format!("{key:?}: update at {position} of no document"));
                };
                if let Some(set) = event["update"]["set"].as_object() {
                    for (path, value) in set {
                        at_path(doc, path, Some(value.clone()));
                    }
                }
                for path in event["update"]["unset"].as_array().into_iter().flatten() {
                    at_path(doc, path.as_str().unwrap_or_default(), None);
                }
            }
            "delete" => {
                if self.docs.remove(&key).is_none() {
                    if self.resumed_snapshot {
                        self.unknown.push((key, position.to_owned(), "delete", at));
                    } else {
                        self.note(format!("{key:?}: delete at {position} of no document"));
                    }
                }
            }
            other => self.note(format!("unknown op `{other}` at {position}")),
        }
    }

    /// The documents of a writer's file, in `collection`.
    pub(crate) fn load(path: &Path, collection: &str) -> Result<Self> {
        let mut docs = Docs::default();
        for_each_line(path, |line| {
            let doc: Value = serde_json::from_str(line)
                .with_context(|| format!("{}: not JSON: {line}", path.display()))?;
            let key = (collection.to_owned(), doc["_id"].to_string());
            docs.docs.insert(key, doc);
            Ok(())
        })?;
        Ok(docs)
    }

    /// The updates and deletes of documents never delivered, held while `resumed_snapshot`
    /// was set. Explained: those of documents deleted by the end (`want`), made before
    /// `window_end_ms` (when the resumed attempt began to print its stream, after its scan):
    /// the source could not know they had not been printed. Past the hand-over window every
    /// insert is delivered, so any other is misread. Returns (updates, deletes) explained.
    fn settle_unknown(&mut self, want: &Docs, window_end_ms: i64) -> (u64, u64) {
        let mut explained = (0, 0);
        for (key, position, op, at) in std::mem::take(&mut self.unknown) {
            if want.docs.contains_key(&key) {
                self.note(format!(
                    "{key:?}: {op} at {position} of a document never delivered that still exists"
                ));
            } else if at > window_end_ms {
                self.note(format!(
                    "{key:?}: {op} at {position} (ts_ms {at}) of a document never delivered, \
                     after the hand-over window (it ended by {window_end_ms})"
                ));
            } else if op == "update" {
                explained.0 += 1;
            } else {
                explained.1 += 1;
            }
        }
        explained
    }

    fn extend(&mut self, other: Docs) {
        self.docs.extend(other.docs);
    }

    /// (missing, extra, different) against `want`, with examples.
    pub(crate) fn compare(
        &self,
        want: &Docs,
        what: &str,
        notes: &mut Vec<String>,
    ) -> (u64, u64, u64) {
        let (mut missing, mut differ) = (0, 0);
        for (key, doc) in &want.docs {
            match self.docs.get(key) {
                Some(got) if got == doc => {}
                Some(got) => {
                    differ += 1;
                    if differ <= 2 {
                        notes.push(format!("{what}: {key:?} rebuilt as {got}, want {doc}"));
                    }
                }
                None => {
                    missing += 1;
                    if missing <= 2 {
                        notes.push(format!("{what}: {key:?} missing"));
                    }
                }
            }
        }
        let extra = self
            .docs
            .keys()
            .filter(|k| !want.docs.contains_key(*k))
            .count() as u64;
        notes.push(format!(
            "{what}: {} documents, {missing} missing, {extra} extra, {differ} different",
            want.docs.len()
        ));
        (missing, extra, differ)
    }
}

/// `mongodb://127.0.0.1:PORT/DB?directConnection=true`.
pub(crate) fn db_url(server: &Secantus) -> String {
    server.url().replacen("/?", &format!("/{DB}?"), 1)
}

fn tail_args(url: &str, from: &str, checkpoint: &Path) -> Vec<String> {
    let mut args = vec![
        url.to_owned(),
        "--from".into(),
        from.into(),
        "--checkpoint".into(),
        checkpoint.display().to_string(),
    ];
    args.extend(FULL_DOCUMENT.map(str::to_owned));
    args
}

/// The `ustream: error:` line of a finished run.
fn error_line(tail: &Tail) -> String {
    tail.stderr()
        .lines()
        .find(|l| l.starts_with("ustream: error:"))
        .unwrap_or("(no error line)")
        .to_owned()
}

pub(crate) fn run(ctx: &Ctx) -> Result<Vec<Outcome>> {
    if std::env::var_os("STREAM_TEST_SECANTUS").is_none() {
        // Installs the stand-in where stream-testkit looks for it.
        crate::servers::secantus_launcher()?;
    }
    let mut server = Secantus::start(DURABLE).map_err(anyhow::Error::msg)?;
    let faults = faults(ctx, &mut server)?;
    let lost = history_lost(ctx, &mut server)?;
    Ok(vec![faults, lost])
}

/// Restarts and kills under a running tail.
fn faults(ctx: &Ctx, server: &mut Secantus) -> Result<Outcome> {
    let started = Instant::now();
    let url = db_url(server);
    let checkpoint = ctx.work.join("mongo-checkpoint");
    let args = tail_args(&url, "start", &checkpoint);
    let mut outs = vec![ctx.work.join("mongo-live-0.jsonl")];
    let mut tail = Tail::start(&ctx.ustream, &args, &outs[0])?;
    let writer = Writer::start(ctx, &server.url(), "docs", ctx.seed ^ 0x6d6f)?;
    let mut follower = Follower::new(&outs[0]);
    let mut printed = 0;
    let mut died = Vec::new();
    let mut downtimes = Vec::new();
    // Waits for `BETWEEN` more lines; a tail that exits is restarted with the same command
    // (as a supervisor would) and counted.
    let mut streamed = |tail: &mut Tail,
                        follower: &mut Follower,
                        outs: &mut Vec<PathBuf>,
                        until: &dyn Fn(&str) -> bool,
                        lines: u64|
     -> Result<()> {
        // `lines` more than printed so far (a fault waits for the stream to move on).
        let target = printed + follower.lines + lines;
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            let hit = follower.poll(until)?;
            if hit || printed + follower.lines >= target && lines > 0 {
                return Ok(());
            }
            if tail.exited().is_some() {
                let error = error_line(tail);
                eprintln!("chaos mongo: the tail exited on its own: {error}");
                died.push(error);
                printed += follower.lines;
                outs.push(ctx.work.join(format!("mongo-live-{}.jsonl", outs.len())));
                let out = outs.last().context("an output")?;
                *tail = Tail::start(&ctx.ustream, &args, out)?;
                *follower = Follower::new(out);
            }
            if Instant::now() > deadline {
                bail!(
                    "the MongoDB tail printed nothing new for 10 minutes: {}",
                    tail.stderr_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    let never = |_: &str| false;
    // The last faults come back to back, each as soon as the server is up again: a stream
    // that resumes while it is still reopening after the fault before.
    let spaced = (2 * ctx.restarts).saturating_sub(BURST);
    for i in 0..2 * ctx.restarts {
        if i < spaced {
            streamed(&mut tail, &mut follower, &mut outs, &never, BETWEEN)?;
        }
        let down = Instant::now();
        let hard = i % 2 == 1;
        if hard {
            server.kill();
        } else {
            server.stop();
        }
        server.start_again().map_err(anyhow::Error::msg)?;
        downtimes.push(down.elapsed().as_secs_f64());
        eprintln!(
            "chaos mongo: {} {}/{} took {:.1} s; {} writer operations so far",
            if hard { "SIGKILL" } else { "restart" },
            i + 1,
            2 * ctx.restarts,
            downtimes[i],
            writer.ops()
        );
    }
    streamed(&mut tail, &mut follower, &mut outs, &never, BETWEEN)?;
    let (expected, dumped) = writer.files();
    let written = writer.finish()?;
    eprintln!("chaos mongo: writer {written}; reading the oplog again, uninterrupted...");
    let reference_out = ctx.work.join("mongo-reference.jsonl");
    let mut reference_args = vec![url.clone(), "--from".into(), "start".into()];
    reference_args.extend(["--idle-exit-ms", "8000"].map(str::to_owned));
    reference_args.extend(FULL_DOCUMENT.map(str::to_owned));
    read_uninterrupted(&ctx.ustream, &reference_args, &reference_out)?;
    let mut rebuilt = Docs::default();
    let reference = Reference::load_with(&reference_out, false, |event| {
        rebuilt.apply(event);
        Ok(())
    })?;
    let last = {
        let mut last = String::new();
        for_each_line(&reference_out, |line| {
            last = line.to_owned();
            Ok(())
        })?;
        last
    };
    // The live tail has caught up once it printed the reference's last line.
    let caught_up = move |line: &str| hash(line) == hash(&last);
    streamed(&mut tail, &mut follower, &mut outs, &caught_up, 0)?;
    let status = tail.stop(Duration::from_secs(60))?;
    if !status.success() {
        died.push(format!("exit {status} on SIGTERM: {}", tail.stderr_tail()));
    }
    let stderr = tail.stderr();
    let lost_lines = stderr.matches("MongoDB server lost").count();
    let reconnects = stderr.matches("connection failed; reconnecting").count();
    let mut walk = Walk::new(&reference);
    for (k, out) in outs.iter().enumerate() {
        walk.run(&format!("mongo tail run {k}"), out, (k == 0).then_some(0))?;
    }
    let mut notes = vec![format!(
        "{} clean restarts and {} SIGKILLs of the stand-in, alternating, the first {spaced} each \
         after the tail printed {BETWEEN} more lines, the last {} back to back; down {} s; \
         writer {written}; the tail logged {lost_lines} lost-server warnings (the driver \
         resumed by itself) and {reconnects} reconnects of its own",
        ctx.restarts,
        ctx.restarts,
        2 * ctx.restarts - spaced,
        downtimes
            .iter()
            .map(|d| format!("{d:.1}"))
            .collect::<Vec<_>>()
            .join(", ")
    )];
    notes.push(format!(
        "the live tail printed {} lines, an uninterrupted read afterwards {}; updates that \
         found no document: {}",
        walk.lines,
        reference.len(),
        rebuilt.misread
    ));
    let want = Docs::load(&expected, "docs")?;
    let held = Docs::load(&dumped, "docs")?;
    let (m1, e1, d1) = rebuilt.compare(&want, "rebuilt from the events vs written", &mut notes);
    let (m2, e2, d2) = held.compare(&want, "the server's documents vs written", &mut notes);
    notes.extend(walk.examples.iter().cloned());
    notes.extend(rebuilt.examples.iter().cloned());
    if !died.is_empty() {
        notes.push(format!(
            "the tail exited {} times instead of reconnecting (restarted each time); first: {}",
            died.len(),
            died[0]
        ));
    }
    for out in &outs {
        let _ = std::fs::remove_file(out);
    }
    let _ = std::fs::remove_file(&reference_out);
    Ok(Outcome {
        fault: "MongoDB stand-in restarted and killed under a running `ustream tail --checkpoint`"
            .into(),
        injected: format!(
            "{} clean restarts and {} SIGKILLs while a writer inserts, updates and deletes",
            ctx.restarts, ctx.restarts
        ),
        changes: reference.len() as u64,
        lost: walk.lost() + m1 + e1 + m2 + e2,
        misread: walk.misread + d1 + d2 + rebuilt.misread,
        repeats: walk.repeats,
        // One process throughout: no repeat is allowed.
        outside_window: walk.repeats,
        died: died.len() as u64,
        seconds: started.elapsed().as_secs_f64(),
        notes,
    })
}

/// The oplog cut short past the checkpoint the fault phase left; the typed error; the way
/// back.
fn history_lost(ctx: &Ctx, server: &mut Secantus) -> Result<Outcome> {
    let started = Instant::now();
    let url = db_url(server);
    let checkpoint = ctx.work.join("mongo-checkpoint");
    let old = saved_position(&checkpoint)?.context("the fault phase left no checkpoint")?;
    // A short oplog: the stand-in prunes past 200 entries as it writes.
    server.stop();
    server.set_args(&["--sync-on-commit", "--oplog-max-entries", "200"]);
    server.start_again().map_err(anyhow::Error::msg)?;
    let more = Writer::start(ctx, &server.url(), "more", ctx.seed ^ 0x6d70)?;
    let deadline = Instant::now() + Duration::from_secs(600);
    while more.ops() < 1_000 {
        if Instant::now() > deadline {
            bail!("the MongoDB writer did not write 1,000 operations in 10 minutes");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let (more_expected, more_dumped) = more.files();
    more.finish()?;
    let args = tail_args(&url, "start", &checkpoint);
    let out = ctx.work.join("mongo-purged.jsonl");
    let mut resumed = Tail::start(&ctx.ustream, &args, &out)?;
    let status = resumed.wait(Duration::from_secs(300))?;
    let error = error_line(&resumed);
    let prefix = format!("position {old} is no longer on the server; the oldest available is ");
    let oldest = error
        .split_once(&prefix)
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .filter(|_| status.code() == Some(1) && error.contains("re-snapshot"))
        .with_context(|| {
            format!(
                "after the oplog was cut short: exit {status}, `{error}`; expected `{prefix}...`"
            )
        })?
        .to_owned();
    // The oldest position named is one a stream can start from.
    let from_oldest = ctx.work.join("mongo-oldest.jsonl");
    let mut oldest_args = vec![url.clone(), "--from".into(), oldest.clone()];
    oldest_args.extend(["--limit", "1", "--idle-exit-ms", "10000"].map(str::to_owned));
    read_uninterrupted(&ctx.ustream, &oldest_args, &from_oldest)?;

    // The way back: remove the checkpoint, re-snapshot with one, killed once inside the
    // snapshot, while a writer goes on in a third collection.
    server.stop();
    server.set_args(DURABLE);
    server.start_again().map_err(anyhow::Error::msg)?;
    std::fs::remove_file(checkpoint.join("tail.checkpoint.json"))?;
    let late = Writer::start(ctx, &server.url(), "late", ctx.seed ^ 0x6d71)?;
    let args = tail_args(&url, "snapshot", &checkpoint);
    let outs = [1, 2].map(|k| ctx.work.join(format!("mongo-snapshot-{k}.jsonl")));
    let mut first = Tail::start(&ctx.ustream, &args, &outs[0])?;
    first.wait_until("a snapshot checkpoint", Duration::from_secs(1800), |_| {
        Ok(saved_position(&checkpoint)?.is_some())
    })?;
    first.kill();
    let killed_at = saved_position(&checkpoint)?.unwrap_or_default();
    let mut second = Tail::start(&ctx.ustream, &args, &outs[1])?;
    let mut follower = Follower::new(&outs[1]);
    // When the resumed attempt printed its first stream line: its scan (and so the hand-over
    // window) had ended by then.
    let mut stream_began: Option<i64> = None;
    second.wait_until(
        "the stream after the snapshot",
        Duration::from_secs(1800),
        |_| {
            follower.poll(|line| {
                let streamed = !line.contains("snapshot:");
                if streamed && stream_began.is_none() {
                    stream_began = Some(now_ms());
                }
                streamed && line.contains("\"table\":\"late\"")
            })
        },
    )?;
    let window_end_ms = stream_began.unwrap_or(i64::MAX);
    let (late_expected, late_dumped) = late.files();
    late.finish()?;
    // Everything the writer did is on the server now; the tail has it once it is quiet.
    let mut quiet = (follower.lines, Instant::now());
    second.wait_until("a quiet stream", Duration::from_secs(600), |_| {
        follower.poll(|_| false)?;
        if follower.lines != quiet.0 {
            quiet = (follower.lines, Instant::now());
        }
        Ok(quiet.1.elapsed() > Duration::from_secs(8))
    })?;
    second.stop(Duration::from_secs(60))?;

    let mut rebuilt = Docs::default();
    let (mut lines, mut snapshot_rows, mut repeats, mut conflicts) = (0u64, 0u64, 0u64, 0u64);
    let mut seen: HashMap<String, u64> = HashMap::new();
    for (attempt, out) in outs.iter().enumerate() {
        rebuilt.resumed_snapshot = attempt > 0;
        for_each_line(out, |line| {
            let event: Value = serde_json::from_str(line)?;
            let position = event["position"].as_str().unwrap_or_default().to_owned();
            lines += 1;
            if position.starts_with("mongodb-snapshot:") {
                snapshot_rows += 1;
            } else if let Some(&had) = seen.get(&position) {
                if had == hash(line) {
                    repeats += 1;
                } else {
                    conflicts += 1;
                }
                return Ok(());
            } else {
                seen.insert(position, hash(line));
            }
            rebuilt.apply(&event);
            Ok(())
        })?;
    }
    let mut notes = vec![
        format!("the typed error: `{error}`; `--from {oldest}` streams"),
        format!(
            "the way back: `--from snapshot --checkpoint` killed (SIGKILL) at its first \
             checkpoint inside the snapshot (`{}...`), restarted while a writer goes on: {lines} \
             lines ({snapshot_rows} snapshot rows, {repeats} stream lines repeated, {conflicts} \
             positions printed twice with different content)",
            killed_at.chars().take(40).collect::<String>()
        ),
    ];
    let mut want = Docs::load(&ctx.work.join("mongo-docs.expected.jsonl"), "docs")?;
    want.extend(Docs::load(&more_expected, "more")?);
    want.extend(Docs::load(&late_expected, "late")?);
    let mut held = Docs::load(&ctx.work.join("mongo-docs.server.jsonl"), "docs")?;
    held.extend(Docs::load(&more_dumped, "more")?);
    held.extend(Docs::load(&late_dumped, "late")?);
    let (updates, deletes) = rebuilt.settle_unknown(&want, window_end_ms);
    notes.push(format!(
        "{deletes} deletes and {updates} updates, printed by the resumed snapshot, of \
         documents never delivered and gone at the end (the source delivers every change of a \
         document that existed while the killed attempt ran, which may have printed it past \
         its checkpoint: at least once; such a change of a document that still exists counts \
         as misread)"
    ));
    let (m1, e1, d1) = rebuilt.compare(&want, "rebuilt vs written", &mut notes);
    let (m2, e2, d2) = held.compare(&want, "the server's documents vs written", &mut notes);
    notes.extend(rebuilt.examples.iter().cloned());
    let lost = m1 + e1 + m2 + e2;
    let misread = d1 + d2 + rebuilt.misread + conflicts;
    if lost + misread == 0 {
        for out in outs.iter().chain([&out, &from_oldest]) {
            let _ = std::fs::remove_file(out);
        }
    } else {
        // The work directory goes at the end of the run: keep the outputs for a look.
        let kept = crate::util::state_dir().join(format!("chaos-kept-{}", ctx.seed));
        std::fs::create_dir_all(&kept)?;
        for from in &outs {
            if let Some(name) = from.file_name() {
                std::fs::rename(from, kept.join(name))
                    .or_else(|_| std::fs::copy(from, kept.join(name)).map(drop))?;
            }
        }
        notes.push(format!(
            "the attempts' outputs are kept in {}",
            kept.display()
        ));
    }
    Ok(Outcome {
        fault: "MongoDB oplog pruned past the checkpoint".into(),
        injected: "restart with a 200-entry oplog, 1,000 writes; then `--from snapshot \
                   --checkpoint`, killed (SIGKILL) inside the snapshot, restarted"
            .into(),
        changes: lines - repeats,
        lost,
        misread,
        repeats,
        outside_window: 0,
        died: 0,
        seconds: started.elapsed().as_secs_f64(),
        notes,
    })
}

/// Wall-clock milliseconds since the epoch, as `ts_ms` counts them.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
