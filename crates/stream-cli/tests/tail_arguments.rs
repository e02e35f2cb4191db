//! `ustream tail` arguments checked before any connection: `--help` and `--from`. The URLs
//! point at a closed port: a test that connected would fail.

use std::process::{Command, Output};

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
