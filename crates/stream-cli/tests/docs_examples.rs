//! Every YAML example of docs/run.md and docs/postgres.md, and `ustream init`'s commented-out
//! settings once uncommented, pass `ustream validate`: a user copying them gets a file that
//! loads.

use std::path::Path;
use std::process::{Command, Output};

use crate::support::USTREAM;

const VARS: [(&str, &str); 2] = [
    ("SHOP_PASSWORD", "shop-s3cret"),
    ("PG_PASSWORD", "pg-s3cret"),
];

fn validate(text: &str) -> Output {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ustream.yaml");
    std::fs::write(&path, text).expect("write config");
    Command::new(USTREAM)
        .args(["validate", path.to_str().expect("path")])
        .envs(VARS)
        .output()
        .expect("run ustream")
}

/// The ```yaml blocks of a Markdown file, with the line each starts on.
fn yaml_blocks(markdown: &str) -> Vec<(usize, String)> {
    let mut blocks = Vec::new();
    let mut open: Option<(usize, String)> = None;
    for (i, line) in markdown.lines().enumerate() {
        match &mut open {
            None if line.trim_start() == "```yaml" => open = Some((i + 2, String::new())),
            None => {}
            Some(_) if line.trim_start().starts_with("```") => blocks.extend(open.take()),
            Some((_, text)) => {
                text.push_str(line);
                text.push('\n');
            }
        }
    }
    blocks
}

#[test]
fn every_yaml_example_of_the_run_and_postgres_docs_passes_validate() {
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs");
    let mut checked = 0;
    for file in ["run.md", "postgres.md"] {
        let markdown = std::fs::read_to_string(docs.join(file)).expect("read doc");
        for (line, block) in yaml_blocks(&markdown) {
            let out = validate(&block);
            assert!(
                out.status.success(),
                "docs/{file} line {line}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            checked += 1;
        }
    }
    assert!(checked >= 2, "found {checked} yaml examples");
}

#[test]
fn the_init_examples_commented_columns_pass_validate_once_uncommented() {
    let init = Command::new(USTREAM).arg("init").output().expect("init");
    assert!(init.status.success());
    let example = String::from_utf8(init.stdout).expect("utf8");
    // `    # columns:` and its nested `    #   name: {...}` lines, uncommented, in a sink fed
    // by a MongoDB source (the only kind `columns` is for).
    let columns: String = example
        .lines()
        .skip_while(|line| !line.starts_with("    # columns:"))
        .take_while(|line| line.starts_with("    # columns:") || line.starts_with("    #   "))
        .map(|line| format!("    {}\n", &line["    # ".len()..]))
        .collect();
    assert!(columns.lines().count() >= 2, "{example}");
    let config = format!(
        "sources:\n  app:\n    url: mongodb://127.0.0.1:27017/app\n\
         sinks:\n  warehouse:\n    url: postgres://etl@127.0.0.1:5432/analytics\n{columns}"
    );
    let out = validate(&config);
    assert!(
        out.status.success(),
        "{}\n{config}",
        String::from_utf8_lossy(&out.stderr)
    );
}
