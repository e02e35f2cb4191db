//! `ustream tail` arguments checked before any connection: `--help` and `--from`. The URLs
//! point at a closed port: a test that connected would fail.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::USTREAM;

fn tail(args: &[&str]) -> Output {
    Command::new(USTREAM)
        .arg("tail")
        .args(args)
        .output()
        .expect("run ustream")
}

/// Asserts that `text` names every one of `forms`.
fn assert_names(text: &str, forms: &[&str]) {
    for form in forms {
        assert!(text.contains(form), "{form} missing from:\n{text}");
    }
}

/// The one-line error of a run that must fail.
fn error_of(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    stderr
}

#[test]
fn tail_help_names_every_kind_of_start_with_examples() {
    let out = tail(&["--help"]);
    assert!(out.status.success(), "{out:?}");
    let help = String::from_utf8_lossy(&out.stdout);
    assert_names(
        &help,
        &[
            "`start`",
            "`end`",
            "`snapshot`",
            "binlog:mysql-bin.000003:1234+0",
            "mariadb-gtid:0-1-100+0",
            "`mongodb:TOKEN`",
            "mongodb-time:1732272000.1",
            "mongodb-snapshot:",
            "schema change",
        ],
    );
}

#[test]
fn from_garbage_on_a_change_stream_url_lists_the_change_stream_starts() {
    let stderr = error_of(&tail(&["mongodb://127.0.0.1:1/", "--from", "garbage"]));
    assert!(
        stderr.starts_with(
            "ustream: error: --from: `garbage` is neither a keyword nor a position; a MongoDB URL takes `start`"
        ),
        "{stderr}"
    );
    assert_names(
        &stderr,
        &[
            "`end`",
            "`snapshot`",
            "`mongodb:TOKEN`",
            "e.g. `mongodb-time:1732272000.1`",
            "mongodb-snapshot:",
        ],
    );
    assert!(!stderr.contains("binlog"), "{stderr}");

    let stderr = error_of(&tail(&[
        "mongodb://127.0.0.1:1/",
        "--from",
        "binlog:mysql-bin.000001:4+0",
    ]));
    assert!(
        stderr.contains("is a position of another database; a MongoDB URL takes"),
        "{stderr}"
    );
}

#[test]
fn from_garbage_on_a_binlog_url_lists_the_binlog_starts() {
    let stderr = error_of(&tail(&["mysql://u:pw@127.0.0.1:1/db", "--from", "garbage"]));
    assert!(
        stderr.starts_with(
            "ustream: error: --from: `garbage` is neither a keyword nor a position; a MySQL/MariaDB URL takes `start`"
        ),
        "{stderr}"
    );
    assert_names(
        &stderr,
        &[
            "`end`",
            "`snapshot`",
            "e.g. `binlog:mysql-bin.000003:1234+0`",
            "e.g. `mariadb-gtid:0-1-100+0`",
            "mysql-snapshot:",
        ],
    );
    assert!(!stderr.contains("mongodb"), "{stderr}");
}

#[test]
fn an_unknown_scheme_names_the_schemes_ustream_reads() {
    let stderr = error_of(&tail(&["postgres://u:pw@127.0.0.1:1/db"]));
    assert!(
        stderr.contains("expected mysql://, mariadb://, mongodb:// or mongodb+srv://"),
        "{stderr}"
    );
}

#[test]
fn an_unreadable_mimalloc_purge_delay_is_warned_about_with_the_delay_in_effect() {
    let run = |value: &str| {
        let out = Command::new(USTREAM)
            .args(["tail", "mysql://u@127.0.0.1:1/shop", "--from", "nonsense"])
            .env("MIMALLOC_PURGE_DELAY", value)
            .env_remove("MIMALLOC_RESET_DELAY")
            .env_remove("USTREAM_LOG")
            .output()
            .expect("run ustream");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let stderr = run("abc");
    assert!(
        stderr.contains(
            "MIMALLOC_PURGE_DELAY=`abc` is not a whole number of milliseconds: freed memory is returned after 1000 ms"
        ),
        "{stderr}"
    );
    let stderr = run("250");
    assert!(
        !stderr.contains("MIMALLOC"),
        "a valid delay is taken silently: {stderr}"
    );
}

#[cfg(unix)]
#[test]
fn a_signal_while_tail_waits_for_its_first_connection_stops_it_at_once_with_exit_0() {
    // A closed port, and server selection allowed 60 s: only the signal can end it sooner.
    let mut child = Command::new(USTREAM)
        .args([
            "tail",
            "mongodb://127.0.0.1:1/?directConnection=true&serverSelectionTimeoutMS=60000",
        ])
        .env("USTREAM_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ustream");
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let mut seen = String::new();
    // Its handlers are in place before it says it is connecting.
    while !seen.contains("connecting") {
        let mut line = String::new();
        let read = stderr.read_line(&mut line).expect("stderr line");
        assert!(read > 0, "ended before connecting: {seen}");
        seen.push_str(&line);
    }
    let sent = Instant::now();
    let pid = child.id().to_string();
    Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill");
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            sent.elapsed() < Duration::from_secs(30),
            "still waiting for the server 30 s after SIGINT"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut stderr, &mut rest);
    seen.push_str(&rest);
    assert_eq!(status.code(), Some(0), "{seen}");
    assert!(seen.contains("stopped while starting"), "{seen}");
}

#[test]
fn the_url_may_come_from_ustream_url_out_of_the_process_list_and_is_never_shown() {
    let secret_url = "mysql://u:hunter2@127.0.0.1:1/db";
    let with_env = |args: &[&str]| {
        Command::new(USTREAM)
            .arg("tail")
            .args(args)
            .env("USTREAM_URL", secret_url)
            .output()
            .expect("run ustream")
    };
    let help = with_env(&["--help"]);
    let help_text = String::from_utf8_lossy(&help.stdout);
    assert!(help_text.contains("USTREAM_URL"), "{help_text}");
    assert!(!help_text.contains("hunter2"), "{help_text}");
    // Read as the MySQL URL it is: `--from` is checked against the binlog's starts.
    let stderr = error_of(&with_env(&["--from", "garbage"]));
    assert!(
        stderr.contains("a MySQL/MariaDB URL takes `start`") && !stderr.contains("hunter2"),
        "{stderr}"
    );
}

#[test]
fn reconnect_for_takes_seconds_or_forever_and_names_a_bad_value() {
    for bad in ["0", "5s", "1.5"] {
        let out = tail(&["mysql://u:pw@127.0.0.1:1/db", "--reconnect-for", bad]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{bad}: {stderr}");
        assert!(
            stderr.contains("--reconnect-for")
                && stderr.contains("whole number of seconds (at least 1) or `forever`"),
            "{bad}: {stderr}"
        );
    }
    let help = String::from_utf8_lossy(&tail(&["--help"]).stdout).into_owned();
    assert!(help.contains("--reconnect-for <SECONDS|forever>"), "{help}");
}
