//! The identity provider goes down while the gateway runs: tokens signed with keys the
//! gateway already fetched keep working (until the keys are due for a refresh, which the
//! identity crate's tests cover with the provider down), and a token naming a key the
//! gateway has not seen is refused, nothing let in on trust. Both are in a trail that
//! verifies. The provider is a real OpenID Connect server (tests-support/oidc-provider)
//! issuing Entra-shaped tokens.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::Value;
use sluice_pgcluster::pg::PgCluster;
use support::{free_port, psql, upstream_database, Gateway};

/// `node server.js` of tests-support/oidc-provider, killed when dropped.
struct Provider {
    child: Child,
    /// Kept open: the server exits when it closes (`--exit-with-parent`), so it cannot
    /// outlive a test process that dies without dropping it.
    _stdin: std::process::ChildStdin,
    issuer: String,
}

impl Provider {
    fn start() -> Provider {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests-support/oidc-provider");
        assert!(
            dir.join("node_modules/oidc-provider").exists(),
            "the test OIDC provider's packages are missing: run scripts/ensure-deps.sh"
        );
        let mut child = Command::new("node")
            .args(["server.js", "--port", "0", "--exit-with-parent"])
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("node runs the test OIDC provider");
        // It prints one JSON line once it listens; whatever follows is drained, so it
        // never blocks on (or dies of) a closed pipe.
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        let ready: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("the provider did not start ({e}): {line:?}"));
        Provider {
            _stdin: child.stdin.take().unwrap(),
            child,
            issuer: ready["issuer"].as_str().unwrap().to_string(),
        }
    }

    /// An access token for the app `client_id`, by the client-credentials grant.
    fn token(&self, client_id: &str) -> String {
        let out = Command::new("curl")
            .args(["-sS", "--fail-with-body", "--max-time", "20"])
            .args(["-d", "grant_type=client_credentials"])
            .args(["-d", &format!("client_id={client_id}")])
            .args(["-d", &format!("client_secret={client_id}-secret")])
            .args(["-d", "resource=api://sluice"])
            .arg(format!("{}/token", self.issuer))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        let body: Value = serde_json::from_slice(&out.stdout).unwrap();
        body["access_token"].as_str().unwrap().to_string()
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `token` with its header's `kid` changed (its signature no longer matters: the key
/// is looked up first).
fn with_kid(token: &str, kid: &str) -> String {
    let mut parts = token.split('.');
    let mut header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts.next().unwrap()).unwrap()).unwrap();
    header["kid"] = kid.into();
    let header = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).unwrap());
    format!(
        "{header}.{}.{}",
        parts.next().unwrap(),
        parts.next().unwrap()
    )
}

#[test]
fn with_the_provider_down_cached_keys_keep_working_and_new_keys_are_refused() {
    let cluster = PgCluster::shared();
    let mut provider = Provider::start();
    let (db, dir) = upstream_database(cluster, "idp_svc", "outage");
    let port = free_port();
    let config = format!(
        r#"
listen: {{ postgres: "127.0.0.1:{port}" }}
store: sqlite://./sluice.db
identity:
  providers:
    - {{ name: entra, issuer: "{issuer}", audiences: ["api://sluice"] }}
connections:
  - {{ name: app, kind: postgres, upstream: "postgres://idp_svc@127.0.0.1:{pg}/{db}", password: {{ file: pw }} }}
policies:
  - name: readers
    match: {{ roles: [Reports.Reader] }}
    connections: [app]
    allow:
      - {{ actions: [select], tables: ["*"] }}
"#,
        issuer = provider.issuer,
        pg = cluster.port()
    );
    std::fs::write(dir.path().join("sluice.yaml"), config).unwrap();
    let mut gw = Gateway::spawn(dir, port);
    let conninfo = format!("host=127.0.0.1 port={port} dbname=app user=agent sslmode=disable");

    let reader = provider.token("reader-v2");
    let writer = provider.token("writer-v1");
    let first = psql(cluster.bindir(), &conninfo, &reader, "SELECT 'in'");
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );

    provider.stop();
    // Not seen before (no cached validation), signed with a key fetched while the
    // provider was up: validated with the cached keys.
    let second = psql(cluster.bindir(), &conninfo, &writer, "SELECT 'still in'");
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&second.stdout).trim(), "still in");

    // A key the gateway has never seen (the provider rotated, say): the key set was
    // fetched moments ago, so it is not asked again for 5 minutes (and is down anyway).
    let rotated = with_kid(&reader, "a-key-made-after-the-outage");
    let refused = psql(cluster.bindir(), &conninfo, &rotated, "SELECT 1");
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains("authentication failed") && said.contains("a-key-made-after-the-outage"),
        "{said}"
    );

    assert!(gw.terminate().success());
    let events = gw.exported();
    let opened = events
        .iter()
        .filter(|e| e["body"]["kind"] == "session_opened")
        .count();
    assert_eq!(opened, 2, "{events:#?}");
    let refusal = events
        .iter()
        .find(|e| e["body"]["kind"] == "login_refused")
        .unwrap_or_else(|| panic!("the refused login is not recorded: {events:#?}"));
    assert!(
        refusal["body"]["reason"]
            .as_str()
            .unwrap()
            .contains("a-key-made-after-the-outage"),
        "{refusal}"
    );
    let verified = gw.sluice(&["sessions", "verify"]);
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stdout)
    );
}
