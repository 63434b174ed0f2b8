//! A small pool of PostgreSQL connections, each with its prepared statements, so a query
//! costs one round trip.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use postgres::fallible_iterator::FallibleIterator;
use postgres::types::ToSql;
use postgres::{Client, GenericClient, Row, Statement};
use r2d2::ManageConnection;
use r2d2_postgres::PostgresConnectionManager;
use tokio_postgres_rustls::MakeRustlsConnect;

/// Connecting, and a TCP peer that stops acknowledging, each give up after this: with the
/// pool's checkout bound, a request learns that the database is away well within 5 s.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Two instances on a default PostgreSQL (100 connections) fit with room for operators,
/// whatever the core count: requests beyond it wait for a connection, at most
/// [`CONNECT_TIMEOUT`].
pub const MAX_CONNECTIONS: u32 = 10;

/// A connection checked with a round trip this recently is not checked again on checkout.
const CHECKED_RECENTLY: Duration = Duration::from_secs(1);

/// One connection and the statements prepared on it.
pub struct Conn {
    client: Client,
    statements: HashMap<&'static str, Statement>,
    checked: Instant,
}

pub struct Manager(PostgresConnectionManager<MakeRustlsConnect>);

impl ManageConnection for Manager {
    type Connection = Conn;
    type Error = postgres::Error;

    fn connect(&self) -> Result<Conn, postgres::Error> {
        Ok(Conn {
            client: self.0.connect()?,
            statements: HashMap::new(),
            checked: Instant::now(),
        })
    }

    /// Checked on checkout, so that a connection that died with a restart of the database is
    /// replaced instead of failing a request after the database is back. What the server
    /// sent meanwhile (the FATAL of a shutdown) is read without waiting; a connection idle
    /// for a while also gets a round trip, which a busy one is spared.
    fn is_valid(&self, conn: &mut Conn) -> Result<(), postgres::Error> {
        conn.client.notifications().iter().next()?;
        if conn.checked.elapsed() > CHECKED_RECENTLY {
            self.0.is_valid(&mut conn.client)?;
            conn.checked = Instant::now();
        }
        Ok(())
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        self.0.has_broken(&mut conn.client)
    }
}

pub type Pool = r2d2::Pool<Manager>;

/// The pool; it connects in the background, so building it does not wait for the database.
pub fn pool(config: postgres::Config, tls: MakeRustlsConnect, max_size: u32) -> Pool {
    let manager = PostgresConnectionManager::new(config, tls);
    r2d2::Pool::builder()
        .max_size(max_size)
        .min_idle(Some(1))
        .connection_timeout(CONNECT_TIMEOUT)
        .test_on_check_out(true)
        .idle_timeout(Some(Duration::from_secs(300)))
        .error_handler(Box::new(QuietErrors))
        .build_unchecked(Manager(manager))
}

/// r2d2 logs every failed background connect at error level, several a second while the
/// database is down; the requests that cannot get a connection say so once each instead.
#[derive(Debug)]
struct QuietErrors;

impl r2d2::HandleError<postgres::Error> for QuietErrors {
    fn handle_error(&self, error: postgres::Error) {
        log::debug!("connecting to PostgreSQL: {error}");
    }
}

/// Queries with cached statements, on a connection or inside one of its transactions.
pub struct Db<'a, C: GenericClient> {
    client: &'a mut C,
    statements: &'a mut HashMap<&'static str, Statement>,
}

impl Conn {
    pub fn db(&mut self) -> Db<'_, Client> {
        Db {
            client: &mut self.client,
            statements: &mut self.statements,
        }
    }

    /// Runs `f` in a transaction, committed when it returns `Ok`, rolled back otherwise. A
    /// failed COMMIT is an error: then nothing of `f` was written.
    pub fn transaction<T, E: From<postgres::Error>>(
        &mut self,
        f: impl FnOnce(&mut Db<'_, postgres::Transaction<'_>>) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut tx = self.client.transaction()?;
        let value = f(&mut Db {
            client: &mut tx,
            statements: &mut self.statements,
        })?;
        tx.commit()?;
        Ok(value)
    }

    /// As [`Conn::transaction`], with a commit flushed to the WAL before it returns: the
    /// transaction's start and its `synchronous_commit = on` go in one round trip (a login's
    /// finishing transaction is one of these).
    pub fn synced_transaction<T, E: From<postgres::Error>>(
        &mut self,
        f: impl FnOnce(&mut Db<'_, Client>) -> Result<T, E>,
    ) -> Result<T, E> {
        self.client
            .batch_execute("START TRANSACTION; SET LOCAL synchronous_commit = on")?;
        let mut open = Open {
            client: &mut self.client,
            finished: false,
        };
        let value = f(&mut Db {
            client: &mut *open.client,
            statements: &mut self.statements,
        })?;
        open.finished = true;
        open.client.batch_execute("COMMIT")?;
        Ok(value)
    }

    pub fn client(&mut self) -> &mut Client {
        &mut self.client
    }
}

/// A transaction begun with a plain `START TRANSACTION`: rolled back when left unfinished
/// (an error, or a panic unwinding), so the connection goes back to the pool outside any
/// transaction, as `postgres::Transaction` does on drop.
struct Open<'a> {
    client: &'a mut Client,
    finished: bool,
}

impl Drop for Open<'_> {
    fn drop(&mut self) {
        if !self.finished {
            // A connection that cannot roll back is broken, and the pool drops it.
            let _ = self.client.batch_execute("ROLLBACK");
        }
    }
}

type Params<'p> = &'p [&'p (dyn ToSql + Sync)];

impl<C: GenericClient> Db<'_, C> {
    fn statement(&mut self, sql: &'static str) -> Result<Statement, postgres::Error> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql)?;
        self.statements.insert(sql, statement.clone());
        Ok(statement)
    }

    pub fn query(
        &mut self,
        sql: &'static str,
        params: Params<'_>,
    ) -> Result<Vec<Row>, postgres::Error> {
        let statement = self.statement(sql)?;
        self.client.query(&statement, params)
    }

    pub fn query_one(
        &mut self,
        sql: &'static str,
        params: Params<'_>,
    ) -> Result<Row, postgres::Error> {
        let statement = self.statement(sql)?;
        self.client.query_one(&statement, params)
    }

    pub fn execute(
        &mut self,
        sql: &'static str,
        params: Params<'_>,
    ) -> Result<u64, postgres::Error> {
        let statement = self.statement(sql)?;
        self.client.execute(&statement, params)
    }

    /// An unprepared statement, for SQL built at run time (a copy's column lists).
    pub fn client(&mut self) -> &mut C {
        self.client
    }
}
