//! Which columns a CHECK constraint keeps valid JSON: how MariaDB marks its JSON columns
//! (LONGTEXT plus `CHECK (json_valid(col))`).
//!
//! One rule for every path, so a column is JSON or text the same way whether its definition
//! came from information_schema (`CHECK_CONSTRAINTS.CHECK_CLAUSE`, parsed here) or from DDL in
//! the binlog (the parsed statement's expression): a column is kept valid JSON by a check that
//! is `json_valid(col)`, has it as one side of an `AND`, or is `col IS NULL OR json_valid(col)`.

use sqlparser::ast::{
    BinaryOperator, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, ObjectNamePart,
};
use sqlparser::dialect::MySqlDialect;
use sqlparser::parser::Parser;

/// The column an expression names, if it is just a (possibly qualified) column.
fn column_of(expr: &Expr) -> Option<&str> {
    match expr {
        Expr::Identifier(ident) => Some(ident.value.as_str()),
        Expr::CompoundIdentifier(parts) => parts.last().map(|i| i.value.as_str()),
        Expr::Nested(inner) => column_of(inner),
        _ => None,
    }
}

/// `json_valid(col)`: the column.
fn json_valid_of(expr: &Expr) -> Option<&str> {
    let Expr::Function(f) = expr else {
        return None;
    };
    let is_json_valid = f.name.0.last().is_some_and(|part| match part {
        ObjectNamePart::Identifier(i) => i.value.eq_ignore_ascii_case("json_valid"),
        _ => false,
    });
    let FunctionArguments::List(list) = &f.args else {
        return None;
    };
    match list.args.as_slice() {
        [FunctionArg::Unnamed(FunctionArgExpr::Expr(arg))] if is_json_valid => column_of(arg),
        _ => None,
    }
}

/// `col IS NULL`: the column.
fn is_null_of(expr: &Expr) -> Option<&str> {
    match expr {
        Expr::IsNull(inner) => column_of(inner),
        Expr::Nested(inner) => is_null_of(inner),
        _ => None,
    }
}

/// The columns `expr` (a CHECK condition) keeps valid JSON, as the expression names them.
pub(crate) fn json_columns(expr: &Expr) -> Vec<String> {
    let mut out = Vec::new();
    collect(expr, &mut out);
    out.sort();
    out.dedup();
    out
}

fn collect(expr: &Expr, out: &mut Vec<String>) {
    if let Some(col) = json_valid_of(expr) {
        out.push(col.to_owned());
        return;
    }
    match expr {
        Expr::Nested(inner) => collect(inner, out),
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => {
            collect(left, out);
            collect(right, out);
        }
        Expr::BinaryOp {
            left,
            op: BinaryOperator::Or,
            right,
        } => {
            // NULL passes a CHECK anyway: `col IS NULL OR <keeps col JSON>` keeps it JSON.
            for (null_side, other) in [(left, right), (right, left)] {
                if let Some(col) = is_null_of(null_side) {
                    let mut kept = Vec::new();
                    collect(other, &mut kept);
                    if kept.iter().any(|k| k.eq_ignore_ascii_case(col)) {
                        out.push(col.to_owned());
                    }
                }
            }
        }
        _ => {}
    }
}

/// [`json_columns`] of a CHECK clause as information_schema prints it; nothing when the
/// clause cannot be parsed (then it cannot be a plain `json_valid` either).
pub(crate) fn json_columns_of_clause(clause: &str) -> Vec<String> {
    Parser::new(&MySqlDialect {})
        .try_with_sql(clause)
        .and_then(|mut p| p.parse_expr())
        .map(|expr| json_columns(&expr))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_valid_alone_and_in_conjunctions_and_null_alternatives_keep_json() {
        assert_eq!(json_columns_of_clause("json_valid(`doc`)"), ["doc"]);
        assert_eq!(json_columns_of_clause("JSON_VALID(t.doc)"), ["doc"]);
        assert_eq!(
            json_columns_of_clause("json_valid(`a`) and `a` <> '' and (json_valid(b))"),
            ["a", "b"]
        );
        assert_eq!(
            json_columns_of_clause("`d` is null or json_valid(`d`)"),
            ["d"]
        );
        assert_eq!(
            json_columns_of_clause("json_valid(`d`) OR d IS NULL"),
            ["d"]
        );
    }

    #[test]
    fn other_checks_keep_nothing_json() {
        for clause in [
            "json_length(`doc`) < 5",
            "json_valid(`a`) or `b` > 0",
            "`a` is null or json_valid(`b`)",
            "not json_valid(`a`)",
            "json_valid(concat(`a`, `b`))",
            "json_valid(`a`, `b`)",
            "this is ( not sql",
        ] {
            assert!(json_columns_of_clause(clause).is_empty(), "{clause}");
        }
    }
}
