//! Whole tables, for `db copy`: read in key order, replaced in one durable transaction with
//! their ids, and each identity sequence advanced past the highest.

use postgres::types::ToSql;
use postgres::{GenericClient, IsolationLevel};

use super::Postgres;
use crate::store::copy::{self, Rows, Table, Value};
use crate::store::{StoreResult, Tables};

fn quoted(name: &str) -> String {
    format!("\"{name}\"")
}

fn as_sql(value: &Value) -> &(dyn ToSql + Sync) {
    match value {
        Value::Int(v) => v,
        Value::Real(v) => v,
        Value::Text(v) => v,
        Value::Bool(v) => v,
    }
}

fn read(client: &mut impl GenericClient, table: &Table) -> StoreResult<Rows> {
    let rows = client.query(&copy::select_all(table), &[])?;
    rows.iter().map(|row| copy::values(row, table)).collect()
}

impl Tables for Postgres {
    fn read_tables(&self, tables: &[Table]) -> StoreResult<Vec<Rows>> {
        let mut conn = self.conn()?;
        let mut tx = conn
            .client()
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()?;
        tx.batch_execute(super::NO_TIMEOUTS)?;
        let all = tables
            .iter()
            .map(|table| read(&mut tx, table))
            .collect::<StoreResult<Vec<_>>>()?;
        tx.commit()?;
        Ok(all)
    }

    fn replace_tables(&self, tables: &[(&Table, Rows)]) -> StoreResult<()> {
        self.conn()?.synced_transaction(|db| {
            let client = db.client();
            client.batch_execute(super::NO_TIMEOUTS)?;
            for (table, _) in tables.iter().rev() {
                client.execute(&format!("DELETE FROM {}", quoted(table.name)), &[])?;
            }
            for (table, rows) in tables {
                let placeholders: Vec<String> =
                    (1..=table.columns.len()).map(|i| format!("${i}")).collect();
                let insert = client.prepare(&format!(
                    "INSERT INTO {} ({}) VALUES ({})",
                    quoted(table.name),
                    copy::column_list(table),
                    placeholders.join(", ")
                ))?;
                for row in rows {
                    let values: Vec<&(dyn ToSql + Sync)> = row.iter().map(as_sql).collect();
                    client.execute(&insert, &values)?;
                }
                if !table.numbered() {
                    continue;
                }
                client.execute(
                    &format!(
                        "SELECT setval(pg_get_serial_sequence('{0}', 'id'), coalesce(max(id), 0) + 1, false) FROM {0}",
                        quoted(table.name)
                    ),
                    &[],
                )?;
            }
            Ok(())
        })
    }
}
