//! Kubernetes requests judged on verb, group, resource, namespace and name, in the order
//! every judgement follows; Secrets only through a rule that names them, their values
//! revealed only when that rule says so; discovery open to anyone with a policy.

use std::path::Path;

use sluice_core::{Principal, PrincipalKind};
use sluice_policy::{KubeRequest, KubeTarget, PolicySet, SessionPolicy};

const CONFIG: &str = r#"
listen: { admin: 127.0.0.1:8470 }
identity:
  providers:
    - { name: local, local: {} }
connections:
  - { name: staging, kind: kubernetes, upstream: "https://k8s.internal:6443" }
policies:
  - name: operators
    match: { roles: [operator] }
    connections: [staging]
    allow:
      - { verbs: [get, list, watch], resources: [pods, pods/log, configmaps], namespaces: [staging] }
      - { verbs: [get, list], resources: ["*"], namespaces: [staging] }
      - { verbs: [get], resources: [secrets], namespaces: [staging], names: [app-config] }
      - { verbs: [get], resources: [secrets], namespaces: [staging], names: [tls-public], secret_data: reveal }
      - { verbs: [get], api_groups: [apps], resources: ["deployments", "deployments/*"] }
      - { verbs: [get], non_resource_urls: ["/healthz", "/healthz/*"] }
    deny:
      - { verbs: [delete], resources: [pods], names: ["db-*"] }
    approve:
      - { verbs: [delete], resources: [pods], namespaces: [staging], approvers: { groups: [sre] }, mode: hold }
  - name: wide
    match: { roles: [wide] }
    connections: [staging]
    allow:
      - { verbs: ["*"] }
"#;

fn session(roles: &[&str]) -> SessionPolicy {
    let config =
        sluice_config::load_str(CONFIG, Path::new("test.yaml")).unwrap_or_else(|d| panic!("{d}"));
    let principal = Principal {
        provider: "local".into(),
        subject: "agent".into(),
        tenant_id: None,
        display_name: "agent".into(),
        kind: PrincipalKind::App,
        roles: roles.iter().map(|r| r.to_string()).collect(),
        groups: vec![],
        token_id: None,
        expires_at: None,
    };
    PolicySet::compile(&config)
        .unwrap()
        .for_session(&principal, "staging")
}

fn request(
    verb: &str,
    group: &str,
    resource: &str,
    ns: Option<&str>,
    name: Option<&str>,
) -> KubeRequest {
    let (resource, subresource) = match resource.split_once('/') {
        Some((r, s)) => (r.to_string(), Some(s.to_string())),
        None => (resource.to_string(), None),
    };
    KubeRequest {
        verb: verb.into(),
        target: KubeTarget::Resource {
            api_group: group.into(),
            api_version: "v1".into(),
            resource,
            subresource,
            namespace: ns.map(Into::into),
            name: name.map(Into::into),
        },
        dry_run: false,
    }
}

fn non_resource(verb: &str, path: &str) -> KubeRequest {
    KubeRequest {
        verb: verb.into(),
        target: KubeTarget::NonResource { path: path.into() },
        dry_run: false,
    }
}

#[test]
fn verbs_resources_and_namespaces_decide() {
    let s = session(&["operator"]);
    let allow = |r: KubeRequest| s.decide_kubernetes(&r).verdict.decision.is_allow();
    assert!(allow(request("list", "", "pods", Some("staging"), None)));
    assert!(allow(request("watch", "", "pods", Some("staging"), None)));
    assert!(allow(request(
        "get",
        "",
        "pods/log",
        Some("staging"),
        Some("web")
    )));
    assert!(
        !allow(request("watch", "", "pods", Some("prod"), None)),
        "other namespace"
    );
    assert!(
        !allow(request("list", "", "pods", None, None)),
        "cluster-wide list is not in a namespace"
    );
    assert!(!allow(request("create", "", "pods", Some("staging"), None)));
    // `*` is one segment: no subresource, so exec is not covered by `resources: ["*"]`.
    assert!(allow(request(
        "get",
        "",
        "services",
        Some("staging"),
        Some("web")
    )));
    assert!(!allow(request(
        "get",
        "",
        "pods/exec",
        Some("staging"),
        Some("web")
    )));
    assert!(!allow(request(
        "create",
        "",
        "pods/exec",
        Some("staging"),
        Some("web")
    )));
    // Groups: the deployments rule is for apps only.
    assert!(allow(request(
        "get",
        "apps",
        "deployments/scale",
        Some("prod"),
        Some("api")
    )));
    assert!(!allow(request(
        "get",
        "extensions",
        "deployments",
        Some("prod"),
        Some("api")
    )));
}

#[test]
fn deny_wins_then_approve_holds() {
    let s = session(&["operator"]);
    let decide = |r: KubeRequest| s.decide_kubernetes(&r).verdict.decision;
    let held = decide(request(
        "delete",
        "",
        "pods",
        Some("staging"),
        Some("web-0"),
    ));
    assert!(
        matches!(held, sluice_policy::Decision::Approve { .. }),
        "{held:?}"
    );
    let denied = decide(request("delete", "", "pods", Some("staging"), Some("db-0")));
    assert!(
        denied.is_deny() && denied.client_message().unwrap().contains("denied"),
        "{denied:?}"
    );
    assert!(decide(request(
        "deletecollection",
        "",
        "pods",
        Some("staging"),
        None
    ))
    .is_deny());
}

#[test]
fn secrets_only_by_name_and_masked_unless_revealed() {
    let s = session(&["operator"]);
    // `resources: ["*"]` does not reach Secrets.
    let listed = s.decide_kubernetes(&request("list", "", "secrets", Some("staging"), None));
    assert!(listed.verdict.decision.is_deny());
    assert!(listed
        .verdict
        .decision
        .client_message()
        .unwrap()
        .contains("only by a rule that names it"));
    let masked = s.decide_kubernetes(&request(
        "get",
        "",
        "secrets",
        Some("staging"),
        Some("app-config"),
    ));
    assert!(masked.verdict.decision.is_allow() && !masked.reveal_secret_data);
    let revealed = s.decide_kubernetes(&request(
        "get",
        "",
        "secrets",
        Some("staging"),
        Some("tls-public"),
    ));
    assert!(revealed.verdict.decision.is_allow() && revealed.reveal_secret_data);
    // A rule that allows everything still does not name Secrets.
    let wide = session(&["wide"]);
    assert!(wide
        .decide_kubernetes(&request("delete", "", "pods", None, Some("x")))
        .verdict
        .decision
        .is_allow());
    assert!(wide
        .decide_kubernetes(&request("get", "", "secrets", Some("a"), Some("b")))
        .verdict
        .decision
        .is_deny());
    // Secrets of another group are not the core Secret.
    assert!(wide
        .decide_kubernetes(&request(
            "get",
            "example.com",
            "secrets",
            Some("a"),
            Some("b")
        ))
        .verdict
        .decision
        .is_allow());
}

#[test]
fn discovery_is_open_and_other_paths_need_a_rule() {
    let s = session(&["operator"]);
    let allow = |r: KubeRequest| s.decide_kubernetes(&r).verdict.decision.is_allow();
    for path in [
        "/api",
        "/api/v1",
        "/apis",
        "/apis/apps/v1",
        "/version",
        "/openapi/v2",
    ] {
        assert!(allow(non_resource("get", path)), "{path}");
    }
    assert!(!allow(non_resource("post", "/api")));
    assert!(allow(non_resource("get", "/healthz")));
    assert!(allow(non_resource("get", "/healthz/etcd")));
    assert!(!allow(non_resource("get", "/metrics")));
    // Resource rules do not cover paths, nor path rules resources.
    assert!(!session(&["wide"])
        .decide_kubernetes(&non_resource("get", "/metrics"))
        .verdict
        .decision
        .is_allow());
}

#[test]
fn ways_into_containers_nodes_and_credentials_need_a_rule_naming_them() {
    let wide = session(&["wide"]);
    let allow = |r: KubeRequest| wide.decide_kubernetes(&r).verdict.decision.is_allow();
    for resource in [
        "pods/exec",
        "pods/attach",
        "pods/portforward",
        "pods/proxy",
        "services/proxy",
        "nodes/proxy",
        "serviceaccounts/token",
    ] {
        assert!(
            !allow(request("create", "", resource, Some("a"), Some("b"))),
            "{resource}"
        );
        assert!(
            !allow(request("get", "", resource, Some("a"), Some("b"))),
            "{resource}"
        );
    }
    assert!(
        !allow(request("proxy", "", "services", Some("a"), Some("b"))),
        "the old proxy verb"
    );
    assert!(allow(request("get", "", "pods/log", Some("a"), Some("b"))));
    assert!(allow(request(
        "create",
        "",
        "serviceaccounts",
        Some("a"),
        None
    )));
    let s = session(&["operator"]);
    assert!(s
        .decide_kubernetes(&request(
            "get",
            "apps",
            "deployments/scale",
            None,
            Some("x")
        ))
        .verdict
        .decision
        .is_allow());
}
