//! `cargo xtask demo`: a throwaway MariaDB shop, a writer placing orders, and `ustream tail`
//! printing every change live.

use std::io::{BufRead, BufReader, Write as _};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use stream_testkit::mariadb::MariaDb;

use crate::servers::unique_temp_dir;
use crate::util::{find_binary, signal, workspace_root};

const SCHEMA: &str = "
CREATE DATABASE shop;
USE shop;
CREATE TABLE customers (
  id INT PRIMARY KEY AUTO_INCREMENT,
  name VARCHAR(100) NOT NULL,
  country CHAR(2) NOT NULL
);
CREATE TABLE orders (
  id BIGINT UNSIGNED PRIMARY KEY AUTO_INCREMENT,
  customer_id INT NOT NULL,
  status ENUM('new','paid','shipped','cancelled') NOT NULL DEFAULT 'new',
  total DECIMAL(10,2) NOT NULL,
  placed_at DATETIME(3) NOT NULL,
  items JSON
);
INSERT INTO customers (name, country) VALUES
  ('Ada Lovelace','GB'), ('Grace Hopper','US'), ('Kateryna Yushchenko','UA'),
  ('Radia Perlman','US'), ('Sophie Wilson','GB');
";

const USAGE: &str = "usage: cargo xtask demo [--seconds N] [--rate ORDERS_PER_SECOND]";

pub fn run(args: &[&str]) -> Result<()> {
    let mut seconds: Option<u64> = None;
    let mut rate: f64 = 3.0;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match *arg {
            "--seconds" => {
                let v = it.next().context(USAGE)?;
                seconds = Some(
                    v.parse()
                        .with_context(|| format!("--seconds: `{v}` is not a number"))?,
                );
            }
            "--rate" => {
                let v = it.next().context(USAGE)?;
                rate = v
                    .parse()
                    .with_context(|| format!("--rate: `{v}` is not a number"))?;
                if !(0.1..=1000.0).contains(&rate) {
                    bail!("--rate: {rate} is outside 0.1..=1000");
                }
            }
            other => bail!("unknown argument `{other}`\n{USAGE}"),
        }
    }

    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        ctrlc::set_handler(move || stop.store(true, Ordering::SeqCst))
            .context("installing the Ctrl-C handler")?;
    }

    eprintln!(
        "\x1b[1multimate-stream demo\x1b[0m: a throwaway MariaDB shop, and every change to it, live.\n"
    );
    // The first build compiles a few hundred crates in release mode (minutes): cargo's own
    // progress, on the inherited stderr, shows that it is moving.
    eprintln!(
        "building ustream (release; the first time this takes several minutes, later runs seconds)..."
    );
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let status = Command::new(&cargo)
        .args(["build", "--release", "-p", "stream-cli"])
        .current_dir(workspace_root())
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!("building ustream failed");
    }
    let ustream = crate::util::state_dir()
        .parent()
        .map(|t| t.join("release").join("ustream"))
        .context("target dir")?;

    let dir = unique_temp_dir("demo");
    eprintln!(
        "starting MariaDB (binlog ROW, full row images) in {}...",
        dir.display()
    );
    let server = MariaDb::start(&dir, &[]).map_err(anyhow::Error::msg)?;
    let url = server.url();
    let result = (|| -> Result<()> {
        server
            .sql(SCHEMA)
            .map_err(anyhow::Error::msg)
            .context("creating the shop schema")?;
        eprintln!("created database `shop` with tables customers and orders\n");
        let shown = url.replacen(":ustream@", ":***@", 1);
        eprintln!(
            "\x1b[1m$ ustream tail {shown}/shop --from end --include 'shop.*' --format pretty\x1b[0m"
        );
        let mut tail = Command::new(&ustream)
            .args([
                "tail",
                &format!("{url}/shop"),
                "--from",
                "end",
                "--include",
                "shop.*",
            ])
            .args(["--format", "pretty"])
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting ustream tail")?;
        let streaming = wait_for_streaming(&mut tail)?;
        if !streaming {
            let status = tail.wait()?;
            bail!("ustream tail exited ({status}) before streaming; see its message above");
        }
        let written = Arc::new(AtomicU64::new(0));
        let writer_result = write_orders(&dir, rate, seconds, &stop, &written, &mut tail);
        std::thread::sleep(Duration::from_millis(300));
        signal(tail.id(), "INT");
        let tail_status = tail.wait()?;
        eprintln!(
            "\nwrote {} row changes; ustream tail {}",
            written.load(Ordering::SeqCst),
            if tail_status.success() || tail_status.code().is_none() {
                "stopped cleanly".to_owned()
            } else {
                format!("exited with {tail_status}")
            }
        );
        writer_result
    })();
    eprintln!("stopping MariaDB and removing {}", dir.display());
    drop(server);
    result
}

/// Relays ustream's stderr and returns once it says `streaming from`, or false if it exits.
fn wait_for_streaming(tail: &mut Child) -> Result<bool> {
    let stderr = tail.stderr.take().context("ustream stderr")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut said = false;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("\x1b[2m{line}\x1b[0m");
            if !said && line.starts_with("streaming from") {
                said = true;
                let _ = tx.send(());
            }
        }
    });
    Ok(rx.recv_timeout(Duration::from_secs(30)).is_ok())
}

/// Places orders, pays, ships and cancels them through one `mariadb` client session.
fn write_orders(
    dir: &std::path::Path,
    rate: f64,
    seconds: Option<u64>,
    stop: &AtomicBool,
    written: &AtomicU64,
    tail: &mut Child,
) -> Result<()> {
    let client = find_binary(&["mariadb"]).context("mariadb client not found")?;
    let mut session = Command::new(client)
        .args(["--no-defaults", "-uroot", "--batch", "shop"])
        .arg(format!("--socket={}", dir.join("mysqld.sock").display()))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .context("starting the writer session")?;
    let mut sql = session.stdin.take().context("writer stdin")?;
    let started = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / rate);
    let mut rng: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next_id: u64 = 1;
    let mut open_orders: Vec<(u64, &str)> = Vec::new();
    let deadline = seconds.map(|s| started + Duration::from_secs(s));
    eprintln!(
        "writing about {rate} changes per second{}; Ctrl-C to stop\n",
        seconds.map_or(String::new(), |s| format!(" for {s} s"))
    );
    while !stop.load(Ordering::SeqCst) && deadline.is_none_or(|d| Instant::now() < d) {
        if let Ok(Some(status)) = tail.try_wait() {
            bail!("ustream tail stopped unexpectedly ({status})");
        }
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let roll = rng % 10;
        let statement = if open_orders.is_empty() || roll < 4 {
            let customer = rng % 5 + 1;
            let cents = 500 + rng % 20_000;
            let qty = rng % 3 + 1;
            open_orders.push((next_id, "new"));
            next_id += 1;
            format!(
                "INSERT INTO orders (customer_id, total, placed_at, items) VALUES \
                 ({customer}, {}.{:02}, NOW(3), JSON_ARRAY(JSON_OBJECT('sku','SKU-{}','qty',{qty})));",
                cents / 100,
                cents % 100,
                rng % 900 + 100
            )
        } else {
            let idx = (rng as usize / 10) % open_orders.len();
            let (id, status) = open_orders[idx];
            match (status, roll) {
                (_, 9) => {
                    open_orders.remove(idx);
                    format!("DELETE FROM orders WHERE id = {id};")
                }
                ("new", 8) => {
                    open_orders[idx].1 = "cancelled";
                    format!("UPDATE orders SET status = 'cancelled' WHERE id = {id};")
                }
                ("new", _) => {
                    open_orders[idx].1 = "paid";
                    format!("UPDATE orders SET status = 'paid' WHERE id = {id};")
                }
                ("paid", _) => {
                    open_orders[idx].1 = "shipped";
                    format!("UPDATE orders SET status = 'shipped' WHERE id = {id};")
                }
                _ => {
                    open_orders.remove(idx);
                    format!("DELETE FROM orders WHERE id = {id};")
                }
            }
        };
        sql.write_all(statement.as_bytes())?;
        sql.write_all(b"\n")?;
        sql.flush()?;
        written.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(interval);
    }
    drop(sql);
    let _ = session.wait();
    Ok(())
}
