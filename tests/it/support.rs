//! Test support: the real binary on 127.0.0.1:0 with a throw-away database, the admin CLI
//! against that database, and a raw TcpStream HTTP client so tests see the exact bytes.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use tempfile::TempDir;

pub const BIN: &str = env!("CARGO_BIN_EXE_zulip-auth");

/// The example user of docs/wire.md.
pub const IAGO: &str = "iago@example.com";
pub const IAGO_PASSWORD: &str = "Correct-Horse-9";

/// A running server with its own database.
pub struct TestServer {
    child: Child,
    pub addr: SocketAddr,
    /// The `--db` argument: a SQLite file, or a PostgreSQL URL (see [`TestDb`]).
    pub db: PathBuf,
    /// A directory of the test's own, for files.
    pub dir: PathBuf,
    pub stderr: PathBuf,
    args: Vec<String>,
    database: TestDb,
    _dir: TempDir,
}

/// A database of one test's own: a SQLite file, or, when `ZULIP_AUTH_TEST_DB` names a
/// PostgreSQL server (`postgres://USER@HOST:PORT/DBNAME`, password in `PGPASSWORD`), a new
/// database created there and dropped when the test ends. tests/postgres/run sets it to
/// run the whole suite on PostgreSQL.
pub struct TestDb {
    pub arg: PathBuf,
    #[cfg(feature = "postgres")]
    postgres: Option<(postgres::Config, String)>,
}

/// Whether this run's servers use PostgreSQL: tests of SQLite's file faults skip then
/// (tests/postgres/run stops and restarts the PostgreSQL server instead).
pub fn on_postgres() -> bool {
    std::env::var_os("ZULIP_AUTH_TEST_DB").is_some()
}

impl TestDb {
    /// The number of rows in `table`, read behind the server's back.
    pub fn row_count(&self, table: &str) -> i64 {
        let query = format!("SELECT count(*) FROM \"{table}\"");
        #[cfg(feature = "postgres")]
        if let Some((config, name)) = &self.postgres {
            let mut config = config.clone();
            config.dbname(name);
            let mut client = config.connect(postgres::NoTls).unwrap();
            return client.query_one(&query, &[]).unwrap().get(0);
        }
        let conn = rusqlite::Connection::open(&self.arg).unwrap();
        conn.query_row(&query, [], |r| r.get(0)).unwrap()
    }

    /// Runs `sql` with `$1` bound to `text`, behind the server's back (SQLite reads `$1` as
    /// a parameter too).
    pub fn execute(&self, sql: &str, text: &str) {
        #[cfg(feature = "postgres")]
        if let Some((config, name)) = &self.postgres {
            let mut config = config.clone();
            config.dbname(name);
            let mut client = config.connect(postgres::NoTls).unwrap();
            client.execute(sql, &[&text]).unwrap();
            return;
        }
        let conn = rusqlite::Connection::open(&self.arg).unwrap();
        conn.execute(sql, [text]).unwrap();
    }

    pub fn new(dir: &std::path::Path) -> TestDb {
        match std::env::var("ZULIP_AUTH_TEST_DB") {
            #[cfg(feature = "postgres")]
            Ok(url) => TestDb::postgres(&url),
            _ => TestDb {
                arg: dir.join("test.sqlite3"),
                #[cfg(feature = "postgres")]
                postgres: None,
            },
        }
    }

    #[cfg(feature = "postgres")]
    fn postgres(url: &str) -> TestDb {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "zt_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut config: postgres::Config = url.parse().unwrap();
        if let Ok(password) = std::env::var("PGPASSWORD") {
            config.password(password);
        }
        let mut client = config.connect(postgres::NoTls).unwrap();
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap();
        let base = url.rsplit_once('/').unwrap().0;
        TestDb {
            arg: PathBuf::from(format!("{base}/{name}")),
            postgres: Some((config, name)),
        }
    }
}

#[cfg(feature = "postgres")]
impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((config, name)) = &self.postgres
            && let Ok(mut client) = config.connect(postgres::NoTls)
        {
            let _ = client.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
    }
}

/// The binary, blind to a packaged host's settings file (/etc/zulip-auth/zulip-auth.conf).
pub fn bin() -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env("ZULIP_AUTH_CONFIG", "none");
    cmd
}

/// A login of form-encoded `body` on a connection of its own, its whole answer as text: for
/// a thread that waits on it while the test does something else.
pub fn login_on_the_side(addr: SocketAddr, body: &str) -> String {
    let request = format!(
        "POST /api/v1/fetch_api_key HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

/// Small argon2 parameters: tests exercise behaviour, not hashing cost.
fn command(db: &PathBuf) -> Command {
    let mut cmd = bin();
    cmd.arg("--db")
        .arg(db)
        .env("ZULIP_AUTH_ARGON2_M", "256")
        .env("ZULIP_AUTH_ARGON2_T", "1")
        .env("ZULIP_AUTH_ARGON2_P", "1")
        .env_remove("STATE_DIRECTORY")
        .env_remove("RUST_LOG");
    cmd
}

impl TestServer {
    /// Starts `zulip-auth serve` with `args` on a free loopback port.
    pub fn start(args: &[&str]) -> TestServer {
        TestServer::start_with_env(args, &[])
    }

    /// The server's process id, for what only /proc shows (its memory).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Starts a server with extra environment variables.
    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let database = TestDb::new(dir.path());
        let db = database.arg.clone();
        let stderr = dir.path().join("stderr.log");
        let (child, addr) = spawn_server(&db, &stderr, args, env);
        TestServer {
            child,
            addr,
            db,
            dir: dir.path().to_owned(),
            stderr,
            args: args.iter().map(|a| a.to_string()).collect(),
            database,
            _dir: dir,
        }
    }

    /// Kills the server and starts it again on the same database (on a new port).
    pub fn restart(&mut self) {
        self.restart_with(&[]);
    }

    /// Restarts with `extra` arguments after the original ones.
    pub fn restart_with(&mut self, extra: &[&str]) {
        self.kill();
        self.args.extend(extra.iter().map(|a| a.to_string()));
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        let (child, addr) = spawn_server(&self.db, &self.stderr, &args, &[]);
        self.child = child;
        self.addr = addr;
    }
}

fn spawn_server(
    db: &PathBuf,
    stderr: &PathBuf,
    args: &[&str],
    env: &[(&str, &str)],
) -> (Child, SocketAddr) {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(stderr)
        .unwrap();
    // Four workers unless the test asks for its own number.
    let workers: &[&str] = if args.contains(&"--workers") {
        &[]
    } else {
        &["--workers", "4"]
    };
    let mut child = command(db)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(workers)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .trim()
        .parse()
        .unwrap();
    (child, addr)
}

impl TestServer {
    /// Starts a server whose root realm has iago as an admin.
    pub fn with_iago(args: &[&str]) -> (TestServer, i64) {
        let server = TestServer::start(args);
        let id = server.create_user(
            IAGO,
            IAGO_PASSWORD,
            &["--full-name", "Iago", "--role", "admin"],
        );
        (server, id)
    }

    /// The number of rows in one of the database's tables.
    pub fn row_count(&self, table: &str) -> i64 {
        self.database.row_count(table)
    }

    /// Runs `sql` with `$1` bound to `text` on the server's database (see [`TestDb::execute`]).
    pub fn execute(&self, sql: &str, text: &str) {
        self.database.execute(sql, text)
    }

    /// Runs an admin command against this server's database.
    pub fn cli(&self, args: &[&str], stdin: &str) -> Output {
        run_cli(&self.db, args, stdin)
    }

    /// `user create`, returning the new id.
    pub fn create_user(&self, email: &str, password: &str, extra: &[&str]) -> i64 {
        let mut args = vec!["user", "create", email, "--password-stdin"];
        args.extend_from_slice(extra);
        let out = self.cli(&args, &format!("{password}\n"));
        assert!(
            out.status.success(),
            "user create failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    /// `user import` of `jsonl` into the root realm; returns stdout.
    pub fn import(&self, jsonl: &str) -> String {
        let file = self.dir.join("import.jsonl");
        std::fs::write(&file, jsonl).unwrap();
        let out = self.cli(&["user", "import", file.to_str().unwrap()], "");
        assert!(
            out.status.success(),
            "import failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Stdout of an admin command that must succeed.
    pub fn stdout(&self, args: &[&str]) -> String {
        let out = self.cli(args, "");
        assert!(
            out.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn ok(&self, args: &[&str]) {
        let out = self.cli(args, "");
        assert!(
            out.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Sends raw bytes and reads the whole response (the request should close the connection).
    pub fn raw(&self, request: &[u8]) -> HttpResponse {
        let mut stream = TcpStream::connect(self.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        stream.write_all(request).unwrap();
        let mut bytes = Vec::new();
        stream.read_to_end(&mut bytes).unwrap();
        HttpResponse::parse(&bytes)
    }

    /// A request with the given method, target, extra header lines (a Host of the test's
    /// own, else the server's address) and body.
    pub fn send(
        &self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> HttpResponse {
        let mut request = format!("{method} {target} HTTP/1.1\r\nConnection: close\r\n");
        if !headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("host"))
        {
            request.push_str(&format!("Host: {}\r\n", self.addr));
        }
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        if !body.is_empty() || method == "POST" {
            request.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        request.push_str("\r\n");
        let mut bytes = request.into_bytes();
        bytes.extend_from_slice(body);
        self.raw(&bytes)
    }

    pub fn get(&self, target: &str) -> HttpResponse {
        self.send("GET", target, &[], b"")
    }

    /// A urlencoded POST, as python-zulip sends it.
    pub fn post_form(&self, target: &str, pairs: &[(&str, &str)]) -> HttpResponse {
        self.post_form_with(target, pairs, &[])
    }

    pub fn post_form_with(
        &self,
        target: &str,
        pairs: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> HttpResponse {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        let mut all = vec![(
            "Content-Type",
            "application/x-www-form-urlencoded; charset=utf-8",
        )];
        all.extend_from_slice(headers);
        self.send("POST", target, &all, body.as_bytes())
    }

    pub fn login(&self, username: &str, password: &str) -> HttpResponse {
        self.post_form(
            "/api/v1/fetch_api_key",
            &[("username", username), ("password", password)],
        )
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap()
    }

    /// The log once it contains `needle`: a request's log line is written after its response.
    #[track_caller]
    pub fn log_containing(&self, needle: &str) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let log = self.stderr();
            if log.contains(needle) {
                return log;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{needle:?} not in log:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends a signal (`TERM`, `INT`, …) to the server.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the server to exit, at most `limit`.
    pub fn wait(&mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(std::time::Instant::now() < deadline, "server still running");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the server (SIGKILL).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for TestServer {
    /// SIGTERM first, so that a `--demo` server removes its temporary database.
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.signal("TERM");
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while matches!(self.child.try_wait(), Ok(None)) && std::time::Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        self.kill();
    }
}

pub fn run_cli(db: &PathBuf, args: &[&str], stdin: &str) -> Output {
    let mut child = command(db)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A command that fails early may exit before reading its stdin.
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    child.wait_with_output().unwrap()
}

#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    fn parse(bytes: &[u8]) -> HttpResponse {
        let split = bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(bytes)));
        let head = std::str::from_utf8(&bytes[..split]).unwrap();
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        let headers = lines
            .map(|l| {
                let (n, v) = l.split_once(':').unwrap();
                (n.to_ascii_lowercase(), v.trim().to_owned())
            })
            .collect();
        HttpResponse {
            status,
            headers,
            body: bytes[split + 4..].to_vec(),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {:?}", self.text()))
    }

    /// Asserts status, `application/json` and the exact body (a newline is appended).
    #[track_caller]
    pub fn assert_json(&self, status: u16, body: &str) {
        assert_eq!(
            (self.status, self.text()),
            (status, format!("{body}\n").as_str())
        );
        assert_eq!(self.header("content-type"), Some("application/json"));
    }

    pub fn api_key(&self) -> String {
        self.json()["api_key"].as_str().unwrap().to_owned()
    }
}

// The exact error bodies of wire.md §5.3.
pub const E2: &str = r#"{"result":"error","msg":"Missing 'username' argument","var_name":"username","code":"REQUEST_VARIABLE_MISSING"}"#;
pub const E3: &str = r#"{"result":"error","msg":"Missing 'password' argument","var_name":"password","code":"REQUEST_VARIABLE_MISSING"}"#;
pub const E4: &str =
    r#"{"result":"error","msg":"Invalid subdomain","code":"NONEXISTENT_SUBDOMAIN"}"#;
pub const E5: &str =
    r#"{"result":"error","msg":"Enter a valid email address.","code":"BAD_REQUEST"}"#;
pub const E7: &str =
    r#"{"result":"error","msg":"Account is deactivated","code":"USER_DEACTIVATED"}"#;
pub const E8: &str = r#"{"result":"error","msg":"This organization has been deactivated","code":"REALM_DEACTIVATED"}"#;
pub const E9: &str = r#"{"result":"error","msg":"Password authentication is disabled in this organization","code":"PASSWORD_AUTH_DISABLED"}"#;
pub const E11: &str = r#"{"result":"error","msg":"Your username or password is incorrect","code":"AUTHENTICATION_FAILED"}"#;
pub const NOT_FOUND: &str = r#"{"result":"error","msg":"Not Found","code":"BAD_REQUEST"}"#;
pub const POST_ONLY_405: &str =
    r#"{"result":"error","msg":"Method Not Allowed","allowed_methods":["POST"]}"#;
