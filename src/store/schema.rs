//! The two schema files, `schema.sql` (SQLite) and `schema-postgres.sql` (PostgreSQL): the
//! same numbered migrations, section for section, in each engine's DDL. Each engine applies
//! them its own way; reading the sections is the same for both.

pub const SQLITE: &str = include_str!("../../schema.sql");
#[cfg(any(feature = "postgres", test))]
pub const POSTGRES: &str = include_str!("../../schema-postgres.sql");

/// The `(number, sql)` sections of a schema file, each after a `-- migration N` line. A
/// section whose number does not parse is none (the tests check the numbering).
pub fn sections(schema: &'static str) -> Vec<(i64, &'static str)> {
    schema
        .split("-- migration ")
        .skip(1)
        .filter_map(|section| {
            let (number, sql) = section.split_once('\n').unwrap_or((section, ""));
            Some((number.trim().parse().ok()?, sql))
        })
        .collect()
}

/// The newest version a schema file knows.
pub fn newest(schema: &'static str) -> i64 {
    sections(schema).last().map_or(0, |(n, _)| *n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_files_number_the_same_migrations_from_one_without_gaps() {
        let numbers = |schema| {
            sections(schema)
                .into_iter()
                .map(|(n, _)| n)
                .collect::<Vec<_>>()
        };
        let postgres = numbers(POSTGRES);
        assert_eq!(postgres, numbers(SQLITE));
        assert_eq!(postgres, (1..=postgres.len() as i64).collect::<Vec<_>>());
        assert_eq!(
            SQLITE.matches("-- migration ").count(),
            postgres.len(),
            "every section's number parses"
        );
    }
}
