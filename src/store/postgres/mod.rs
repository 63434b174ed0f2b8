//! The PostgreSQL engine: several instances share one database.

pub mod migrate;
pub mod pool;
pub mod target;

use crate::error::Error;

/// A PostgreSQL failure as the command line reports it.
fn database(err: postgres::Error) -> Error {
    Error::Invalid(format!("database error: {err}"))
}
