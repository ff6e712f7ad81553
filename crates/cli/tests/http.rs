//! The HTTP data path through `sluice serve`, with curl as the agent and a real HTTP
//! service behind the gateway: requests judged on method and path, the agent's token
//! swapped for the connection's own, ambiguous paths refused, JSON responses masked,
//! tickets and holds, and every request in the audit trail.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{free_port, Gateway};

/// The echo service, killed when dropped.
struct Echo(Child, u16);

impl Drop for Echo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn echo() -> Echo {
    echo_with(&[])
}

/// The echo service with extra arguments (`CERT KEY`: over TLS).
fn echo_with(args: &[&str]) -> Echo {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests-support/http-echo/echo.py"
    );
    let mut child = Command::new("python3")
        .arg(script)
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line
        .trim()
        .strip_prefix("listening ")
        .unwrap()
        .parse()
        .unwrap();
    Echo(child, port)
}

/// A gateway with an HTTP listener in front of the echo service; returns it and its admin
/// port.
fn start(echo: &Echo) -> (Gateway, u16) {
    let upstream = format!("http://127.0.0.1:{}/base", echo.1);
    start_with(&upstream, "", tempfile::tempdir().unwrap())
}

/// `upstream` is the connection's URL, `ca` anything more for it (`, ca: ca.pem`).
fn start_with(upstream: &str, ca: &str, dir: tempfile::TempDir) -> (Gateway, u16) {
    start_with_extra(upstream, ca, "", dir)
}

/// `extra`: more top-level configuration (`limits: ...`).
fn start_with_extra(
    upstream: &str,
    ca: &str,
    extra: &str,
    dir: tempfile::TempDir,
) -> (Gateway, u16) {
    std::fs::write(dir.path().join("api-token"), "upstream-secret-token").unwrap();
    let port = free_port();
    let admin = free_port();
    let config = format!(
        r#"
listen: {{ http: "127.0.0.1:{port}", admin: "127.0.0.1:{admin}" }}
store: "sqlite://./sluice.db"
recording: {{ checkpoint_interval: 200ms }}
{extra}
identity:
  providers:
    - {{ name: local, local: {{}} }}
connections:
  - {{ name: api, kind: http, upstream: "{upstream}", token: {{ file: api-token }}{ca} }}
policies:
  - name: agents
    match: {{ roles: [agent] }}
    connections: [api]
    allow:
      - {{ methods: [GET], paths: ["/v1/**", "/data/*"] }}
      - {{ methods: [POST], paths: ["/v1/echo"] }}
    deny:
      - {{ paths: ["/v1/secret/**"] }}
    approve:
      - {{ methods: [DELETE], paths: ["/v1/items/*"], approvers: {{ groups: [dba] }}, mode: ticket }}
      - {{ methods: [PUT], paths: ["/v1/items/*"], approvers: {{ groups: [dba] }}, mode: hold, timeout: 60s }}
    mask:
      - {{ json: "$.items[*].email", with: email }}
      - {{ detect: [credit_card], with: redact }}
  - name: streamers
    match: {{ roles: [streamer] }}
    connections: [api]
    allow:
      - {{ methods: [GET], paths: ["/stream"] }}
"#,
    );
    std::fs::write(dir.path().join("sluice.yaml"), config).unwrap();
    let gw = Gateway::spawn(dir, port);
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", admin)).is_err() {
        assert!(Instant::now() < deadline, "admin listener did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    (gw, admin)
}

fn token(gw: &Gateway, args: &[&str]) -> String {
    gw.issue(args)
}

/// curl with `args`; returns the status and the body.
fn curl(args: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "-S", "--path-as-is", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.parse().unwrap(), body.to_string())
}

fn call(gw: &Gateway, token: &str, method: &str, path: &str) -> (u16, String) {
    curl(&[
        "-X",
        method,
        "-H",
        &format!("Authorization: Bearer {token}"),
        &format!("http://127.0.0.1:{}/c/api{path}", gw.port),
    ])
}

fn decide(gw: &Gateway, admin: u16, token: &str, verdict: &str, id: &str) -> bool {
    gw.decide(&support::Admin::plain(admin), token, verdict, id)
}

#[test]
fn requests_are_judged_and_forwarded_with_the_connections_own_credential() {
    let echo = echo();
    let (mut gw, _admin) = start(&echo);
    let agent = token(&gw, &["--subject", "agent-1", "--roles", "agent"]);

    // HTTP/2 (prior knowledge, in the clear on loopback) is served too.
    let h2 = Command::new("curl")
        .args(["-s", "--http2-prior-knowledge", "-o", "/dev/null"])
        .args(["-w", "%{http_version} %{http_code}", "-H"])
        .arg(format!("Authorization: Bearer {agent}"))
        .arg(format!("http://127.0.0.1:{}/c/api/v1/things/1", gw.port))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&h2.stdout), "2 200");

    let (status, body) = call(&gw, &agent, "GET", "/v1/things/7?expand=lines");
    assert_eq!(status, 200, "{body}");
    let seen: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(seen["path"], "/base/v1/things/7?expand=lines");
    assert_eq!(
        seen["headers"]["authorization"],
        "Bearer upstream-secret-token"
    );
    assert!(
        !body.contains(&agent),
        "the agent's token reached the resource"
    );

    let (status, body) = curl(&[
        "-X",
        "POST",
        "-H",
        &format!("Authorization: Bearer {agent}"),
        "-H",
        "Content-Type: application/json",
        "--data",
        r#"{"hello":"world"}"#,
        &format!("http://127.0.0.1:{}/c/api/v1/echo", gw.port),
    ]);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["body"],
        r#"{"hello":"world"}"#
    );

    // Refused: not allowed, denied, unauthenticated, ambiguous.
    let (status, body) = call(&gw, &agent, "POST", "/v1/things/7");
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("POST /v1/things/7 is not allowed"), "{body}");
    let (status, body) = call(&gw, &agent, "GET", "/v1/secret/keys");
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("is denied"), "{body}");
    let (status, _) = curl(&[&format!("http://127.0.0.1:{}/c/api/v1/things", gw.port)]);
    assert_eq!(status, 401);
    let (status, _) = curl(&[
        "-H",
        &format!("Authorization: Bearer {agent}"),
        "-H",
        "Authorization: Bearer other",
        &format!("http://127.0.0.1:{}/c/api/v1/things", gw.port),
    ]);
    assert_eq!(status, 401, "two Authorization headers");
    let (status, body) = call(&gw, &agent, "GET", "/v1/things/..%2Fsecret");
    assert_eq!(status, 400, "{body}");
    let (status, body) = call(&gw, &agent, "GET", "/v1/things/../secret/keys");
    assert_eq!(status, 400, "{body}");
    let (status, _) = call(&gw, &agent, "GET", "/v1//secret/keys");
    assert_eq!(status, 400);
    let (status, _) = curl(&[
        "-H",
        &format!("Authorization: Bearer {agent}"),
        &format!("http://127.0.0.1:{}/c/nothing/v1/x", gw.port),
    ]);
    assert_eq!(status, 404);

    // Masked: JSON by path and by detector; what is not JSON is withheld.
    let (status, body) = call(&gw, &agent, "GET", "/data/customers");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("a***@example.com"), "{body}");
    assert!(
        !body.contains("ada@example.com") && !body.contains("4111111111111111"),
        "{body}"
    );
    let (status, body) = call(&gw, &agent, "GET", "/data/text");
    assert_eq!(status, 502, "{body}");
    assert!(!body.contains("ada@example.com"), "{body}");

    // Everything is in the trail, as the agent saw it.
    assert!(gw.terminate().success());
    let events = gw.exported();
    let request = events
        .iter()
        .find(|e| {
            e["body"]["kind"] == "request" && e["body"]["text"] == "GET /v1/things/7?expand=lines"
        })
        .expect("the GET is recorded");
    assert_eq!(request["body"]["decision"], "allow");
    let result = events
        .iter()
        .find(|e| e["body"]["kind"] == "result" && e["session_id"] == request["session_id"])
        .expect("its response is recorded");
    assert_eq!(result["body"]["rows"][0][0], "200");
    let masked = events
        .iter()
        .filter(|e| e["body"]["kind"] == "result")
        .any(|e| {
            e["body"]["rows"][0][1]
                .as_str()
                .is_some_and(|b| b.contains("a***@example.com"))
        });
    assert!(masked, "the masked response is recorded masked");
    assert!(!String::from_utf8_lossy(
        &gw.sluice(&["sessions", "export", "--format", "jsonl"])
            .stdout
    )
    .contains("ada@example.com"));
    assert!(events
        .iter()
        .any(|e| e["body"]["kind"] == "request" && e["body"]["decision"] == "deny"));
    assert!(gw.sluice(&["sessions", "verify"]).status.success());

    // Replayed as exchanges: the request line, then the status and the body indented.
    let session = request["session_id"].as_str().unwrap();
    let replay = gw.sluice(&["sessions", "replay", session, "--speed", "0"]);
    let transcript = String::from_utf8_lossy(&replay.stdout);
    assert!(
        transcript.contains("GET /v1/things/7?expand=lines"),
        "{transcript}"
    );
    assert!(transcript.contains("      HTTP 200"), "{transcript}");
    assert!(
        transcript.contains("          \"method\": \"GET\","),
        "{transcript}"
    );
}

#[test]
fn tickets_and_holds_work_for_http_requests() {
    let echo = echo();
    let (gw, admin) = start(&echo);
    let agent = token(&gw, &["--subject", "agent-1", "--roles", "agent"]);
    let dana = token(&gw, &["--subject", "dana", "--groups", "dba", "--user"]);

    // Ticket: refused with the id, approved, then exactly that request once.
    let (status, body) = call(&gw, &agent, "DELETE", "/v1/items/7");
    assert_eq!(status, 403, "{body}");
    let refusal: Value = serde_json::from_str(&body).unwrap();
    let id = refusal["approval"]["id"].as_str().unwrap().to_string();
    assert!(refusal["error"]
        .as_str()
        .unwrap()
        .contains("requested (ticket)"));
    assert!(decide(&gw, admin, &dana, "approve", &id));
    let (status, _) = call(&gw, &agent, "DELETE", "/v1/items/8");
    assert_eq!(status, 403, "another request is not covered");
    let (status, body) = call(&gw, &agent, "DELETE", "/v1/items/7");
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["method"],
        "DELETE"
    );
    let (status, _) = call(&gw, &agent, "DELETE", "/v1/items/7");
    assert_eq!(status, 403, "once");

    // Hold: the client waits until a person approves.
    let port = gw.port;
    let waiting = {
        let agent = agent.clone();
        std::thread::spawn(move || {
            curl(&[
                "-X",
                "PUT",
                "-H",
                &format!("Authorization: Bearer {agent}"),
                &format!("http://127.0.0.1:{port}/c/api/v1/items/9"),
            ])
        })
    };
    // Other requests are pending too (the tickets refused above).
    let held = gw.wait_pending_for(&support::Admin::plain(admin), &dana, "PUT /v1/items/9");
    assert_eq!(held["statement"], "PUT /v1/items/9");
    let id = held["id"].as_str().unwrap().to_string();
    assert!(decide(&gw, admin, &dana, "approve", &id));
    let (status, body) = waiting.join().unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["method"],
        "PUT"
    );
}

/// Sends raw bytes to the HTTP listener and reads what comes back until the server
/// closes or goes quiet.
fn raw(port: u16, request: &[u8]) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    while let Ok(n) = stream.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn hostile_requests_get_nothing_past_the_policy() {
    let echo = echo();
    let (gw, _admin) = start(&echo);
    let agent = token(&gw, &["--subject", "agent-1", "--roles", "agent"]);

    // A method override would have the API run something other than what was judged.
    let (status, body) = curl(&[
        "-X",
        "POST",
        "-H",
        &format!("Authorization: Bearer {agent}"),
        "-H",
        "X-HTTP-Method-Override: DELETE",
        &format!("http://127.0.0.1:{}/c/api/v1/echo", gw.port),
    ]);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("x-http-method-override"), "{body}");

    // Conflicting framing: Content-Length and Transfer-Encoding together, with a denied
    // request hidden in the body. The gateway reads one request; the hidden one never
    // reaches the API as a request of its own.
    let smuggled = format!(
        "POST /c/api/v1/echo HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {agent}\r\nContent-Length: 60\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /c/api/v1/secret/keys HTTP/1.1\r\nHost: x\r\n\r\n"
    );
    let answer = raw(gw.port, smuggled.as_bytes());
    assert!(!answer.contains("/base/v1/secret"), "{answer}");
    let first = answer.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("HTTP/1.1 400") || first.starts_with("HTTP/1.1 200"),
        "{answer}"
    );
    if first.starts_with("HTTP/1.1 200") {
        // Read as chunked (an empty body), answered, and the connection closed: what
        // followed is never read as a request.
        assert_eq!(answer.matches("HTTP/1.1 ").count(), 1, "{answer}");
        assert!(
            answer.to_ascii_lowercase().contains("connection: close"),
            "{answer}"
        );
    }

    // Oversized headers are refused before anything is judged.
    let big = format!(
        "GET /c/api/v1/things HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {agent}\r\nX-Big: {}\r\n\r\n",
        "a".repeat(1 << 20)
    );
    let answer = raw(gw.port, big.as_bytes());
    assert!(
        !answer.contains("\"path\""),
        "an oversized request reached the API: {answer:.200}"
    );

    // A large body streams through intact.
    let body = "x".repeat(5 << 20);
    let file = gw.dir.path().join("big-body");
    std::fs::write(&file, &body).unwrap();
    let (status, answer) = curl(&[
        "-X",
        "POST",
        "-H",
        &format!("Authorization: Bearer {agent}"),
        "--data-binary",
        &format!("@{}", file.display()),
        &format!("http://127.0.0.1:{}/c/api/v1/echo", gw.port),
    ]);
    assert_eq!(status, 200);
    let seen: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(seen["body"].as_str().unwrap().len(), body.len());
}

#[test]
fn a_python_requests_client_works_unchanged() {
    let echo = echo();
    let (gw, _admin) = start(&echo);
    let agent = token(&gw, &["--subject", "agent-1", "--roles", "agent"]);
    let script = r#"
import json, sys, requests
base, token = sys.argv[1], sys.argv[2]
s = requests.Session()
s.headers["Authorization"] = "Bearer " + token
ok = s.get(base + "/v1/things", params={"q": "a b"})
posted = s.post(base + "/v1/echo", json={"n": 1})
refused = s.delete(base + "/v1/things/1")
masked = s.get(base + "/data/customers")
print(json.dumps({
    "ok": [ok.status_code, ok.json()["path"], ok.json()["headers"]["authorization"]],
    "posted": [posted.status_code, posted.json()["body"]],
    "refused": [refused.status_code, refused.json()["error"]],
    "masked": [masked.status_code, masked.json()["items"][0]["email"]],
}))
"#;
    let out = Command::new("python3")
        .args([
            "-c",
            script,
            &format!("http://127.0.0.1:{}/c/api", gw.port),
            &agent,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        seen["ok"],
        serde_json::json!([200, "/base/v1/things?q=a+b", "Bearer upstream-secret-token"])
    );
    assert_eq!(seen["posted"], serde_json::json!([200, r#"{"n": 1}"#]));
    assert_eq!(seen["refused"][0], 403);
    assert!(seen["refused"][1].as_str().unwrap().starts_with("sluice: "));
    assert_eq!(seen["masked"], serde_json::json!([200, "a***@example.com"]));

    // One keep-alive connection, one principal, one resource: one recorded session.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let events = gw.exported();
        let session_of = |text: &str| {
            events
                .iter()
                .find(|e| {
                    e["body"]["kind"] == "request"
                        && e["body"]["text"]
                            .as_str()
                            .is_some_and(|t| t.starts_with(text))
                })
                .map(|e| e["session_id"].clone())
        };
        if let (Some(get), Some(post)) = (session_of("GET /v1/things"), session_of("POST /v1/echo"))
        {
            assert_eq!(get, post, "two requests of one connection, two sessions");
            let opened = events
                .iter()
                .filter(|e| e["session_id"] == get && e["body"]["kind"] == "session_opened")
                .count();
            assert_eq!(opened, 1);
            break;
        }
        assert!(Instant::now() < deadline, "the requests were not recorded");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_client_that_gives_up_on_a_held_request_withdraws_it() {
    let echo = echo();
    let (gw, admin) = start(&echo);
    let agent = token(&gw, &["--subject", "agent-1", "--roles", "agent"]);
    let dana = token(&gw, &["--subject", "dana", "--groups", "dba", "--user"]);
    // curl gives up after 2 s while the request is held.
    let (status, _) = curl(&[
        "--max-time",
        "2",
        "-X",
        "PUT",
        "-H",
        &format!("Authorization: Bearer {agent}"),
        &format!("http://127.0.0.1:{}/c/api/v1/items/5", gw.port),
    ]);
    assert_eq!(status, 0, "curl should have timed out");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = gw.sluice(&[
            "approvals",
            "list",
            "--status",
            "all",
            "--json",
            "--gateway",
            &format!("http://127.0.0.1:{admin}"),
            "--token",
            &dana,
        ]);
        let all: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap_or_default();
        if all.first().is_some_and(|a| a["status"] == "withdrawn") {
            break;
        }
        assert!(Instant::now() < deadline, "not withdrawn: {all:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn an_https_upstream_is_verified_against_the_configured_ca() {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = (dir.path().join("api.pem"), dir.path().join("api-key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let echo = echo_with(&[cert_path.to_str().unwrap(), key_path.to_str().unwrap()]);
    let upstream = format!("https://localhost:{}/base", echo.1);

    let ca = format!(", ca: {}", cert_path.display());
    let (gw, _admin) = start_with(&upstream, &ca, dir);
    let agent = token(&gw, &["--subject", "agent-1", "--roles", "agent"]);
    let (status, body) = call(&gw, &agent, "GET", "/v1/things");
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["path"],
        "/base/v1/things"
    );
    drop(gw);

    // Without the CA, the certificate is not trusted: nothing is forwarded.
    let (gw, _admin) = start_with(&upstream, "", tempfile::tempdir().unwrap());
    let agent = token(&gw, &["--subject", "agent-1", "--roles", "agent"]);
    let (status, body) = call(&gw, &agent, "GET", "/v1/things");
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("could not be reached"), "{body}");
}

/// Opens an upgrade request on the HTTP listener and reads the response head.
fn upgrade(port: u16, token: &str, path: &str) -> (std::net::TcpStream, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let request = format!(
        "GET /c/api{path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(stream.read(&mut byte).unwrap(), 1, "cut head: {head:?}");
        head.push(byte[0]);
    }
    (stream, String::from_utf8(head).unwrap())
}

#[test]
fn upgraded_streams_are_judged_relayed_and_recorded() {
    use std::io::{Read, Write};
    let echo = echo();
    let (mut gw, _admin) = start(&echo);
    let streamer = token(&gw, &["--subject", "streamer-1", "--roles", "streamer"]);
    let agent = token(&gw, &["--subject", "agent-1", "--roles", "agent"]);

    // Allowed: the resource switches protocols and the bytes flow both ways, with the
    // connection's own credential upstream.
    let (mut stream, head) = upgrade(gw.port, &streamer, "/stream");
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("x-saw-authorization: bearer upstream-secret-token"),
        "{head}"
    );
    stream.write_all(b"hello through the gateway").unwrap();
    let mut answer = [0u8; 25];
    stream.read_exact(&mut answer).unwrap();
    assert_eq!(&answer, b"HELLO THROUGH THE GATEWAY");
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);
    assert!(rest.is_empty(), "{rest:?}");

    // Refused: a path no rule allows, and a stream masks would apply to (it cannot be
    // masked, so it does not start).
    let (_, head) = upgrade(gw.port, &streamer, "/other");
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");
    let (mut stream, head) = upgrade(gw.port, &agent, "/v1/stream");
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");
    let mut body = String::new();
    let _ = stream.read_to_string(&mut body);
    assert!(body.contains("cannot be masked"), "{body}");

    // The stream is in the trail, both directions.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let events = gw.exported();
        let recorded = events.iter().any(|e| {
            e["body"]["kind"] == "result"
                && e["body"]["rows"][0][1] == "hello through the gateway"
                && e["body"]["rows"][1][1] == "HELLO THROUGH THE GATEWAY"
        });
        if recorded {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the stream was not recorded: {events:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(gw.terminate().success());
    assert!(gw.sluice(&["sessions", "verify"]).status.success());
}

#[test]
fn abuse_limits_say_no_in_http_terms() {
    let echo = echo();
    let upstream = format!("http://127.0.0.1:{}/base", echo.1);
    let (gw, _admin) = start_with_extra(
        &upstream,
        "",
        "limits: { sessions_per_principal: 1, pending_approvals_per_principal: 2, auth_failures_per_address: 3, auth_failure_window: 1h }",
        tempfile::tempdir().unwrap(),
    );
    let agent = token(&gw, &["--subject", "agent-1", "--roles", "agent"]);

    // Pending approvals per principal: two tickets, then 429.
    for item in ["1", "2"] {
        let (status, body) = call(&gw, &agent, "DELETE", &format!("/v1/items/{item}"));
        assert_eq!(status, 403, "{body}");
    }
    let (status, body) = call(&gw, &agent, "DELETE", "/v1/items/3");
    assert_eq!(status, 429, "{body}");
    assert!(body.contains("2 approval requests pending"), "{body}");

    // Sessions per principal: one client connection at a time (curl runs one per call,
    // so the ones above have ended; a connection held open takes the only place).
    use std::io::Write;
    let mut held = std::net::TcpStream::connect(("127.0.0.1", gw.port)).unwrap();
    write!(
        held,
        "GET /c/api/v1/things/1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {agent}\r\n\r\n"
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let (status, body) = call(&gw, &agent, "GET", "/v1/things/2");
    assert_eq!(status, 429, "{body}");
    assert!(body.contains("already holds 1 sessions"), "{body}");
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(10);
    while call(&gw, &agent, "GET", "/v1/things/3").0 != 200 {
        assert!(Instant::now() < deadline, "the place was not freed");
        std::thread::sleep(Duration::from_millis(100));
    }

    // Failed authentications: after three, 429 with Retry-After, good token or not.
    for _ in 0..3 {
        assert_eq!(call(&gw, "not-a-token", "GET", "/v1/things/1").0, 401);
    }
    let out = Command::new("curl")
        .args(["-s", "-D", "-", "-o", "/dev/null", "-H"])
        .arg(format!("Authorization: Bearer {agent}"))
        .arg(format!("http://127.0.0.1:{}/c/api/v1/things/1", gw.port))
        .output()
        .unwrap();
    let head = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 429"), "{head}");
    assert!(head.contains("retry-after: "), "{head}");
}
