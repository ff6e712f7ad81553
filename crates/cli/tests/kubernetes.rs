//! The Kubernetes data path through `sluice serve`, against a real kube-apiserver (with
//! etcd) and with kubectl as the agent: get, list and watch allowed; a delete held until
//! a person approves, then run; Secrets' values masked in objects, lists and watches;
//! exec refused; every request in the audit trail, which verifies.
//!
//! The API server is built once by `scripts/ensure-kube-apiserver.sh` (`make test` runs
//! it) and found through `SLUICE_KUBE_DIR` or the script's default cache folder.

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{free_port, Admin, Gateway};

/// The clear value of the Secret the agent must never see.
const SECRET_VALUE: &str = "hunter2-very-secret";

/// etcd and kube-apiserver, killed when dropped.
struct Cluster {
    etcd: Child,
    apiserver: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for child in [&mut self.apiserver, &mut self.etcd] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

const ADMIN_TOKEN: &str = "cluster-admin-token";

fn apiserver_binary() -> PathBuf {
    let dir = std::env::var_os("SLUICE_KUBE_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/sluice/k8s")))
        .expect("HOME or SLUICE_KUBE_DIR");
    let binary = dir.join("bin/kube-apiserver");
    assert!(
        binary.exists(),
        "no kube-apiserver at {}: run scripts/ensure-kube-apiserver.sh (make test does)",
        binary.display()
    );
    binary
}

impl Cluster {
    fn start() -> Cluster {
        let binary = apiserver_binary();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let (client, peer, port) = (free_port(), free_port(), free_port());
        let etcd = Command::new("etcd")
            .args(["--name", "k8s", "--data-dir"])
            .arg(d.join("etcd"))
            .arg(format!("--listen-client-urls=http://127.0.0.1:{client}"))
            .arg(format!("--advertise-client-urls=http://127.0.0.1:{client}"))
            .arg(format!("--listen-peer-urls=http://127.0.0.1:{peer}"))
            .arg(format!(
                "--initial-advertise-peer-urls=http://127.0.0.1:{peer}"
            ))
            .arg(format!("--initial-cluster=k8s=http://127.0.0.1:{peer}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("etcd (Debian's etcd-server)");
        let openssl = |args: &[&str]| {
            let ok = Command::new("openssl")
                .args(args)
                .current_dir(d)
                .stderr(Stdio::null())
                .status()
                .unwrap()
                .success();
            assert!(ok, "openssl {args:?}");
        };
        openssl(&["genrsa", "-out", "sa.key", "2048"]);
        openssl(&["rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub"]);
        std::fs::write(
            d.join("tokens.csv"),
            format!("{ADMIN_TOKEN},admin,admin-uid,system:masters\n"),
        )
        .unwrap();
        let log = std::fs::File::create(d.join("apiserver.log")).unwrap();
        let apiserver = Command::new(binary)
            .arg(format!("--etcd-servers=http://127.0.0.1:{client}"))
            .args(["--bind-address=127.0.0.1", "--advertise-address=127.0.0.1"])
            .arg(format!("--secure-port={port}"))
            .arg("--insecure-port=0")
            .arg(format!("--cert-dir={}", d.join("certs").display()))
            .arg("--service-cluster-ip-range=10.0.0.0/24")
            .arg(format!(
                "--service-account-key-file={}",
                d.join("sa.pub").display()
            ))
            .arg(format!(
                "--service-account-signing-key-file={}",
                d.join("sa.key").display()
            ))
            .arg("--service-account-issuer=https://kubernetes.default.svc")
            .arg(format!(
                "--token-auth-file={}",
                d.join("tokens.csv").display()
            ))
            .args([
                "--authorization-mode=RBAC",
                "--enable-priority-and-fairness=false",
            ])
            // No controllers run: pods need no service account to be created.
            .arg("--disable-admission-plugins=ServiceAccount")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let cluster = Cluster {
            etcd,
            apiserver,
            port,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let out = cluster.admin(&["get", "--raw", "/readyz"]);
            if out.status.success() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "kube-apiserver not ready: {}",
                std::fs::read_to_string(cluster.dir.path().join("apiserver.log"))
                    .unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
        cluster
    }

    /// The API server's self-signed certificate, with the CA that signed it.
    fn ca(&self) -> PathBuf {
        self.dir.path().join("certs/apiserver.crt")
    }

    /// kubectl straight to the API server as a cluster admin (setup and checks).
    fn admin(&self, args: &[&str]) -> Output {
        Command::new("kubectl")
            .env("KUBECONFIG", "/dev/null")
            .arg(format!("--server=https://127.0.0.1:{}", self.port))
            .arg(format!("--certificate-authority={}", self.ca().display()))
            .arg(format!("--token={ADMIN_TOKEN}"))
            .args(args)
            .output()
            .unwrap()
    }

    fn admin_ok(&self, args: &[&str]) -> String {
        let out = self.admin(args);
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn apply(&self, manifest: &str) {
        let path = self.dir.path().join("manifest.json");
        std::fs::write(&path, manifest).unwrap();
        self.admin_ok(&["apply", "-f", path.to_str().unwrap()]);
    }
}

fn pod(name: &str) -> String {
    format!(
        r#"{{"apiVersion": "v1", "kind": "Pod", "metadata": {{"name": "{name}", "namespace": "staging"}},
           "spec": {{"containers": [{{"name": "app", "image": "busybox"}}]}}}}"#
    )
}

fn secret(name: &str) -> String {
    format!(
        r#"{{"apiVersion": "v1", "kind": "Secret", "metadata": {{"name": "{name}", "namespace": "staging"}},
           "stringData": {{"password": "{SECRET_VALUE}"}}}}"#
    )
}

/// A gateway with an HTTP listener in front of the cluster; returns it and its admin port.
///
/// The listener speaks TLS: kubectl sends no credentials to an `http://` server.
fn gateway(cluster: &Cluster) -> (Gateway, Admin) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("k8s-token"), ADMIN_TOKEN).unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    std::fs::write(dir.path().join("gw.pem"), cert.cert.pem()).unwrap();
    std::fs::write(
        dir.path().join("gw-key.pem"),
        cert.signing_key.serialize_pem(),
    )
    .unwrap();
    let port = free_port();
    let admin = free_port();
    let config = format!(
        r#"
listen: {{ http: "127.0.0.1:{port}", admin: "127.0.0.1:{admin}" }}
tls: {{ cert: gw.pem, key: gw-key.pem }}
store: "sqlite://./sluice.db"
recording: {{ checkpoint_interval: 200ms }}
identity:
  providers:
    - {{ name: local, local: {{}} }}
connections:
  - name: staging-k8s
    kind: kubernetes
    upstream: "https://127.0.0.1:{kube}"
    token: {{ file: k8s-token }}
    ca: "{ca}"
policies:
  - name: k8s-agents
    match: {{ roles: [agent] }}
    connections: [staging-k8s]
    allow:
      - {{ verbs: [get, list, watch], resources: [pods, pods/log, configmaps], namespaces: [staging] }}
      - {{ verbs: [get, list, watch, patch], resources: [secrets], namespaces: [staging] }}
    approve:
      - {{ verbs: [delete], resources: [pods], namespaces: [staging], approvers: {{ groups: [sre] }}, mode: hold, timeout: 2m }}
  - name: debuggers
    match: {{ roles: [debugger] }}
    connections: [staging-k8s]
    allow:
      - {{ verbs: [get, create], resources: [pods, pods/exec], namespaces: [staging] }}
"#,
        kube = cluster.port,
        ca = cluster.ca().display(),
    );
    std::fs::write(dir.path().join("sluice.yaml"), config).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .current_dir(dir.path())
        .args(["-c", "sluice.yaml", "serve"])
        .stderr(std::fs::File::create(dir.path().join("gateway.log")).unwrap())
        .spawn()
        .unwrap();
    let gw = Gateway { child, port, dir };
    gw.wait_listening();
    support::wait_port(admin);
    let ca = gw.dir.path().join("gw.pem");
    (
        gw,
        Admin {
            url: format!("https://127.0.0.1:{admin}"),
            ca: Some(ca),
        },
    )
}

/// kubectl through the gateway with the kubeconfig `sluice kubeconfig` wrote.
fn agent_kubectl(kubeconfig: &Path, args: &[&str]) -> Output {
    Command::new("kubectl")
        .arg(format!("--kubeconfig={}", kubeconfig.display()))
        .arg("--request-timeout=0")
        .args(args)
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Spawns `kubectl ... --watch` through the gateway and reads its lines on a thread.
fn watch(kubeconfig: &Path, args: &[&str]) -> (Child, std::sync::mpsc::Receiver<String>) {
    let mut child = Command::new("kubectl")
        .arg(format!("--kubeconfig={}", kubeconfig.display()))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// Waits for a line holding `needle`; returns every line read until then.
fn wait_for_line(rx: &std::sync::mpsc::Receiver<String>, needle: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                let found = line.contains(needle);
                seen.push(line);
                if found {
                    return seen;
                }
            }
            Err(_) => panic!("no line with {needle:?} in {seen:?}"),
        }
    }
}

#[test]
fn kubectl_through_the_gateway() {
    let cluster = Cluster::start();
    cluster.admin_ok(&["create", "namespace", "staging"]);
    cluster.admin_ok(&["create", "namespace", "prod"]);
    cluster.apply(&pod("web"));
    cluster.apply(&pod("doomed"));
    cluster.apply(&secret("db"));
    let (gw, admin) = gateway(&cluster);

    let agent = gw.issue(&["--subject", "ops-agent", "--roles", "agent"]);
    let dana = gw.issue(&["--subject", "dana", "--groups", "sre", "--user"]);
    let kubeconfig = gw.dir.path().join("agent.kubeconfig");
    let out = gw.sluice(&[
        "kubeconfig",
        "--connection",
        "staging-k8s",
        "--token",
        &agent,
        "--namespace",
        "staging",
        "-o",
        kubeconfig.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!std::fs::read_to_string(&kubeconfig)
        .unwrap()
        .contains(ADMIN_TOKEN));

    // Allowed: get and list in staging, with the gateway's own credential upstream.
    let out = agent_kubectl(&kubeconfig, &["get", "pods"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("web") && text(&out).contains("doomed"),
        "{}",
        text(&out)
    );
    let out = agent_kubectl(&kubeconfig, &["get", "pod", "web", "-o", "json"]);
    assert!(out.status.success(), "{}", text(&out));
    let web: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(web["metadata"]["name"], "web");

    // Refused: another namespace, cluster-wide, a verb no rule gives.
    for args in [
        vec!["get", "pods", "-n", "prod"],
        vec!["get", "pods", "--all-namespaces"],
        vec!["get", "nodes"],
        vec!["create", "configmap", "x", "--from-literal=a=b"],
    ] {
        let out = agent_kubectl(&kubeconfig, &args);
        assert!(!out.status.success(), "{args:?}: {}", text(&out));
        assert!(
            text(&out).contains("sluice:") && text(&out).contains("is not allowed"),
            "{args:?}: {}",
            text(&out)
        );
    }
    assert!(
        !cluster
            .admin_ok(&["get", "configmaps", "-n", "staging"])
            .contains("x "),
        "the refused create did not happen"
    );

    // Impersonation would have the API server act as someone else with the gateway's
    // credential.
    let out = agent_kubectl(&kubeconfig, &["get", "pods", "--as", "system:admin"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("impersonate-user"), "{}", text(&out));

    // exec: refused before anything reaches the API server.
    let out = agent_kubectl(&kubeconfig, &["exec", "web", "--", "cat", "/etc/passwd"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("sluice:") && text(&out).contains("pods/exec"),
        "{}",
        text(&out)
    );

    // exec, where a rule allows it: the upgrade goes to the API server, whose answer
    // comes back (this cluster has no node to run it on).
    let debugger = gw.issue(&["--subject", "debug-agent", "--roles", "debugger"]);
    let debug_kubeconfig = gw.dir.path().join("debug.kubeconfig");
    let out = gw.sluice(&[
        "kubeconfig",
        "--connection",
        "staging-k8s",
        "--token",
        &debugger,
        "--namespace",
        "staging",
        "-o",
        debug_kubeconfig.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let out = agent_kubectl(&debug_kubeconfig, &["exec", "web", "--", "true"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("does not have a host assigned") && !text(&out).contains("sluice:"),
        "{}",
        text(&out)
    );

    // Secrets: values masked in an object, a list, in YAML, and in a watch.
    for args in [
        vec!["get", "secret", "db", "-o", "json"],
        vec!["get", "secrets", "-o", "yaml"],
        vec!["get", "secret", "db", "-o", "jsonpath={.data.password}"],
    ] {
        let out = agent_kubectl(&kubeconfig, &args);
        assert!(out.status.success(), "{args:?}: {}", text(&out));
        let shown = text(&out);
        assert!(shown.contains("****"), "{args:?}: {shown}");
        assert!(!shown.contains(SECRET_VALUE), "{args:?}: {shown}");
        assert!(
            !shown.contains("aHVudGVyMi"),
            "base64 of the value: {shown}"
        );
    }
    // Writes to a masked Secret: the response is masked too, and a JSON patch, which
    // could copy values where masks do not look, is refused.
    let out = agent_kubectl(
        &kubeconfig,
        &[
            "patch",
            "secret",
            "db",
            "-p",
            r#"{"metadata":{"labels":{"seen":"yes"}}}"#,
            "-o",
            "json",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("****") && !text(&out).contains(SECRET_VALUE),
        "{}",
        text(&out)
    );
    let out = agent_kubectl(
        &kubeconfig,
        &[
            "patch",
            "secret",
            "db",
            "--type=json",
            "-p",
            r#"[{"op":"copy","from":"/data/password","path":"/metadata/annotations/x"}]"#,
        ],
    );
    assert!(!out.status.success());
    assert!(text(&out).contains("JSON patch"), "{}", text(&out));
    assert!(!cluster
        .admin_ok(&["get", "secret", "db", "-n", "staging", "-o", "json"])
        .contains("\"x\""));
    // HTTP/2 from the agent, negotiated by ALPN on the TLS listener.
    let h2 = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_version} %{http_code}",
            "--http2",
            "--cacert",
        ])
        .arg(gw.dir.path().join("gw.pem"))
        .args(["-H", &format!("Authorization: Bearer {agent}")])
        .arg(format!(
            "https://127.0.0.1:{}/c/staging-k8s/api/v1/namespaces/staging/pods",
            gw.port
        ))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&h2.stdout), "2 200");
    // Identity headers: impersonation (above) and the front proxy's.
    let curl = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
        .arg(gw.dir.path().join("gw.pem"))
        .args(["-H", &format!("Authorization: Bearer {agent}")])
        .args(["-H", "X-Remote-User: system:admin"])
        .arg(format!(
            "https://127.0.0.1:{}/c/staging-k8s/api/v1/namespaces/staging/pods",
            gw.port
        ))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&curl.stdout), "400");

    let (mut secrets_watch, secret_lines) = watch(
        &kubeconfig,
        &[
            "get",
            "secrets",
            "--watch",
            "--output-watch-events",
            "-o",
            "json",
        ],
    );
    wait_for_line(&secret_lines, "\"db\"");
    cluster.apply(&secret("late-secret"));
    let seen = wait_for_line(&secret_lines, "late-secret");
    let _ = secrets_watch.kill();
    let _ = secrets_watch.wait();
    let seen = seen.join("\n");
    assert!(
        seen.contains("****") && !seen.contains(SECRET_VALUE),
        "{seen}"
    );

    // Watch: events stream as they happen.
    let (mut pods_watch, pod_lines) = watch(&kubeconfig, &["get", "pods", "--watch"]);
    wait_for_line(&pod_lines, "web");
    cluster.apply(&pod("late"));
    wait_for_line(&pod_lines, "late");
    let _ = pods_watch.kill();
    let _ = pods_watch.wait();

    // Delete: held until a person approves, then run.
    let waiting = {
        let kubeconfig = kubeconfig.clone();
        std::thread::spawn(move || agent_kubectl(&kubeconfig, &["delete", "pod", "doomed"]))
    };
    let held = gw.wait_pending_for(
        &admin,
        &dana,
        "DELETE /api/v1/namespaces/staging/pods/doomed",
    );
    let id = held["id"].as_str().unwrap().to_string();
    assert!(
        cluster
            .admin_ok(&["get", "pods", "-n", "staging"])
            .contains("doomed"),
        "nothing runs while the request is held"
    );
    assert!(
        !gw.decide(&admin, &agent, "approve", &id),
        "agents do not approve"
    );
    assert!(gw.decide(&admin, &dana, "approve", &id));
    let out = waiting.join().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("deleted"), "{}", text(&out));
    assert!(!cluster
        .admin_ok(&["get", "pods", "-n", "staging"])
        .contains("doomed"));

    // The trail: every request with its Kubernetes reading, nothing secret, verified.
    let mut gw = gw;
    assert!(gw.terminate().success());
    let events = gw.exported();
    let requests: Vec<&Value> = events
        .iter()
        .filter(|e| e["body"]["kind"] == "request")
        .collect();
    let find = |verb: &str, resource: &str, decision: &str| {
        requests.iter().any(|e| {
            let c = &e["body"]["classification"];
            c["verb"] == verb && c["resource"] == resource && e["body"]["decision"] == decision
        })
    };
    assert!(find("list", "pods", "allow"));
    assert!(find("watch", "pods", "allow"));
    assert!(find("list", "pods", "deny"), "the prod list");
    assert!(find("delete", "pods", "approve"));
    assert!(find("delete", "pods", "allow"), "the approved delete, run");
    assert!(requests.iter().any(|e| {
        let c = &e["body"]["classification"];
        c["subresource"] == "exec" && e["body"]["decision"] == "deny"
    }));
    assert!(events
        .iter()
        .any(|e| e["body"]["kind"] == "approval_decided"));
    let export = String::from_utf8(
        gw.sluice(&["sessions", "export", "--format", "jsonl"])
            .stdout,
    )
    .unwrap();
    assert!(!export.contains(SECRET_VALUE));
    assert!(!export.contains(ADMIN_TOKEN));
    let verify = gw.sluice(&["sessions", "verify"]);
    assert!(verify.status.success(), "{}", text(&verify));
}
