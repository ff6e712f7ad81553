//! Ephemeral PostgreSQL clusters for tests: [`PgCluster`] runs `initdb` into a temporary
//! directory, starts the server on a free 127.0.0.1 port, and stops it and deletes the
//! directory when dropped.
//!
//! Typical use is one cluster per test binary and one database per test:
//!
//! ```no_run
//! use sluice_pgcluster::pg::PgCluster;
//!
//! let cluster = PgCluster::shared();
//! let db = cluster.fresh_database("store");
//! cluster.execute(&db, "CREATE TABLE t (x int); INSERT INTO t VALUES (42);").unwrap();
//! assert_eq!(cluster.query_scalar(&db, "SELECT x FROM t").unwrap(), "42");
//! let url = cluster.url(&db); // postgres://postgres:<password>@127.0.0.1:<port>/<db>
//! # let _ = url;
//! ```
//!
//! How it works:
//! - Binaries: `$SLUICE_TEST_PG_BINDIR` if set, else `pg_config --bindir`, else the newest
//!   `/usr/lib/postgresql/*/bin`; it must hold `initdb`, `pg_ctl`, `postgres` and `psql`.
//! - `initdb --auth=scram-sha-256` with a random superuser password (user `postgres`), so
//!   `pg_hba.conf` requires SCRAM for every connection; `-N`, `fsync=off`,
//!   `synchronous_commit=off` and `full_page_writes=off` trade durability for speed.
//! - `initdb` and `postgres` refuse to run as root. When the effective uid is 0, `initdb`
//!   and `pg_ctl` run through `runuser -u <user> --`, with `<user>` the `postgres` OS user
//!   (present wherever the PostgreSQL packages are installed), else a system user
//!   `sluicetest` created on first use; the temporary directory is chowned to that user.
//! - The port comes from binding `127.0.0.1:0`; if the server then loses the race for it,
//!   the start is retried on another port. The Unix socket goes to a private directory.
//! - SQL runs through the `psql` of the same installation, as the superuser, over TCP, so
//!   this crate needs no Rust PostgreSQL client.
//!
//! Cleanup: [`Drop`] stops the server (`pg_ctl stop -m immediate`) and removes the
//! directory. [`PgCluster::shared`] lives in a `static`, which is never dropped, and a test
//! process can also die without unwinding (a signal, `process::exit`, a SIGKILL from a
//! timeout). So every cluster also gets a watchdog: a small `sh` child, in its own process
//! group (a Ctrl-C to the test does not reach it), whose stdin is a pipe the test process
//! holds the only write end of. It blocks reading that pipe; the kernel closes the write end
//! when the test process exits, however it exits, and the watchdog then runs
//! `pg_ctl stop -m immediate` and `rm -rf` on the directory. No polling, no pid reuse, no
//! `atexit` (which would not run on a signal). Dropping a cluster kills its watchdog first.

use std::ffi::OsString;
use std::fs;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use anyhow::{anyhow, bail, Context, Result};
use tempfile::TempDir;

/// The address the server listens on, and the only one it accepts TCP connections on.
const HOST: &str = "127.0.0.1";
/// The database superuser `initdb` creates.
const SUPERUSER: &str = "postgres";
/// The OS user to run the server as when running as root and `postgres` does not exist.
const FALLBACK_OS_USER: &str = "sluicetest";
/// How many ports to try when another process grabs the chosen one first.
const START_ATTEMPTS: u32 = 5;
/// Environment variable naming the directory holding the PostgreSQL server binaries.
pub const BINDIR_ENV: &str = "SLUICE_TEST_PG_BINDIR";

/// Waits for EOF on stdin (the test process is gone), then runs the stop command given as
/// the remaining arguments and removes the cluster directory. `$1` is the directory.
const WATCHDOG_SCRIPT: &str = r#"trap '' HUP INT
dir=$1
shift
cat >/dev/null
"$@" >/dev/null 2>&1
rm -rf "$dir""#;

/// Options passed to `postgres` besides the port and socket directory.
const SERVER_OPTIONS: &str = "-c listen_addresses=127.0.0.1 -c fsync=off \
                              -c synchronous_commit=off -c full_page_writes=off";

/// A running, throwaway PostgreSQL server. See the [module docs](self).
///
/// `Drop` stops the server and deletes its files; it never panics.
#[derive(Debug)]
pub struct PgCluster {
    bindir: PathBuf,
    data_dir: PathBuf,
    log_path: PathBuf,
    socket_dir: PathBuf,
    port: u16,
    password: String,
    /// The OS user `initdb` and `pg_ctl` run as (through `runuser`); `None` when not root.
    run_as: Option<OsUser>,
    watchdog: Option<Child>,
    /// Held while `pg_hba.conf` is rewritten: tests sharing the cluster add lines to it
    /// at the same time, and each must keep the others' lines.
    hba_lock: Mutex<()>,
    /// Declared last: removed after `drop` has stopped the server.
    dir: TempDir,
}

/// An OS account to run the server under.
#[derive(Debug, Clone)]
struct OsUser {
    name: String,
    uid: u32,
    gid: u32,
}

impl PgCluster {
    /// Creates a new cluster in a temporary directory and starts it on a free port.
    ///
    /// Takes a second or two (mostly `initdb`). Fails with the tool's output (and the
    /// server log, if the server did not come up) in the error.
    pub fn start() -> Result<PgCluster> {
        let bindir = bindir()?.to_path_buf();
        let run_as = if is_root() { Some(os_user()?) } else { None };

        let dir = tempfile::Builder::new()
            .prefix("sluice-pg-")
            .tempdir()
            .context("creating the cluster's temporary directory")?;
        let root = dir.path().to_path_buf();
        let socket_dir = root.join("sock");
        fs::create_dir(&socket_dir).context("creating the socket directory")?;
        let password = random_password()?;
        let pwfile = root.join("pwfile");
        fs::write(&pwfile, format!("{password}\n")).context("writing the password file")?;
        fs::set_permissions(&pwfile, fs::Permissions::from_mode(0o600))?;
        if let Some(user) = &run_as {
            for path in [&root, &socket_dir, &pwfile] {
                std::os::unix::fs::chown(path, Some(user.uid), Some(user.gid))
                    .with_context(|| format!("chown {} to {}", path.display(), user.name))?;
            }
        }

        let mut cluster = PgCluster {
            data_dir: root.join("data"),
            log_path: root.join("log"),
            socket_dir,
            bindir,
            port: 0,
            password,
            run_as,
            watchdog: None,
            hba_lock: Mutex::new(()),
            dir,
        };

        let mut initdb = cluster.server_command("initdb");
        initdb
            .arg("-D")
            .arg(&cluster.data_dir)
            .args(["--auth=scram-sha-256", "-N", "-U", SUPERUSER])
            .args(["-E", "UTF8", "--locale=C"])
            .arg(format!("--pwfile={}", pwfile.display()));
        run(&mut initdb, "initdb")?;
        let _ = fs::remove_file(&pwfile);

        // From here on, an error drops `cluster`, which stops whatever did start.
        cluster.watchdog = Some(cluster.spawn_watchdog()?);
        cluster.start_server()?;
        Ok(cluster)
    }

    /// The process-wide cluster, started on first use, for test binaries that want one
    /// cluster shared by all their tests (give each test its own database with
    /// [`fresh_database`](Self::fresh_database)).
    ///
    /// It is never dropped; the watchdog (see the [module docs](self)) stops it and
    /// removes its files when the process exits.
    ///
    /// # Panics
    ///
    /// If the cluster cannot be started; a later call tries again.
    pub fn shared() -> &'static PgCluster {
        static SHARED: OnceLock<PgCluster> = OnceLock::new();
        SHARED.get_or_init(|| match PgCluster::start() {
            Ok(cluster) => cluster,
            Err(e) => panic!("starting the shared PostgreSQL test cluster: {e:#}"),
        })
    }

    /// The TCP port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The address the server listens on: `127.0.0.1`.
    pub fn host(&self) -> &'static str {
        HOST
    }

    /// The superuser's name: `postgres`.
    pub fn superuser(&self) -> &'static str {
        SUPERUSER
    }

    /// The superuser's password, random per cluster (hex, so safe in URLs and conninfo).
    pub fn superuser_password(&self) -> &str {
        &self.password
    }

    /// `postgres://postgres:<password>@127.0.0.1:<port>/<db>`, the database name
    /// percent-encoded.
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgres://{SUPERUSER}:{}@{HOST}:{}/{}",
            self.password,
            self.port,
            percent_encode(db)
        )
    }

    /// The directory holding `initdb`, `pg_ctl`, `psql`, ...
    pub fn bindir(&self) -> &Path {
        &self.bindir
    }

    /// The cluster's data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The server log, worth printing when a test fails oddly.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Creates database `name` (from `template0`), owned by the superuser.
    pub fn create_database(&self, name: &str) -> Result<()> {
        self.execute(
            "postgres",
            &format!("CREATE DATABASE {} TEMPLATE template0", quote_ident(name)),
        )
        .with_context(|| format!("creating database {name:?}"))
    }

    /// Creates a role that can log in with `password` (over TCP, SCRAM), a superuser or not.
    pub fn create_role(&self, name: &str, password: &str, superuser: bool) -> Result<()> {
        let sql = format!(
            "CREATE ROLE {} LOGIN PASSWORD {} {}",
            quote_ident(name),
            quote_literal(password),
            if superuser {
                "SUPERUSER"
            } else {
                "NOSUPERUSER"
            }
        );
        self.execute("postgres", &sql)
            .with_context(|| format!("creating role {name:?}"))
    }

    /// Creates a database with a name unique in this process (`<prefix>_<pid>_<n>`, the
    /// prefix reduced to lowercase ASCII letters, digits and `_`) and returns the name.
    ///
    /// # Panics
    ///
    /// If the database cannot be created: this is test setup, and the error says why.
    pub fn fresh_database(&self, prefix: &str) -> String {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let mut clean: String = prefix
            .chars()
            .map(|c| c.to_ascii_lowercase())
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(40)
            .collect();
        if clean.is_empty() {
            clean.push_str("test");
        }
        let name = format!("{clean}_{}_{n}", std::process::id());
        if let Err(e) = self.create_database(&name) {
            panic!("{e:#}");
        }
        name
    }

    /// Puts `line` at the top of `pg_hba.conf` (so it wins over the SCRAM default) and
    /// reloads the configuration. For tests of other authentication methods: name a
    /// specific user in the line, so other tests sharing the cluster are not affected.
    ///
    /// The file is replaced whole (written beside it, then renamed over it): a reload that
    /// another test asks for meanwhile reads the old file or the new one, never a
    /// truncated one that would refuse every login.
    pub fn prepend_hba(&self, line: &str) -> Result<()> {
        let _rewriting = self.hba_lock.lock().unwrap_or_else(|e| e.into_inner());
        let path = self.data_dir.join("pg_hba.conf");
        let current = fs::read_to_string(&path).context("reading pg_hba.conf")?;
        if !current.lines().any(|l| l == line) {
            let next = self.data_dir.join("pg_hba.conf.next");
            fs::write(&next, format!("{line}\n{current}")).context("writing pg_hba.conf")?;
            if let Some(user) = &self.run_as {
                std::os::unix::fs::chown(&next, Some(user.uid), Some(user.gid))
                    .with_context(|| format!("chown {} to {}", next.display(), user.name))?;
            }
            fs::rename(&next, &path).context("replacing pg_hba.conf")?;
        }
        self.execute("postgres", "SELECT pg_reload_conf()")
    }

    /// Turns on TLS with the given PEM certificate and key, and reloads. Clients that do
    /// not ask for TLS are still served (pg_hba's `host` lines match both).
    pub fn enable_tls(&self, cert_pem: &str, key_pem: &str) -> Result<()> {
        let (cert, key) = (
            self.data_dir.join("server.crt"),
            self.data_dir.join("server.key"),
        );
        fs::write(&cert, cert_pem).context("writing the server certificate")?;
        fs::write(&key, key_pem).context("writing the server key")?;
        fs::set_permissions(&key, fs::Permissions::from_mode(0o600))?;
        if let Some(user) = &self.run_as {
            for path in [&cert, &key] {
                std::os::unix::fs::chown(path, Some(user.uid), Some(user.gid))
                    .with_context(|| format!("chown {} to {}", path.display(), user.name))?;
            }
        }
        self.execute(
            "postgres",
            &format!(
                "ALTER SYSTEM SET ssl_cert_file = {}; ALTER SYSTEM SET ssl_key_file = {}; ALTER SYSTEM SET ssl = on; SELECT pg_reload_conf();",
                quote_literal(&cert.display().to_string()),
                quote_literal(&key.display().to_string())
            ),
        )
    }

    /// Runs `sql` (any number of statements, each in its own transaction unless the script
    /// says otherwise) in database `db` as the superuser. Fails on the first error.
    pub fn execute(&self, db: &str, sql: &str) -> Result<()> {
        self.run_psql(db, sql, &[]).map(|_| ())
    }

    /// Runs `sql` in `db` as the superuser and returns its output unaligned and without
    /// headers (`psql -At`), trailing newline removed: the value of a one-row, one-column
    /// query; rows joined by newlines and columns by `|` otherwise; `""` for SQL NULL.
    pub fn query_scalar(&self, db: &str, sql: &str) -> Result<String> {
        let out = self.run_psql(db, sql, &["-A", "-t"])?;
        let mut text = String::from_utf8(out).context("psql output is not UTF-8")?;
        while text.ends_with('\n') {
            text.pop();
        }
        Ok(text)
    }

    /// A `psql` command connecting to `db` as `user` with `password` over TCP, with
    /// `-X -q -w -v ON_ERROR_STOP=1` and the `PG*` environment cleared; add `-c SQL` or
    /// feed a script on stdin. For tests that need another role than the superuser, or
    /// a wrong password.
    pub fn psql_command(&self, user: &str, password: &str, db: &str) -> Command {
        let conninfo = format!(
            "host={HOST} port={} user={} dbname={} connect_timeout=10 sslmode=disable",
            self.port,
            quote_conninfo(user),
            quote_conninfo(db)
        );
        let mut cmd = Command::new(self.bindir.join("psql"));
        clear_pg_env(&mut cmd);
        cmd.env("PGPASSWORD", password)
            .args(["-X", "-q", "-w", "-v", "ON_ERROR_STOP=1", "-d"])
            .arg(conninfo)
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `sql` through `psql` on stdin as the superuser and returns its stdout.
    fn run_psql(&self, db: &str, sql: &str, extra: &[&str]) -> Result<Vec<u8>> {
        let mut cmd = self.psql_command(SUPERUSER, &self.password, db);
        cmd.args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().context("running psql")?;
        let mut stdin = child.stdin.take().expect("stdin is piped");
        let script = sql.to_owned();
        // A separate writer, so a large script cannot deadlock against a full stdout pipe.
        let writer = std::thread::spawn(move || stdin.write_all(script.as_bytes()));
        let output = child.wait_with_output().context("waiting for psql")?;
        let written = writer.join();
        if !output.status.success() {
            bail!(
                "psql in database {db:?} failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        match written {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e).context("writing SQL to psql"),
            Err(_) => bail!("the thread writing SQL to psql panicked"),
        }
        Ok(output.stdout)
    }

    /// A command running server binary `name`, through `runuser` when root, with the
    /// `PG*` environment cleared and the cluster directory as working directory.
    fn server_command(&self, name: &str) -> Command {
        let program = self.bindir.join(name);
        let mut cmd = match &self.run_as {
            Some(user) => {
                let mut cmd = Command::new("runuser");
                cmd.args(["-u", &user.name, "--"]).arg(program);
                cmd
            }
            None => Command::new(program),
        };
        clear_pg_env(&mut cmd);
        cmd.current_dir(self.dir.path()).stdin(Stdio::null());
        cmd
    }

    /// `pg_ctl ... stop -m immediate`, waiting until the server is gone.
    fn stop_command(&self) -> Command {
        let mut cmd = self.server_command("pg_ctl");
        cmd.arg("-D")
            .arg(&self.data_dir)
            .args(["-m", "immediate", "-w", "stop"]);
        cmd
    }

    /// Starts the server, on a fresh free port for each attempt lost to a port race.
    fn start_server(&mut self) -> Result<()> {
        for attempt in 1..=START_ATTEMPTS {
            self.port = free_port()?;
            let log_before = fs::metadata(&self.log_path).map_or(0, |m| m.len());
            let options = format!(
                "-p {} -k {} {SERVER_OPTIONS}",
                self.port,
                shell_quote(&self.socket_dir.to_string_lossy())
            );
            let mut pg_ctl = self.server_command("pg_ctl");
            pg_ctl
                .arg("-D")
                .arg(&self.data_dir)
                .arg("-l")
                .arg(&self.log_path)
                .args(["-w", "-t", "60", "-o", &options, "start"]);
            let output = pg_ctl.output().context("running pg_ctl start")?;
            if output.status.success() {
                return Ok(());
            }
            let log = read_from(&self.log_path, log_before);
            let port_taken = log.contains("could not bind")
                || log.contains("already in use")
                || log.contains("could not create any TCP/IP sockets");
            if port_taken && attempt < START_ATTEMPTS {
                continue;
            }
            bail!(
                "pg_ctl start failed ({}): {}\n--- server log ---\n{}",
                output.status,
                describe(&output),
                log.trim()
            );
        }
        unreachable!("the last attempt returns")
    }

    /// Spawns the watchdog described in the module docs.
    fn spawn_watchdog(&self) -> Result<Child> {
        let stop = self.stop_command();
        let mut cmd = Command::new("sh");
        clear_pg_env(&mut cmd);
        cmd.arg("-c")
            .arg(WATCHDOG_SCRIPT)
            .arg("sluice-pg-watchdog")
            .arg(self.dir.path())
            .arg(stop.get_program())
            .args(stop.get_args())
            .current_dir("/")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0);
        cmd.spawn().context("spawning the cluster watchdog")
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
        if self.data_dir.join("postmaster.pid").exists() {
            let _ = self
                .stop_command()
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        // `self.dir` (a TempDir) is dropped next and removes the directory, ignoring errors.
    }
}

/// Whether the effective uid is 0.
fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The directory with the PostgreSQL server binaries, found once per process.
fn bindir() -> Result<&'static Path> {
    static BINDIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BINDIR
        .get_or_init(|| find_bindir().map_err(|e| format!("{e:#}")))
        .as_deref()
        .map_err(|e| anyhow!("{e}"))
}

fn find_bindir() -> Result<PathBuf> {
    let usable = |dir: &Path| {
        ["initdb", "pg_ctl", "postgres", "psql"]
            .iter()
            .all(|b| dir.join(b).is_file())
    };
    if let Some(dir) = std::env::var_os(BINDIR_ENV) {
        let dir = PathBuf::from(dir);
        if usable(&dir) {
            return Ok(dir);
        }
        bail!(
            "{BINDIR_ENV}={} lacks initdb, pg_ctl, postgres or psql",
            dir.display()
        );
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if out.status.success() && usable(&dir) {
            return Ok(dir);
        }
    }
    let mut best: Option<(Vec<u32>, PathBuf)> = None;
    for entry in fs::read_dir("/usr/lib/postgresql").into_iter().flatten() {
        let Ok(entry) = entry else { continue };
        let version: Option<Vec<u32>> = entry
            .file_name()
            .to_string_lossy()
            .split('.')
            .map(|part| part.parse().ok())
            .collect();
        let dir = entry.path().join("bin");
        if let Some(version) = version {
            if usable(&dir) && best.as_ref().is_none_or(|(v, _)| version > *v) {
                best = Some((version, dir));
            }
        }
    }
    best.map(|(_, dir)| dir).ok_or_else(|| {
        anyhow!(
            "no PostgreSQL server binaries: `pg_config --bindir` and /usr/lib/postgresql/*/bin \
             have no initdb/pg_ctl/postgres/psql (install the postgresql package, or set \
             {BINDIR_ENV})"
        )
    })
}

/// The OS user to run the server as when root: `postgres`, else `sluicetest` (created
/// with `useradd --system --no-create-home` if missing). Resolved once per process.
fn os_user() -> Result<OsUser> {
    static USER: Mutex<Option<OsUser>> = Mutex::new(None);
    let mut cached = USER.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(user) = cached.as_ref() {
        return Ok(user.clone());
    }
    let user = match lookup_user(SUPERUSER).or_else(|| lookup_user(FALLBACK_OS_USER)) {
        Some(user) => user,
        None => {
            let out = Command::new("useradd")
                .args(["--system", "--no-create-home", FALLBACK_OS_USER])
                .output();
            lookup_user(FALLBACK_OS_USER).ok_or_else(|| {
                let why = match &out {
                    Ok(out) => describe(out),
                    Err(e) => e.to_string(),
                };
                anyhow!(
                    "running as root, and initdb/postgres refuse root: there is no `postgres` \
                     OS user and creating `{FALLBACK_OS_USER}` with useradd failed: {why}"
                )
            })?
        }
    };
    *cached = Some(user.clone());
    Ok(user)
}

fn lookup_user(name: &str) -> Option<OsUser> {
    let id = |flag: &str| -> Option<u32> {
        let out = Command::new("id").args([flag, name]).output().ok()?;
        if !out.status.success() {
            return None;
        }
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    };
    Some(OsUser {
        name: name.to_owned(),
        uid: id("-u")?,
        gid: id("-g")?,
    })
}

/// 32 hex characters from the kernel's random source.
fn random_password() -> Result<String> {
    let mut bytes = [0u8; 16];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("reading /dev/urandom")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// A port that was free on 127.0.0.1 a moment ago.
fn free_port() -> Result<u16> {
    let listener = TcpListener::bind((HOST, 0)).context("binding 127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// Runs `cmd`, failing with its output if it exits unsuccessfully.
fn run(cmd: &mut Command, what: &str) -> Result<Output> {
    let output = cmd.output().with_context(|| format!("running {what}"))?;
    if !output.status.success() {
        bail!("{what} failed ({}): {}", output.status, describe(&output));
    }
    Ok(output)
}

/// A command's stderr and stdout, trimmed, for error messages.
fn describe(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    format!("{} {}", stderr.trim(), stdout.trim())
        .trim()
        .to_owned()
}

/// The contents of `path` from byte `offset` on, or `""`.
fn read_from(path: &Path, offset: u64) -> String {
    let bytes = fs::read(path).unwrap_or_default();
    let start = usize::try_from(offset).unwrap_or(0).min(bytes.len());
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}

/// Removes every `PG*` variable (PGHOST, PGPORT, PGPASSFILE, PGSERVICE, ...) that could
/// point a tool at another server or change its behaviour.
fn clear_pg_env(cmd: &mut Command) {
    let names: Vec<OsString> = std::env::vars_os()
        .map(|(name, _)| name)
        .filter(|name| name.to_string_lossy().starts_with("PG"))
        .collect();
    for name in names {
        cmd.env_remove(name);
    }
}

/// `name` as a double-quoted SQL identifier.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `value` as a single-quoted SQL string literal (standard_conforming_strings is on).
fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// `value` as a single-quoted libpq conninfo value.
fn quote_conninfo(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// `value` single-quoted for `sh` (pg_ctl hands `-o` to a shell).
fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn percent_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote_ident(r#"a"b"#), r#""a""b""#);
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(quote_conninfo(r"a'b\c"), r"'a\'b\\c'");
        assert_eq!(shell_quote("a'b"), r"'a'\''b'");
        assert_eq!(percent_encode("db_1-x.y~z"), "db_1-x.y~z");
        assert_eq!(percent_encode("a b/é"), "a%20b%2F%C3%A9");
    }

    #[test]
    fn passwords_are_hex_and_distinct() {
        let a = random_password().unwrap();
        let b = random_password().unwrap();
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
