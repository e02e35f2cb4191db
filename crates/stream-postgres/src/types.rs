//! PostgreSQL column types of the target, the MySQL/MariaDB → PostgreSQL mapping, and which
//! type changes are lossless widenings.

use std::fmt;

/// A target column type (the subset the sink creates and understands).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PgType {
    /// `boolean`.
    Bool,
    /// `smallint`.
    Int2,
    /// `integer`.
    Int4,
    /// `bigint`.
    Int8,
    /// `numeric(p,s)`, or unconstrained `numeric` when `None`.
    Numeric(Option<(u32, u32)>),
    /// `real`.
    Float4,
    /// `double precision`.
    Float8,
    /// `text`.
    Text,
    /// `text[]`.
    TextArray,
    /// `bytea`.
    Bytea,
    /// `jsonb`.
    Jsonb,
    /// `date`.
    Date,
    /// `timestamp(p) without time zone`.
    Timestamp(u8),
    /// `timestamptz(p)`.
    Timestamptz(u8),
    /// `interval`.
    Interval,
    /// `uuid`.
    Uuid,
    /// `inet`.
    Inet,
}

impl fmt::Display for PgType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PgType::Bool => f.write_str("boolean"),
            PgType::Int2 => f.write_str("smallint"),
            PgType::Int4 => f.write_str("integer"),
            PgType::Int8 => f.write_str("bigint"),
            PgType::Numeric(Some((p, s))) => write!(f, "numeric({p},{s})"),
            PgType::Numeric(None) => f.write_str("numeric"),
            PgType::Float4 => f.write_str("real"),
            PgType::Float8 => f.write_str("double precision"),
            PgType::Text => f.write_str("text"),
            PgType::TextArray => f.write_str("text[]"),
            PgType::Bytea => f.write_str("bytea"),
            PgType::Jsonb => f.write_str("jsonb"),
            PgType::Date => f.write_str("date"),
            PgType::Timestamp(p) => write!(f, "timestamp({p}) without time zone"),
            PgType::Timestamptz(p) => write!(f, "timestamp({p}) with time zone"),
            PgType::Interval => f.write_str("interval"),
            PgType::Uuid => f.write_str("uuid"),
            PgType::Inet => f.write_str("inet"),
        }
    }
}

impl PgType {
    /// Reads what PostgreSQL's `format_type()` prints; `None` for types the sink does not
    /// write (a column a user added by hand: left alone, never written).
    pub fn from_catalog(text: &str) -> Option<Self> {
        let (base, args) = match text.split_once('(') {
            Some((b, rest)) => {
                let (args, tail) = rest.split_once(')').unwrap_or((rest, ""));
                (format!("{b}{tail}"), Some(args))
            }
            None => (text.to_owned(), None),
        };
        let precision = || args.and_then(|a| a.trim().parse::<u8>().ok()).unwrap_or(6);
        Some(match base.trim() {
            "boolean" => PgType::Bool,
            "smallint" => PgType::Int2,
            "integer" => PgType::Int4,
            "bigint" => PgType::Int8,
            "numeric" => PgType::Numeric(args.and_then(|a| {
                let (p, s) = a.split_once(',').unwrap_or((a, "0"));
                Some((p.trim().parse().ok()?, s.trim().parse().ok()?))
            })),
            "real" => PgType::Float4,
            "double precision" => PgType::Float8,
            "text" | "character varying" => PgType::Text,
            "text[]" => PgType::TextArray,
            "bytea" => PgType::Bytea,
            "jsonb" => PgType::Jsonb,
            "date" => PgType::Date,
            "timestamp without time zone" => PgType::Timestamp(precision()),
            "timestamp with time zone" => PgType::Timestamptz(precision()),
            "interval" => PgType::Interval,
            "uuid" => PgType::Uuid,
            "inet" => PgType::Inet,
            _ => return None,
        })
    }

    /// Whether `self::text` writes every value as the source writes it when the column
    /// becomes a string there (`ALTER ... MODIFY n VARCHAR`), so the target may turn the
    /// column into text in place: integers, numerics with their scale, dates, whole-second
    /// timestamps. Not floats, fractional timestamps or booleans, whose PostgreSQL text differs.
    pub fn prints_as_source_text(self) -> bool {
        use PgType::*;
        matches!(
            self,
            Int2 | Int4 | Int8 | Numeric(_) | Date | Timestamp(0) | Text
        )
    }

    /// Whether every value of `self` fits `to` exactly, so the column may be altered in place.
    pub fn widens_to(self, to: PgType) -> bool {
        use PgType::*;
        let int_digits = |t: PgType| match t {
            Int2 => Some(5),
            Int4 => Some(10),
            Int8 => Some(19),
            Numeric(Some((p, 0))) => Some(p),
            _ => None,
        };
        match (self, to) {
            (a, b) if a == b => true,
            (Int2, Int4 | Int8) | (Int4, Int8) | (Float4, Float8) => true,
            (Int2 | Int4 | Int8 | Numeric(_), Numeric(None)) => true,
            (Int2 | Int4 | Int8, Numeric(Some((p, s)))) => {
                int_digits(self).is_some_and(|d| p - s >= d)
            }
            (Numeric(Some((p1, s1))), Numeric(Some((p2, s2)))) => s2 >= s1 && p2 - s2 >= p1 - s1,
            (Timestamp(a), Timestamp(b)) | (Timestamptz(a), Timestamptz(b)) => b >= a,
            _ => false,
        }
    }
}

/// A MySQL/MariaDB column type as the source describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MySqlType {
    /// `DATA_TYPE`, lower case (`int`, `varchar`, `decimal`, …).
    pub(crate) data_type: String,
    /// `UNSIGNED`.
    pub(crate) unsigned: bool,
    /// DECIMAL precision and scale, when known.
    pub(crate) precision: Option<(u32, u32)>,
    /// Fraction digits of DATETIME, TIMESTAMP and TIME.
    pub(crate) fsp: u8,
    /// A MariaDB JSON column (LONGTEXT with a `json_valid` check).
    pub(crate) json: bool,
}

impl fmt::Display for MySqlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.data_type)?;
        if let Some((p, s)) = self.precision {
            write!(f, "({p},{s})")?;
        } else if self.fsp > 0 {
            write!(f, "({})", self.fsp)?;
        }
        if self.unsigned {
            f.write_str(" unsigned")?;
        }
        Ok(())
    }
}

impl MySqlType {
    /// Reads a column type as written in DDL or `COLUMN_TYPE` (`decimal(10,2) unsigned`,
    /// `datetime(6)`, `enum('a','b')`).
    pub(crate) fn parse(text: &str) -> Self {
        let lower = text.trim().to_ascii_lowercase();
        let base: String = lower
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ' ')
            .collect();
        let base = base.trim();
        let base = base
            .strip_suffix(" unsigned")
            .or_else(|| base.strip_suffix(" signed"))
            .unwrap_or(base)
            .trim();
        let data_type = match base {
            "integer" => "int",
            "bool" | "boolean" => "tinyint",
            "numeric" | "dec" | "fixed" => "decimal",
            "real" | "double precision" => "double",
            "character" | "nchar" => "char",
            "character varying" | "nvarchar" | "national varchar" => "varchar",
            other => other.split(' ').next().unwrap_or(other),
        }
        .to_owned();
        let args: Option<Vec<u32>> = lower.split_once('(').and_then(|(_, rest)| {
            let inner = rest.split_once(')')?.0;
            inner.split(',').map(|a| a.trim().parse().ok()).collect()
        });
        let precision = match (data_type.as_str(), args.as_deref()) {
            ("decimal", Some([p, s])) => Some((*p, *s)),
            ("decimal", Some([p])) => Some((*p, 0)),
            ("decimal", _) => Some((10, 0)),
            _ => None,
        };
        let fsp = match (data_type.as_str(), args.as_deref()) {
            ("datetime" | "timestamp" | "time", Some([n])) => (*n).min(6) as u8,
            _ => 0,
        };
        Self {
            json: data_type == "json",
            unsigned: lower.contains("unsigned"),
            data_type,
            precision,
            fsp,
        }
    }

    /// The target type, by the table in `docs/postgres.md`.
    pub(crate) fn to_pg(&self) -> PgType {
        if self.json {
            return PgType::Jsonb;
        }
        match (self.data_type.as_str(), self.unsigned) {
            ("tinyint" | "year", _) | ("smallint", false) => PgType::Int2,
            ("smallint", true) | ("mediumint", _) | ("int", false) => PgType::Int4,
            ("int", true) | ("bigint", false) | ("bit", _) => PgType::Int8,
            ("bigint", true) => PgType::Numeric(Some((20, 0))),
            ("decimal", _) => PgType::Numeric(self.precision),
            ("float", _) => PgType::Float4,
            ("double", _) => PgType::Float8,
            ("set", _) => PgType::TextArray,
            (
                "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob"
                | "geometry" | "point" | "linestring" | "polygon" | "multipoint"
                | "multilinestring" | "multipolygon" | "geometrycollection",
                _,
            ) => PgType::Bytea,
            ("json", _) => PgType::Jsonb,
            ("date", _) => PgType::Date,
            ("datetime", _) => PgType::Timestamp(self.fsp),
            ("timestamp", _) => PgType::Timestamptz(self.fsp),
            ("time", _) => PgType::Interval,
            ("uuid", _) => PgType::Uuid,
            ("inet4" | "inet6", _) => PgType::Inet,
            // CHAR, VARCHAR, the TEXT family, ENUM, and anything unknown: text keeps it all.
            _ => PgType::Text,
        }
    }
}

/// `"name"` with inner quotes doubled: an identifier safe in any SQL text.
pub(crate) fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pg(t: &str) -> PgType {
        MySqlType::parse(t).to_pg()
    }

    #[test]
    fn integers_numerics_dates_become_text_as_the_source_prints_them_but_not_floats() {
        for ty in [
            PgType::Int4,
            PgType::Int8,
            PgType::Numeric(Some((6, 2))),
            PgType::Date,
        ] {
            assert!(ty.prints_as_source_text(), "{ty}");
        }
        for ty in [
            PgType::Float8,
            PgType::Bool,
            PgType::Timestamp(6),
            PgType::Jsonb,
        ] {
            assert!(!ty.prints_as_source_text(), "{ty}");
        }
    }

    #[test]
    fn the_mapping_table_of_the_docs() {
        let cases = [
            ("tinyint", "smallint"),
            ("tinyint unsigned", "smallint"),
            ("smallint", "smallint"),
            ("year", "smallint"),
            ("smallint unsigned", "integer"),
            ("mediumint", "integer"),
            ("mediumint unsigned", "integer"),
            ("int(11)", "integer"),
            ("int unsigned", "bigint"),
            ("bigint", "bigint"),
            ("bit(12)", "bigint"),
            ("bigint(20) unsigned", "numeric(20,0)"),
            ("decimal(20,6)", "numeric(20,6)"),
            ("DECIMAL(5)", "numeric(5,0)"),
            ("float", "real"),
            ("double", "double precision"),
            ("varchar(40)", "text"),
            ("enum('a','b')", "text"),
            ("set('a','b')", "text[]"),
            ("blob", "bytea"),
            ("geometry", "bytea"),
            ("json", "jsonb"),
            ("date", "date"),
            ("datetime(6)", "timestamp(6) without time zone"),
            ("datetime", "timestamp(0) without time zone"),
            ("timestamp(3)", "timestamp(3) with time zone"),
            ("time(6)", "interval"),
            ("uuid", "uuid"),
            ("inet6", "inet"),
        ];
        for (mysql, want) in cases {
            assert_eq!(pg(mysql).to_string(), want, "{mysql}");
            assert_eq!(PgType::from_catalog(want), Some(pg(mysql)), "{want}");
        }
    }

    #[test]
    fn widenings_are_lossless_and_narrowings_are_not() {
        assert!(pg("int").widens_to(pg("bigint")));
        assert!(pg("varchar(10)").widens_to(pg("varchar(50)")));
        assert!(pg("decimal(5,2)").widens_to(pg("decimal(10,2)")));
        assert!(pg("int").widens_to(pg("decimal(12,2)")));
        assert!(!pg("int").widens_to(pg("decimal(10,2)")));
        assert!(!pg("decimal(10,2)").widens_to(pg("decimal(10,3)")));
        assert!(!pg("varchar(10)").widens_to(pg("int")));
        assert!(!pg("bigint").widens_to(pg("int")));
        assert!(pg("datetime(0)").widens_to(pg("datetime(6)")));
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(ident("a\"b"), "\"a\"\"b\"");
    }
}
