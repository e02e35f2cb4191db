//! Every Rust example in README.md, docs/streamer.md and the crate's README is one of the
//! programs in `examples/`, verbatim, so the code the docs show is the code
//! `mariadb_examples` runs.

use std::path::{Path, PathBuf};

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The ```rust blocks of a markdown file.
fn rust_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match &mut current {
            None if line.trim_start().starts_with("```rust") => current = Some(String::new()),
            Some(block) if line.trim_start().starts_with("```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
            None => {}
        }
    }
    blocks
}

fn examples() -> Vec<(String, String)> {
    let dir = crate_dir().join("examples");
    let mut all: Vec<(String, String)> = std::fs::read_dir(&dir)
        .expect("examples/")
        .map(|entry| entry.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .map(|p| {
            let name = p.file_name().expect("name").to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).expect("read"))
        })
        .collect();
    all.sort();
    all
}

fn check(markdown: &Path, must_show: &[&str]) {
    let text =
        std::fs::read_to_string(markdown).unwrap_or_else(|e| panic!("{}: {e}", markdown.display()));
    let examples = examples();
    let blocks = rust_blocks(&text);
    for (i, block) in blocks.iter().enumerate() {
        assert!(
            examples.iter().any(|(_, code)| code == block),
            "{} block {} is not one of examples/*.rs verbatim; copy the example there (or change the example):\n{block}",
            markdown.display(),
            i + 1
        );
    }
    for name in must_show {
        let (_, code) = examples
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no examples/{name}"));
        assert!(
            blocks.contains(code),
            "{} does not show examples/{name}",
            markdown.display()
        );
    }
}

#[test]
fn docs_show_the_examples_verbatim() {
    let root = crate_dir().join("../..");
    check(&root.join("README.md"), &["quickstart.rs"]);
    check(&root.join("docs/streamer.md"), &["tour.rs"]);
    check(&crate_dir().join("README.md"), &["quickstart.rs"]);
}

#[test]
fn rust_blocks_are_found_with_their_exact_text() {
    let md = "text\n```rust\nfn main() {}\n```\n```sh\nls\n```\n```rust,no_run\nlet x = 1;\n```\n";
    assert_eq!(
        rust_blocks(md),
        vec!["fn main() {}\n".to_owned(), "let x = 1;\n".to_owned()]
    );
}
