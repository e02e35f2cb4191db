//! MySQL binary JSON (the `JSON` column's row-image format), decoded through the row decoder
//! on a tokio worker's stack, as the binlog source does. Whatever decodes must be valid JSON;
//! nothing may panic, overflow the stack, hang or allocate without bound.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use stream_mysql::bench_support::BinaryJsonColumn;
use ultimate_stream_fuzz::on_worker_stack;

static COLUMN: OnceLock<BinaryJsonColumn> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let column = COLUMN.get_or_init(|| BinaryJsonColumn::new().expect("the JSON column"));
    let data = data.to_vec();
    if let Ok(text) = on_worker_stack(move || column.decode(&data)) {
        if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(&text) {
            panic!("decoded to invalid JSON ({e}): {text}");
        }
    }
});
