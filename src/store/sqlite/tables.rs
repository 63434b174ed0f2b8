//! Whole tables, for `db copy`: read in key order, replaced in one durable transaction with
//! their ids (AUTOINCREMENT's counter follows the highest id inserted).

use rusqlite::{Connection, ToSql};

use super::Sqlite;
use crate::store::copy::{self, Rows, Table, Value};
use crate::store::{StoreResult, Tables};

fn as_sql(value: &Value) -> &dyn ToSql {
    match value {
        Value::Int(v) => v,
        Value::Real(v) => v,
        Value::Text(v) => v,
        Value::Bool(v) => v,
    }
}

fn read(conn: &Connection, table: &Table) -> StoreResult<Rows> {
    let mut stmt = conn.prepare(&copy::select_all(table))?;
    let mut rows = stmt.query([])?;
    let mut all = Vec::new();
    while let Some(row) = rows.next()? {
        all.push(copy::values(row, table)?);
    }
    Ok(all)
}

impl Tables for Sqlite {
    fn read_tables(&self, tables: &[Table]) -> StoreResult<Vec<Rows>> {
        self.immediate(|conn| tables.iter().map(|table| read(conn, table)).collect())
    }

    fn replace_tables(&self, tables: &[(&Table, Rows)]) -> StoreResult<()> {
        self.synced(|conn| {
            for (table, _) in tables.iter().rev() {
                conn.execute(&format!("DELETE FROM \"{}\"", table.name), [])?;
            }
            for (table, rows) in tables {
                let placeholders = vec!["?"; table.columns.len()].join(", ");
                let mut insert = conn.prepare(&format!(
                    "INSERT INTO \"{}\" ({}) VALUES ({placeholders})",
                    table.name,
                    copy::column_list(table)
                ))?;
                for row in rows {
                    let values: Vec<&dyn ToSql> = row.iter().map(as_sql).collect();
                    insert.execute(&values[..])?;
                }
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::copy::TABLES;

    /// A table or column that `db copy` does not know would be left behind by it. The realm
    /// version is not data: the target's triggers keep its own.
    #[test]
    fn copy_lists_every_table() {
        let dir = tempfile::tempdir().unwrap();
        let store = Sqlite::open(&dir.path().join("db")).unwrap();
        let mut stmt = store
            .conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name <> 'realm_version' ORDER BY name")
            .unwrap();
        let names: Vec<String> = stmt
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let mut listed: Vec<&str> = TABLES.iter().map(|t| t.name).collect();
        listed.sort();
        assert_eq!(names, listed);
        for table in TABLES {
            let mut stmt = store
                .conn
                .prepare(&format!("PRAGMA table_info(\"{}\")", table.name))
                .unwrap();
            let columns: Vec<String> = stmt
                .query_map([], |r| r.get(1))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            let known: Vec<&str> = table.columns.iter().map(|(name, _)| *name).collect();
            assert_eq!(columns, known, "{}", table.name);
        }
    }
}
