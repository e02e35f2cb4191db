//! The chaos workload: transactions of one to a few thousand rows of mixed sizes (a few rows of
//! 60 KB among rows of tens of bytes) over four tables, with DDL among them, generated as SQL
//! from a seed. The generator follows which ids exist, so it knows exactly how many row changes
//! its SQL makes.

use std::fmt::Write as _;

/// How a column's value is compared between an event and the server's `SELECT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Text as printed (integers, DECIMAL, strings, base64, dates formatted alike).
    Plain,
    /// A DOUBLE: compared as the number.
    Float,
    /// A JSON document: compared as the parsed value.
    Json,
}

/// A table the verification compares with the server: its columns as (name in the event,
/// expression in the `SELECT`, kind). The first column is the integer primary key.
#[derive(Debug)]
pub(crate) struct TableSpec {
    pub(crate) name: &'static str,
    pub(crate) columns: &'static [(&'static str, &'static str, Kind)],
}

/// Every table of the workload, as compared at the end. Columns that DDL adds and removes in
/// the middle (`items.extra`, `events.memo`) are left out: rows untouched since the ALTER carry
/// no event with them.
pub(crate) const TABLES: &[TableSpec] = &[
    TableSpec {
        name: "items",
        columns: &[
            ("id", "id", Kind::Plain),
            ("grp", "grp", Kind::Plain),
            ("qty", "qty", Kind::Plain),
            ("price", "price", Kind::Plain),
            ("name", "name", Kind::Plain),
            ("note", "note", Kind::Plain),
            ("tag", "REPLACE(TO_BASE64(tag), '\\n', '')", Kind::Plain),
            ("score", "score", Kind::Float),
            (
                "updated",
                "DATE_FORMAT(updated, '%Y-%m-%dT%H:%i:%s.%f')",
                Kind::Plain,
            ),
        ],
    },
    TableSpec {
        name: "events",
        columns: &[
            ("id", "id", Kind::Plain),
            ("item", "item", Kind::Plain),
            ("kind", "kind", Kind::Plain),
            ("amount", "amount", Kind::Plain),
        ],
    },
    TableSpec {
        name: "side",
        columns: &[
            ("id", "id", Kind::Plain),
            ("payload", "payload", Kind::Json),
        ],
    },
    TableSpec {
        name: "marker",
        columns: &[("id", "id", Kind::Plain)],
    },
];

/// Ids of one table: which exist, and the next fresh one.
#[derive(Debug, Default)]
struct Ids {
    alive: Vec<bool>,
}

impl Ids {
    fn next(&self) -> u64 {
        self.alive.len() as u64 + 1
    }

    /// Takes `n` fresh ids; returns the first.
    fn insert(&mut self, n: u64) -> u64 {
        let first = self.next();
        self.alive.extend(std::iter::repeat_n(true, n as usize));
        first
    }

    fn count(&self, from: u64, to: u64) -> u64 {
        (from..=to)
            .filter(|&id| self.alive.get(id as usize - 1).copied().unwrap_or(false))
            .count() as u64
    }

    fn remove(&mut self, from: u64, to: u64) -> u64 {
        let mut n = 0;
        for id in from..=to {
            if let Some(alive) = self.alive.get_mut(id as usize - 1)
                && *alive
            {
                *alive = false;
                n += 1;
            }
        }
        n
    }

    /// A random range of 1 to `longest` ids starting among the ids handed out so far.
    fn range(&self, rng: &mut fastrand::Rng, longest: u64) -> (u64, u64) {
        let len = rng.u64(1..=longest);
        let from = rng.u64(1..self.next().max(2));
        (from, from + len - 1)
    }
}

/// The generator.
#[derive(Debug)]
pub(crate) struct Workload {
    db: String,
    rng: fastrand::Rng,
    items: Ids,
    events: Ids,
    side: Option<Ids>,
    extra_column: bool,
    ddl_steps: usize,
    /// Row changes the SQL generated so far makes, when all of it commits.
    pub(crate) changes: u64,
}

/// The DDL run at the `n`-th sixth of the workload.
/// (Plain forms: the MariaDB-only `IF [NOT] EXISTS` clauses stop the stream today, see
/// docs/reliability.md; a writer that retries one checks `ddl_already_done`.)
const DDL: &[&str] = &[
    "ALTER TABLE `{db}`.items ADD COLUMN extra INT NULL",
    "ALTER TABLE `{db}`.items MODIFY name VARCHAR(100) CHARACTER SET utf8mb4 NOT NULL",
    "CREATE TABLE `{db}`.side (id BIGINT PRIMARY KEY, payload JSON NOT NULL)",
    "ALTER TABLE `{db}`.items DROP COLUMN extra",
    "ALTER TABLE `{db}`.events ADD COLUMN memo VARCHAR(20) NULL DEFAULT 'm', ADD INDEX by_item (item)",
];

/// Whether a DDL statement failed only because an earlier attempt (whose success the client
/// did not hear of) already did it.
pub(crate) fn ddl_already_done(error: &str) -> bool {
    [
        "Duplicate column name",
        "already exists",
        "Can't DROP",
        "Duplicate key name",
    ]
    .iter()
    .any(|e| error.contains(e))
}

impl Workload {
    pub(crate) fn new(db: &str, seed: u64) -> Self {
        Self {
            db: db.to_owned(),
            rng: fastrand::Rng::with_seed(seed),
            items: Ids::default(),
            events: Ids::default(),
            side: None,
            extra_column: false,
            ddl_steps: 0,
            changes: 0,
        }
    }

    /// The database and its first tables.
    pub(crate) fn schema(&self) -> String {
        let db = &self.db;
        format!(
            "CREATE DATABASE `{db}`;
             CREATE TABLE `{db}`.items (id BIGINT PRIMARY KEY, grp INT NOT NULL, qty INT NOT NULL,
               price DECIMAL(12,2) NOT NULL, name VARCHAR(64) CHARACTER SET utf8mb4 NOT NULL,
               note MEDIUMTEXT NULL, tag VARBINARY(16) NULL, score DOUBLE NOT NULL,
               updated DATETIME(6) NOT NULL);
             CREATE TABLE `{db}`.events (id BIGINT PRIMARY KEY, item BIGINT NOT NULL,
               kind ENUM('buy','sell','hold') NOT NULL, amount INT NOT NULL);
             CREATE TABLE `{db}`.marker (id INT PRIMARY KEY);"
        )
    }

    /// The next DDL statement, if `done` (0..=1, the share of the workload written) has
    /// reached its turn.
    pub(crate) fn ddl_due(&mut self, done: f64) -> Option<String> {
        let step = self.ddl_steps;
        if step >= DDL.len() || done < (step + 1) as f64 / (DDL.len() + 1) as f64 {
            return None;
        }
        self.ddl_steps += 1;
        match step {
            0 => self.extra_column = true,
            2 => self.side = Some(Ids::default()),
            3 => self.extra_column = false,
            _ => {}
        }
        Some(format!("{};\n", DDL[step].replace("{db}", &self.db)))
    }

    /// One transaction (sometimes a lone autocommitted statement): inserts of 1 to 40 rows
    /// (one in twenty of 500 to 3,000), range updates and deletes, rows of the other tables.
    pub(crate) fn transaction(&mut self) -> String {
        let db = self.db.clone();
        let mut statements: Vec<String> = Vec::new();
        let big = self.rng.u32(0..20) == 0;
        let n = if big {
            self.rng.u64(500..=3000)
        } else {
            self.rng.u64(1..=40)
        };
        let first = self.items.insert(n);
        self.changes += n;
        statements.push(format!(
            "INSERT INTO `{db}`.items (id, grp, qty, price, name, note, tag, score, updated)
             SELECT x.id, x.id % 17, x.id % 97, (x.id % 100000) / 100, CONCAT('名前-', x.id, '-é'),
               IF(x.id % 997 = 0, REPEAT('L', 60000 + x.id % 5000),
                  IF(x.id % 3 = 0, NULL, REPEAT(SUBSTR('abcdefghijklmnopqrstuvwxyz', 1 + x.id % 21, 5), x.id % 40))),
               UNHEX(MD5(x.id)), x.id / 4, '2024-02-29 12:34:56.000001' + INTERVAL x.id SECOND
             FROM (SELECT {} + seq AS id FROM `{db}`.seq_1_to_{n}) x",
            first - 1
        ));
        if self.rng.u32(0..10) < 6 {
            let (from, to) = self.items.range(&mut self.rng, 60);
            self.changes += self.items.count(from, to);
            let extra = if self.extra_column {
                ", extra = qty"
            } else {
                ""
            };
            statements.push(format!(
                "UPDATE `{db}`.items SET qty = qty + 1, price = price + 0.01,
                   note = IF(qty % 7 = 0, CONCAT(IFNULL(note, ''), 'u'), note),
                   updated = updated + INTERVAL 1 SECOND{extra}
                 WHERE id BETWEEN {from} AND {to}"
            ));
        }
        if self.rng.u32(0..4) == 0 {
            let (from, to) = self.items.range(&mut self.rng, 20);
            self.changes += self.items.remove(from, to);
            statements.push(format!(
                "DELETE FROM `{db}`.items WHERE id BETWEEN {from} AND {to}"
            ));
        }
        if self.rng.u32(0..10) < 4 {
            let k = self.rng.u64(1..=10);
            let first = self.events.insert(k);
            let item = self.rng.u64(1..self.items.next());
            self.changes += k;
            statements.push(format!(
                "INSERT INTO `{db}`.events (id, item, kind, amount)
                 SELECT {} + seq, {item}, 1 + seq % 3, CAST(seq AS SIGNED) * 10 - 35 FROM `{db}`.seq_1_to_{k}",
                first - 1
            ));
        }
        if self.rng.u32(0..10) == 0 {
            let (from, to) = self.events.range(&mut self.rng, 10);
            self.changes += self.events.remove(from, to);
            statements.push(format!(
                "DELETE FROM `{db}`.events WHERE id BETWEEN {from} AND {to}"
            ));
        }
        if let Some(side) = self.side.as_mut() {
            if self.rng.bool() {
                let k = self.rng.u64(1..=5);
                let first = side.insert(k);
                self.changes += k;
                statements.push(format!(
                    "INSERT INTO `{db}`.side SELECT {f} + seq,
                       JSON_OBJECT('n', {f} + seq, 's', CONCAT('v', seq), 'tags', JSON_ARRAY('a', seq))
                     FROM `{db}`.seq_1_to_{k}",
                    f = first - 1
                ));
            }
            if self.rng.u32(0..10) < 3 {
                let (from, to) = side.range(&mut self.rng, 10);
                self.changes += side.count(from, to);
                statements.push(format!(
                    "UPDATE `{db}`.side SET payload = JSON_SET(payload, '$.n', JSON_EXTRACT(payload, '$.n') + 1)
                     WHERE id BETWEEN {from} AND {to}"
                ));
            }
        }
        let mut sql = String::new();
        if statements.len() == 1 {
            let _ = writeln!(sql, "{};", statements[0]);
        } else {
            sql.push_str("BEGIN;\n");
            for s in &statements {
                let _ = writeln!(sql, "{s};");
            }
            sql.push_str("COMMIT;\n");
        }
        sql
    }

    /// The whole workload of at least `changes` row changes, in pieces of about `piece`
    /// changes (each sent to the server on its own), DDL included at its turns.
    pub(crate) fn pieces(&mut self, changes: u64, piece: u64) -> Vec<String> {
        let mut pieces = Vec::new();
        let mut sql = String::new();
        let mut since = self.changes;
        let target = self.changes + changes;
        while self.changes < target {
            let done = 1.0 - (target - self.changes) as f64 / changes.max(1) as f64;
            if let Some(ddl) = self.ddl_due(done) {
                sql.push_str(&ddl);
            }
            sql.push_str(&self.transaction());
            if self.changes - since >= piece {
                pieces.push(std::mem::take(&mut sql));
                since = self.changes;
            }
        }
        if !sql.is_empty() {
            pieces.push(sql);
        }
        pieces
    }

    /// A statement that inserts the marker row `id` (the end of a run's writes).
    pub(crate) fn marker(&mut self, id: u32) -> String {
        self.changes += 1;
        format!("INSERT INTO `{}`.marker VALUES ({id});\n", self.db)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generator_counts_the_changes_its_ranges_touch() {
        let mut ids = Ids::default();
        assert_eq!(ids.insert(10), 1);
        assert_eq!(ids.remove(3, 5), 3);
        assert_eq!(ids.count(1, 20), 7);
        assert_eq!(ids.remove(1, 4), 2);
        assert_eq!(ids.next(), 11);
    }

    #[test]
    fn the_workload_is_the_same_for_the_same_seed_and_runs_every_ddl() {
        let sql = |seed| Workload::new("d", seed).pieces(20_000, 5_000).concat();
        assert_eq!(sql(7), sql(7));
        assert_ne!(sql(7), sql(8));
        let text = sql(7);
        for ddl in DDL {
            assert!(text.contains(&ddl.replace("{db}", "d")), "{ddl}");
        }
    }
}
