//! Two sources of one sink whose tables would land in the same PostgreSQL tables, when the
//! config alone shows it: the same table name into one `schema`, or the same database read by
//! both. Collisions only the data can show (`shop.*` and `app.*` into one schema, both with an
//! `orders`) are refused by the sink at the table's first change, naming both tables.

use super::plan::{SinkPlan, SourcePlan};
use super::sinks::sink_patterns;

/// Why two sources of `sink` would write the same tables, or `None` when the config does not
/// show it.
pub(crate) fn colliding_sources(sink: &SinkPlan, sources: &[SourcePlan]) -> Option<String> {
    let feeding: Vec<&SourcePlan> = sources
        .iter()
        .filter(|s| sink.sources.contains(&s.name))
        .collect();
    for (i, a) in feeding.iter().enumerate() {
        for b in &feeding[i + 1..] {
            for pa in sink_patterns(sink, std::slice::from_ref(*a)) {
                for pb in sink_patterns(sink, std::slice::from_ref(*b)) {
                    if surely_collide(&pa, &pb, sink.schema.is_some()) {
                        let into = sink.schema.as_deref().map_or_else(
                            || "the same schema".to_owned(),
                            |s| format!("`schema: {s}`"),
                        );
                        return Some(format!(
                            "sources `{}` ({pa}) and `{}` ({pb}) would write the same tables into {into}; give them separate sinks with different `schema`s, or include different tables",
                            a.name, b.name
                        ));
                    }
                }
            }
        }
    }
    None
}

/// Whether include patterns `a` and `b` (`db.table`, wildcards `*` and `?`) surely map some
/// table to one target table: into one schema (`one_schema`, or the same database), the same
/// table name, or every table of the same database.
fn surely_collide(a: &str, b: &str, one_schema: bool) -> bool {
    let split = |p: &'_ str| -> (String, String) {
        let (db, table) = p.split_once('.').unwrap_or((p, "*"));
        (db.to_owned(), table.to_owned())
    };
    let literal = |s: &str| !s.contains(['*', '?']);
    let ((da, ta), (db, tb)) = (split(a), split(b));
    let same_database = literal(&da) && da == db;
    if !(one_schema || same_database) {
        return false;
    }
    (literal(&ta) && ta == tb) || (same_database && (ta == "*" || tb == "*"))
}

#[cfg(test)]
mod tests {
    use super::surely_collide;

    #[test]
    fn the_same_table_into_one_schema_or_the_same_database_twice_collide() {
        assert!(surely_collide("shop.orders", "app.orders", true));
        assert!(!surely_collide("shop.orders", "app.orders", false));
        assert!(surely_collide("shop.*", "shop.*", false));
        assert!(surely_collide("shop.*", "shop.orders", false));
        // Names are case-sensitive in PostgreSQL (quoted) and in MySQL on Linux.
        assert!(!surely_collide("Shop.Orders", "shop.orders", false));
        // Only the data can tell.
        assert!(!surely_collide("shop.*", "app.*", true));
        assert!(!surely_collide("shop.orders", "app.*", true));
        assert!(!surely_collide("*", "*", true));
        assert!(!surely_collide("shop.orders", "shop.customers", false));
    }
}
