//! `sluice serve` as a child process, and the clients the gateway tests drive it with.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// What a gateway under test fronts: a fresh database of the shared cluster, which `role`
/// logs in to, and the gateway's directory with that role's password in `pw` (a
/// connection's `password: { file: pw }`). The role is created once per test process.
pub fn upstream_database(
    cluster: &sluice_pgcluster::pg::PgCluster,
    role: &str,
    db_prefix: &str,
) -> (String, tempfile::TempDir) {
    static CREATED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let password = format!("{role}-password");
    {
        let mut created = CREATED.lock().unwrap_or_else(|e| e.into_inner());
        if !created.iter().any(|r| r == role) {
            cluster.create_role(role, &password, true).unwrap();
            created.push(role.to_string());
        }
    }
    let db = cluster.fresh_database(db_prefix);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pw"), password).unwrap();
    (db, dir)
}

/// A running gateway, killed when dropped.
pub struct Gateway {
    pub child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Where a gateway's admin API is, for `sluice approvals`.
pub struct Admin {
    pub url: String,
    /// The CA to trust when the admin listener speaks TLS.
    pub ca: Option<PathBuf>,
}

impl Admin {
    pub fn plain(port: u16) -> Admin {
        Admin {
            url: format!("http://127.0.0.1:{port}"),
            ca: None,
        }
    }

    fn args(&self) -> Vec<String> {
        let mut args = vec!["--gateway".to_string(), self.url.clone()];
        if let Some(ca) = &self.ca {
            args.push("--ca".into());
            args.push(ca.display().to_string());
        }
        args
    }
}

/// Waits until something accepts connections on `port` (20 s at most).
pub fn wait_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

impl Gateway {
    /// Runs `sluice serve` on `dir/sluice.yaml`, listening for PostgreSQL on `port`, and
    /// waits until it accepts connections.
    pub fn spawn(dir: tempfile::TempDir, port: u16) -> Gateway {
        let child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .arg("-c")
            .arg(dir.path().join("sluice.yaml"))
            .arg("serve")
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let gateway = Gateway { child, port, dir };
        gateway.wait_listening();
        gateway
    }

    pub fn wait_listening(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "gateway did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn config(&self) -> PathBuf {
        self.dir.path().join("sluice.yaml")
    }

    /// Runs another `sluice` command against this gateway's config.
    pub fn sluice(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_sluice"))
            .arg("-c")
            .arg(self.config())
            .args(args)
            .output()
            .unwrap()
    }

    /// A token from the local issuer.
    pub fn token(&self, subject: &str, roles: &str) -> String {
        let out = self.sluice(&["token", "issue", "--subject", subject, "--roles", roles]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    /// A token from the local issuer, with `sluice token issue` arguments.
    pub fn issue(&self, args: &[&str]) -> String {
        let mut all = vec!["token", "issue"];
        all.extend_from_slice(args);
        let out = self.sluice(&all);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    /// `sluice approvals approve|deny ID` through the admin API, as `token`.
    pub fn decide(&self, admin: &Admin, token: &str, verdict: &str, id: &str) -> bool {
        let mut args = vec![
            "approvals",
            verdict,
            id,
            "--reason",
            "checked",
            "--token",
            token,
        ];
        let target = admin.args();
        args.extend(target.iter().map(String::as_str));
        self.sluice(&args).status.success()
    }

    /// The approval requests `token` sees through the admin API, waiting up to 20 s for
    /// the first.
    pub fn wait_pending(&self, admin: &Admin, token: &str) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(20);
        let target = admin.args();
        loop {
            let mut args = vec!["approvals", "list", "--json", "--token", token];
            args.extend(target.iter().map(String::as_str));
            let out = self.sluice(&args);
            let pending: Vec<serde_json::Value> =
                serde_json::from_slice(&out.stdout).unwrap_or_default();
            if !pending.is_empty() {
                return pending;
            }
            assert!(Instant::now() < deadline, "nothing held");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The pending request for `statement` that `token` sees, waiting up to 20 s for it
    /// (other requests may be pending beside it).
    pub fn wait_pending_for(
        &self,
        admin: &Admin,
        token: &str,
        statement: &str,
    ) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let pending = self.wait_pending(admin, token);
            if let Some(found) = pending.into_iter().find(|p| {
                p["statement"]
                    .as_str()
                    .is_some_and(|s| s.starts_with(statement))
            }) {
                return found;
            }
            assert!(Instant::now() < deadline, "{statement} is not held");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Every recorded event, as `sluice sessions export` prints them.
    pub fn exported(&self) -> Vec<serde_json::Value> {
        let out = self.sluice(&["sessions", "export", "--format", "jsonl"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    /// Sends SIGTERM and waits for the process to end.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        self.child.wait().unwrap()
    }
}

pub fn psql(bindir: &Path, conninfo: &str, token: &str, sql: &str) -> Output {
    Command::new(bindir.join("psql"))
        .env_clear()
        .env("PGPASSWORD", token)
        .args(["-X", "-A", "-t", "-w", "-d", conninfo, "-c", sql])
        .output()
        .unwrap()
}

/// Logs in to database `app` with the raw protocol and returns the stream after the
/// first ReadyForQuery.
pub fn raw_login(port: u16, token: &str) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut body = 196608i32.to_be_bytes().to_vec();
    for kv in ["user", "agent", "database", "app", ""] {
        body.extend_from_slice(kv.as_bytes());
        body.push(0);
    }
    let mut packet = (body.len() as i32 + 4).to_be_bytes().to_vec();
    packet.extend(body);
    s.write_all(&packet).unwrap();
    let mut password = token.as_bytes().to_vec();
    password.push(0);
    let mut msg = vec![b'p'];
    msg.extend((password.len() as i32 + 4).to_be_bytes());
    msg.extend(password);
    let _ = read_message(&mut s); // AuthenticationCleartextPassword
    s.write_all(&msg).unwrap();
    while read_message(&mut s).0 != b'Z' {}
    s
}

pub fn read_message(s: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut header = [0u8; 5];
    s.read_exact(&mut header).unwrap();
    let len = i32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
    let mut body = vec![0u8; len - 4];
    s.read_exact(&mut body).unwrap();
    (header[0], body)
}

/// Sends a simple Query and reads up to its ReadyForQuery; returns every message.
pub fn simple_query(s: &mut TcpStream, sql: &str) -> Vec<(u8, Vec<u8>)> {
    let mut body = sql.as_bytes().to_vec();
    body.push(0);
    let mut msg = vec![b'Q'];
    msg.extend((body.len() as i32 + 4).to_be_bytes());
    msg.extend(body);
    s.write_all(&msg).unwrap();
    let mut messages = Vec::new();
    loop {
        let message = read_message(s);
        let done = message.0 == b'Z';
        messages.push(message);
        if done {
            return messages;
        }
    }
}
