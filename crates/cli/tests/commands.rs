//! The `sluice` commands end to end, as a user runs them: a config in a temporary folder,
//! the binary as a process.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use base64::Engine;

struct Fixture {
    dir: tempfile::TempDir,
    admin_port: u16,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let admin_port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = format!(
            r#"
listen: {{ admin: "127.0.0.1:{admin_port}" }}
store: sqlite://./data/sluice.db
identity:
  providers:
    - {{ name: local, local: {{}} }}
connections:
  - {{ name: app, kind: postgres, upstream: "postgres://svc@127.0.0.1/app" }}
  - {{ name: billing, kind: http, upstream: "https://billing.internal" }}
  - {{ name: cluster, kind: kubernetes, upstream: "https://k8s.internal:6443" }}
policies:
  - name: readers
    match: {{ roles: [reader] }}
    connections: [app]
    allow:
      - {{ actions: [select], tables: ["public.*"] }}
    approve:
      - {{ actions: [delete], tables: ["public.orders"], approvers: {{ groups: [dba] }} }}
  - name: billing-readers
    match: {{ roles: [reader] }}
    connections: [billing]
    allow:
      - {{ methods: [GET], paths: ["/v1/invoices/*"] }}
    approve:
      - {{ methods: [DELETE], paths: ["/v1/invoices/*"], approvers: {{ groups: [finance] }}, mode: ticket }}
    mask:
      - {{ json: "$.items[*].email", with: email }}
  - name: operators
    match: {{ roles: [operator] }}
    connections: [cluster]
    allow:
      - {{ verbs: [get, list, watch], resources: [pods, secrets], namespaces: [staging] }}
    approve:
      - {{ verbs: [delete], resources: [pods], namespaces: [staging], approvers: {{ groups: [sre] }} }}
"#
        );
        std::fs::write(dir.path().join("sluice.yaml"), config).unwrap();
        Fixture { dir, admin_port }
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("sluice.yaml")
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_sluice"))
            .arg("-c")
            .arg(self.config())
            .args(args)
            .output()
            .unwrap()
    }
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn jwt_part(token: &str, index: usize) -> serde_json::Value {
    let part = token.split('.').nth(index).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .unwrap(),
    )
    .unwrap()
}

#[test]
fn token_issue_prints_the_token_alone_and_reuses_its_key() {
    let f = Fixture::new();
    let out = f.run(&[
        "token",
        "issue",
        "--subject",
        "agent-1",
        "--roles",
        "reader,writer",
        "--groups",
        "g1",
        "--ttl",
        "15m",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = stdout(&out);
    assert_eq!(token.lines().count(), 1);
    let header = jwt_part(&token, 0);
    let claims = jwt_part(&token, 1);
    assert_eq!(header["alg"], "ES256");
    assert_eq!(claims["sub"], "agent-1");
    assert_eq!(claims["roles"], serde_json::json!(["reader", "writer"]));
    assert_eq!(claims["groups"], serde_json::json!(["g1"]));
    let ttl = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
    assert_eq!(ttl, 15 * 60);
    // The key was created in the data dir and is reused.
    let second = stdout(&f.run(&["token", "issue", "--subject", "agent-2"]));
    assert_eq!(jwt_part(&second, 0)["kid"], header["kid"]);
    assert!(f.dir.path().join("data").read_dir().unwrap().count() > 0);
}

#[test]
fn keys_are_shown_once_listed_without_secrets_and_revoked() {
    let f = Fixture::new();
    let out = f.run(&[
        "keys",
        "create",
        "--name",
        "nightly",
        "--subject",
        "report-bot",
        "--roles",
        "reader",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let created: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let key = created["key"].as_str().unwrap().to_string();
    let id = created["id"].as_str().unwrap().to_string();
    assert!(key.starts_with("sk_sluice_"));

    let list = stdout(&f.run(&["keys", "list", "--json"]));
    assert!(
        !list.contains(&key) && !list.contains(key.rsplit('_').next().unwrap()),
        "secret listed: {list}"
    );
    let rows: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(rows[0]["id"], id.as_str());
    assert_eq!(rows[0]["status"], "active");
    let table = stdout(&f.run(&["keys", "list"]));
    assert!(
        table.starts_with("ID") && table.contains("nightly"),
        "{table}"
    );

    // A second key with the same name is refused with a clear error.
    let dup = f.run(&["keys", "create", "--name", "nightly", "--subject", "x"]);
    assert_eq!(dup.status.code(), Some(2));

    assert!(f.run(&["keys", "revoke", &id]).status.success());
    let rows: serde_json::Value =
        serde_json::from_str(&stdout(&f.run(&["keys", "list", "--json"]))).unwrap();
    assert_eq!(rows[0]["status"], "revoked");
    let missing = f.run(&["keys", "revoke", "nosuchkey"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no API key"));
}

#[test]
fn explain_exit_codes_follow_the_contract() {
    let f = Fixture::new();
    let explain = |sql: &str| {
        f.run(&[
            "policy",
            "explain",
            "--connection",
            "app",
            "--roles",
            "reader",
            &format!("--sql={sql}"),
        ])
        .status
        .code()
    };
    assert_eq!(explain("SELECT * FROM orders"), Some(0));
    assert_eq!(explain("UPDATE orders SET total = 0"), Some(1));
    assert_eq!(explain("DELETE FROM orders WHERE id = 1"), Some(3));
    // Approval and refusal in one string: the refusal decides.
    assert_eq!(explain("DELETE FROM orders; DROP TABLE orders"), Some(1));
    assert_eq!(
        f.run(&[
            "policy",
            "explain",
            "--connection",
            "nope",
            "--sql",
            "SELECT 1"
        ])
        .status
        .code(),
        Some(2),
        "unknown connection is a usage error"
    );
    assert_eq!(
        f.run(&["policy", "explain", "--connection", "app"])
            .status
            .code(),
        Some(2),
        "missing --sql"
    );
    let json = f.run(&[
        "policy",
        "explain",
        "--connection",
        "app",
        "--roles",
        "reader",
        "--json",
        "--sql",
        "DELETE FROM orders",
    ]);
    let doc: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(doc["decision"], "approve");
    assert_eq!(
        doc["statements"][0]["verdict"]["approval"]["approvers"]["groups"],
        serde_json::json!(["dba"])
    );
    assert_eq!(doc["statements"][0]["verdict"]["approval"]["mode"], "hold");
}

#[test]
fn policy_check_reports_every_problem_with_its_place() {
    let f = Fixture::new();
    assert!(f.run(&["policy", "check"]).status.success());
    let broken = std::fs::read_to_string(f.config())
        .unwrap()
        .replace("connections: [app]", "connections: [ap]");
    std::fs::write(f.config(), broken).unwrap();
    let out = f.run(&["policy", "check"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let expected = format!(
        "{}:14:19: policy `readers`: unknown connection `ap`",
        f.config().display()
    );
    assert!(err.contains(&expected), "{err}");
}

fn http_get(port: u16, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(response)
}

#[test]
fn serve_publishes_the_local_issuer_keys_and_stops_on_sigterm() {
    let f = Fixture::new();
    let token = stdout(&f.run(&["token", "issue", "--subject", "agent-1"]));
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("-c")
        .arg(f.config())
        .arg("serve")
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let health = loop {
        if let Some(r) = http_get(f.admin_port, "/healthz") {
            break r;
        }
        assert!(Instant::now() < deadline, "gateway did not come up");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let jwks = http_get(f.admin_port, "/.well-known/jwks.json").unwrap();
    let body = jwks.split("\r\n\r\n").nth(1).unwrap();
    let doc: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(doc["keys"][0]["kid"], jwt_part(&token, 0)["kid"]);
    assert!(
        doc["keys"][0].get("d").is_none(),
        "private key material published"
    );
    terminate(child.id());
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
}

fn terminate(pid: u32) {
    Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()
        .unwrap();
}

#[test]
fn policy_explain_judges_http_requests_as_the_gateway_reads_them() {
    let f = Fixture::new();
    let explain = |request: &str| {
        f.run(&[
            "policy",
            "explain",
            "--connection",
            "billing",
            "--roles",
            "reader",
            "--http",
            request,
        ])
    };
    let out = explain("GET /v1/invoices/7?expand=lines");
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(text.contains("request: GET /v1/invoices/7"), "{text}");
    assert!(
        text.contains("allow by policy billing-readers, allow rule 1"),
        "{text}"
    );
    assert!(
        text.contains("mask:     json $.items[*].email with email"),
        "{text}"
    );

    let out = explain("DELETE /v1/invoices/7");
    assert_eq!(out.status.code(), Some(3), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("groups [finance]; mode ticket"),
        "{}",
        stdout(&out)
    );

    assert_eq!(explain("POST /v1/invoices/7").status.code(), Some(1));
    assert_eq!(explain("GET /v1/invoices/7/lines").status.code(), Some(1));
    // What the gateway would refuse as ambiguous is a deny, with the reason.
    let out = explain("GET /v1/invoices/%2E%2E/admin");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("`.` or `..` segment"),
        "{}",
        stdout(&out)
    );

    let json = f.run(&[
        "policy",
        "explain",
        "--connection",
        "billing",
        "--roles",
        "reader",
        "--json",
        "--http",
        "delete /v1/invoices/9",
    ]);
    let doc: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(doc["decision"], "approve");
    assert_eq!(doc["request"]["method"], "DELETE");
    assert_eq!(doc["verdict"]["approval"]["mode"], "ticket");

    // The wrong flag for the connection's kind is a usage error.
    let out = f.run(&[
        "policy",
        "explain",
        "--connection",
        "billing",
        "--sql",
        "SELECT 1",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let out = f.run(&[
        "policy",
        "explain",
        "--connection",
        "app",
        "--http",
        "GET /",
    ]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn policy_explain_reads_kubernetes_requests_as_the_api_server_does() {
    let f = Fixture::new();
    let explain = |request: &str| {
        f.run(&[
            "policy",
            "explain",
            "--connection",
            "cluster",
            "--roles",
            "operator",
            "--http",
            request,
        ])
    };
    let out = explain("GET /api/v1/namespaces/staging/pods?watch=1");
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("kubernetes: watch pods in namespace staging"),
        "{}",
        stdout(&out)
    );
    let out = explain("GET /api/v1/namespaces/staging/secrets/db");
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stdout(&out).contains("secret data: masked"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        explain("DELETE /api/v1/namespaces/staging/pods/web")
            .status
            .code(),
        Some(3)
    );
    assert_eq!(
        explain("POST /api/v1/namespaces/staging/pods/web/exec?command=sh")
            .status
            .code(),
        Some(1)
    );
    assert_eq!(
        explain("GET /api/v1/pods").status.code(),
        Some(1),
        "cluster-wide"
    );
    assert_eq!(
        explain("GET /apis/apps/v1").status.code(),
        Some(0),
        "discovery"
    );
    let out = explain("GET /api/v1/pods?watch=true&watch=false");
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("more than once"), "{}", stdout(&out));
    // Without a request it is a usage error.
    let out = f.run(&[
        "policy",
        "explain",
        "--connection",
        "cluster",
        "--sql",
        "SELECT 1",
    ]);
    assert_eq!(out.status.code(), Some(2));
}
