//! Shared by the integration tests: a realistic recorded trail, and every small change
//! that could be made to a stored event.

#![allow(dead_code)] // each test file uses its own part

use serde_json::{json, Value};
use sluice_audit::{
    ApprovalDecided, ApprovalResolved, ChainBuilder, Decision, Event, EventBody, LoginRefused,
    Protocol, Purged, RecordedPrincipal, Request, ResultError, SessionClosed, SessionOpened,
    StatementResult, Timestamp,
};

pub fn at(second: u32) -> Timestamp {
    Timestamp::from_unix_micros(1_777_627_800_000_000 + i64::from(second) * 1_000_000 + 250)
        .unwrap()
}

pub fn principal() -> RecordedPrincipal {
    RecordedPrincipal {
        provider: "entra".into(),
        subject: "72f988bf/4f2c9a".into(),
        display_name: "Reporting agent".into(),
        roles: vec!["analyst".into(), "reader".into()],
        groups: vec!["finance".into()],
        token_id: Some("uti-7Hq".into()),
    }
}

/// One PostgreSQL session with every kind of body a session has: an allowed and masked
/// SELECT, a refused DELETE, a statement held for approval, and the close.
pub fn psql_session(session_id: &str, start: u32) -> Vec<Event> {
    let mut chain = ChainBuilder::new(session_id);
    let mut events = Vec::new();
    let mut push = |second: u32, body: EventBody| {
        events.push(chain.append(at(start + second), body));
    };
    push(
        0,
        EventBody::SessionOpened(SessionOpened {
            principal: principal(),
            client_addr: "127.0.0.1:53122".into(),
            connection: "warehouse".into(),
            protocol: Protocol::Postgres,
            tls: true,
        }),
    );
    push(
        1,
        EventBody::Request(Request {
            text: "SELECT name, email FROM customers WHERE id < 3".into(),
            classification: std::sync::Arc::new(json!({
                "statements": [{"type": "select", "accesses": [
                    {"action": "select", "object": "public.customers"}
                ]}],
                "cost": 1.5
            })),
            decision: Decision::Allow,
            rule: Some("policy analysts, allow rule 1".into()),
            approval_id: None,
            parameters: vec![],
        }),
    );
    push(
        2,
        EventBody::Result(StatementResult {
            request_seq: 1,
            columns: vec!["name".into(), "email".into()],
            rows: vec![
                vec![Some("Ada".into()), Some("a***@example.com".into())],
                vec![Some("Grace \"G\"\n".into()), None],
            ],
            truncated: false,
            row_count: 2,
            bytes: 61,
            duration_us: 1_834,
            error: None,
        }),
    );
    push(
        3,
        EventBody::Request(Request {
            text: "DELETE FROM customers".into(),
            classification: std::sync::Arc::new(json!({"statements": [{"type": "delete"}]})),
            decision: Decision::Deny,
            rule: None,
            approval_id: None,
            parameters: vec![],
        }),
    );
    push(
        4,
        EventBody::Result(StatementResult {
            request_seq: 3,
            columns: vec![],
            rows: vec![],
            truncated: false,
            row_count: 0,
            bytes: 0,
            duration_us: 12,
            error: Some(ResultError {
                code: "42501".into(),
                message: "refused by sluice: no rule allows delete on public.customers".into(),
            }),
        }),
    );
    push(
        5,
        EventBody::Request(Request {
            text: "UPDATE invoices SET paid = true WHERE id = 9".into(),
            classification: std::sync::Arc::new(json!({"statements": [{"type": "update"}]})),
            decision: Decision::Approve,
            rule: Some("policy analysts, approve rule 2".into()),
            approval_id: Some("apr_01J".into()),
            parameters: vec![],
        }),
    );
    push(
        6,
        EventBody::SessionClosed(SessionClosed {
            reason: "client disconnected".into(),
        }),
    );
    events
}

/// A session's statement held for approval: the request, a person's approval, the
/// outcome, and the statement run under it.
pub fn held_statement(session_id: &str, start: u32) -> Vec<Event> {
    let mut chain = ChainBuilder::new(session_id);
    let mut events = Vec::new();
    let mut push = |second: u32, body: EventBody| {
        events.push(chain.append(at(start + second), body));
    };
    let request = |decision| {
        EventBody::Request(Request {
            text: "DELETE FROM orders WHERE id = $1".into(),
            classification: std::sync::Arc::new(json!({"statements": [{"type": "delete"}]})),
            decision,
            rule: Some("policy operators, approve rule 1".into()),
            approval_id: Some("apr_0123456789abcdefghij".into()),
            parameters: vec![Some("7".into())],
        })
    };
    push(0, request(Decision::Approve));
    push(
        4,
        EventBody::ApprovalDecided(ApprovalDecided {
            approval_id: "apr_0123456789abcdefghij".into(),
            approver: RecordedPrincipal {
                provider: "entra".into(),
                subject: "tenant/dana".into(),
                display_name: "Dana".into(),
                roles: vec![],
                groups: vec!["dba-oncall".into()],
                token_id: Some("uti-dana".into()),
            },
            verdict: sluice_core::Verdict::Approve,
            reason: "agreed in #ops".into(),
            decided_at: at(start + 3),
        }),
    );
    push(
        4,
        EventBody::ApprovalResolved(ApprovalResolved {
            approval_id: "apr_0123456789abcdefghij".into(),
            status: sluice_core::ApprovalStatus::Approved,
        }),
    );
    push(4, request(Decision::Allow));
    events
}

pub fn refused_login(session_id: &str, second: u32) -> Vec<Event> {
    let mut chain = ChainBuilder::new(session_id);
    vec![chain.append(
        at(second),
        EventBody::LoginRefused(LoginRefused {
            client_addr: "10.0.0.8:40112".into(),
            connection: "warehouse".into(),
            protocol: Protocol::Postgres,
            reason: "token expired".into(),
        }),
    )]
}

pub fn purge_record(session_id: &str, before: Timestamp, second: u32) -> Vec<Event> {
    let mut chain = ChainBuilder::new(session_id);
    vec![chain.append(
        at(second),
        EventBody::Purged(Purged {
            before,
            sessions: 2,
        }),
    )]
}

/// A character that differs from `c`, of the same class where there is one, so that
/// changed digits and hex still read as digits and hex.
fn other_char(c: char) -> char {
    match c {
        '0'..='8' | 'a'..='y' | 'A'..='Y' => char::from_u32(c as u32 + 1).unwrap(),
        '9' => '0',
        'z' => 'a',
        'Z' => 'A',
        _ => 'x',
    }
}

/// Every value reachable from the root, by path.
fn nodes(value: &Value, path: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    out.push(path.clone());
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                path.push(Step::Key(key.clone()));
                nodes(child, path, out);
                path.pop();
            }
        }
        Value::Array(items) => {
            for (index, child) in items.iter().enumerate() {
                path.push(Step::Index(index));
                nodes(child, path, out);
                path.pop();
            }
        }
        _ => {}
    }
}

#[derive(Clone, Debug)]
enum Step {
    Key(String),
    Index(usize),
}

fn node_mut<'a>(value: &'a mut Value, path: &[Step]) -> &'a mut Value {
    path.iter().fold(value, |node, step| match step {
        Step::Key(key) => &mut node[key.as_str()],
        Step::Index(index) => &mut node[*index],
    })
}

/// Every single small change to `event`'s stored JSON: each character of each string
/// changed in turn, each number and boolean changed, each null filled, each object key
/// renamed, each array shortened. Each comes with a description for failure messages.
pub fn mutations(event: &Value) -> Vec<(String, Value)> {
    let mut paths = Vec::new();
    nodes(event, &mut Vec::new(), &mut paths);
    let mut out = Vec::new();
    for path in paths {
        let original = node_mut(&mut event.clone(), &path).clone();
        let mut mutate = |what: String, change: &dyn Fn(&mut Value)| {
            let mut changed = event.clone();
            change(node_mut(&mut changed, &path));
            out.push((format!("{path:?}: {what}"), changed));
        };
        match &original {
            Value::String(text) => {
                let chars: Vec<char> = text.chars().collect();
                if chars.is_empty() {
                    mutate("filled".into(), &|node| *node = Value::from("x"));
                }
                for position in 0..chars.len() {
                    let mut changed = chars.clone();
                    changed[position] = other_char(chars[position]);
                    let changed: String = changed.into_iter().collect();
                    mutate(format!("char {position}"), &|node| {
                        *node = Value::from(changed.clone())
                    });
                }
            }
            Value::Number(number) => {
                let changed = match (number.as_u64(), number.as_f64()) {
                    (Some(n), _) => Value::from(n ^ 1),
                    (None, Some(f)) => Value::from(f + 1.0),
                    _ => unreachable!("serde_json numbers are u64, i64 or f64"),
                };
                mutate("number".into(), &|node| *node = changed.clone());
            }
            Value::Bool(flag) => {
                let flag = *flag;
                mutate("flipped".into(), &|node| *node = Value::from(!flag));
            }
            Value::Null => mutate("filled".into(), &|node| *node = Value::from("x")),
            Value::Object(map) => {
                for key in map.keys() {
                    mutate(format!("key {key} renamed"), &|node| {
                        let object = node.as_object_mut().unwrap();
                        let child = object.remove(key).unwrap();
                        object.insert(format!("{key}_"), child);
                    });
                }
            }
            Value::Array(items) if !items.is_empty() => {
                mutate("shortened".into(), &|node| {
                    node.as_array_mut().unwrap().pop();
                });
            }
            Value::Array(_) => {}
        }
    }
    out
}
