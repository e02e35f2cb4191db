//! DDL statements applied to the catalog the binlog source keeps (`db\0statement\0...`; the
//! first input byte's bit 0 says MariaDB). After every statement the known definitions must
//! hold together: primary keys name their own columns, and a checkpoint's copy reads back the
//! same. Nothing may panic or hang.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stream_mysql::bench_support::DdlCatalog;
use ultimate_stream_fuzz::{Frames, ddl_statements, on_worker_stack};

fuzz_target!(|data: &[u8]| {
    let mut input = Frames::new(data);
    let mariadb = input.byte() & 1 != 0;
    let (db, statements) = ddl_statements(input.rest());
    on_worker_stack(move || {
        let mut catalog = DdlCatalog::new(mariadb);
        for sql in &statements {
            catalog.apply(sql, (!db.is_empty()).then_some(db.as_str()));
            if let Err(e) = catalog.check_invariants() {
                panic!("after `{sql}`: {e}");
            }
        }
    });
});
