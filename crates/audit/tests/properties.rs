//! Properties over random chains: what `ChainBuilder` makes verifies and survives JSON,
//! and no single change to any stored event goes unnoticed or is blamed on another event.

mod support;

use proptest::prelude::*;
use serde_json::Value;
use sluice_audit::{
    verify_against_checkpoints, verify_session, ApprovalDecided, ApprovalResolved, ChainBuilder,
    ChainHead, CheckpointSigner, Decision, Event, EventBody, LoginRefused, Protocol, Purged,
    RecordedPrincipal, Request, ResultError, SessionClosed, SessionOpened, StatementResult,
    Timestamp, VerifyError,
};
use sluice_core::ApprovalStatus;
use support::{at, mutations};

/// Any text, escapes and non-ASCII included, kept short.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9 ]{0,8}",
        any::<String>().prop_map(|s| s.chars().take(8).collect()),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (-1e9f64..1e9).prop_map(Value::from),
        text().prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(text(), inner, 0..4)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

fn protocol() -> impl Strategy<Value = Protocol> {
    prop_oneof![
        Just(Protocol::Postgres),
        Just(Protocol::Mysql),
        Just(Protocol::Http),
        Just(Protocol::Kubernetes),
    ]
}

fn timestamp() -> impl Strategy<Value = Timestamp> {
    (0i64..4_000_000_000_000_000).prop_map(|micros| Timestamp::from_unix_micros(micros).unwrap())
}

fn body() -> impl Strategy<Value = EventBody> {
    let opened = (
        (text(), text(), text()),
        prop::collection::vec(text(), 0..3),
        prop::option::of(text()),
        (text(), text(), protocol(), any::<bool>()),
    )
        .prop_map(
            |((provider, subject, display_name), roles, token_id, (addr, conn, protocol, tls))| {
                EventBody::SessionOpened(SessionOpened {
                    principal: RecordedPrincipal {
                        provider,
                        subject,
                        display_name,
                        groups: roles.iter().rev().cloned().collect(),
                        roles,
                        token_id,
                    },
                    client_addr: addr,
                    connection: conn,
                    protocol,
                    tls,
                })
            },
        );
    let refused = (text(), text(), protocol(), text()).prop_map(
        |(client_addr, connection, protocol, reason)| {
            EventBody::LoginRefused(LoginRefused {
                client_addr,
                connection,
                protocol,
                reason,
            })
        },
    );
    let request = (
        text(),
        json_value(),
        prop_oneof![
            Just(Decision::Allow),
            Just(Decision::Deny),
            Just(Decision::Approve)
        ],
        prop::option::of(text()),
        prop::option::of(text()),
        prop::collection::vec(prop::option::of(text()), 0..3),
    )
        .prop_map(
            |(text, classification, decision, rule, approval_id, parameters)| {
                EventBody::Request(Request {
                    text,
                    classification: classification.into(),
                    decision,
                    rule,
                    approval_id,
                    parameters,
                })
            },
        );
    let result = (
        any::<u64>(),
        prop::collection::vec(text(), 0..3),
        prop::collection::vec(prop::collection::vec(prop::option::of(text()), 0..3), 0..3),
        any::<bool>(),
        (any::<u64>(), any::<u64>(), any::<u64>()),
        prop::option::of((text(), text())),
    )
        .prop_map(
            |(request_seq, columns, rows, truncated, (row_count, bytes, duration_us), error)| {
                EventBody::Result(StatementResult {
                    request_seq,
                    columns,
                    rows,
                    truncated,
                    row_count,
                    bytes,
                    duration_us,
                    error: error.map(|(code, message)| ResultError { code, message }),
                })
            },
        );
    let closed = text().prop_map(|reason| EventBody::SessionClosed(SessionClosed { reason }));
    let purged = (timestamp(), any::<u64>())
        .prop_map(|(before, sessions)| EventBody::Purged(Purged { before, sessions }));
    let decided = (
        (text(), text(), text()),
        prop::collection::vec(text(), 0..3),
        prop::option::of(text()),
        (text(), any::<bool>(), text(), timestamp()),
    )
        .prop_map(
            |((provider, subject, display_name), roles, token_id, (id, approve, reason, at))| {
                EventBody::ApprovalDecided(ApprovalDecided {
                    approval_id: id,
                    approver: RecordedPrincipal {
                        provider,
                        subject,
                        display_name,
                        groups: roles.iter().rev().cloned().collect(),
                        roles,
                        token_id,
                    },
                    verdict: if approve {
                        sluice_core::Verdict::Approve
                    } else {
                        sluice_core::Verdict::Deny
                    },
                    reason,
                    decided_at: at,
                })
            },
        );
    let resolved = (text(), prop::sample::select(ApprovalStatus::ALL.to_vec())).prop_map(
        |(approval_id, status)| {
            EventBody::ApprovalResolved(ApprovalResolved {
                approval_id,
                status,
            })
        },
    );
    prop_oneof![opened, refused, request, result, closed, purged, decided, resolved]
}

fn chain() -> impl Strategy<Value = Vec<Event>> {
    prop::collection::vec((timestamp(), body()), 1..6).prop_map(|bodies| {
        let mut chain = ChainBuilder::new(sluice_audit::new_session_id());
        bodies
            .into_iter()
            .map(|(at, body)| chain.append(at, body))
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn the_direct_hash_is_the_generic_canonical_hash(events in chain()) {
        for event in &events {
            prop_assert_eq!(sluice_audit::event_hash(event), sluice_audit::event_hash_by_value(event));
        }
    }

    #[test]
    fn built_chains_verify_and_survive_json(events in chain()) {
        verify_session(&events).unwrap();
        let json = serde_json::to_string(&events).unwrap();
        let back: Vec<Event> = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(serde_json::to_string(&back).unwrap(), json);
        verify_session(&back).unwrap();
    }

    #[test]
    fn any_single_change_is_caught_at_the_changed_seq(
        events in chain(),
        which_event in any::<prop::sample::Index>(),
        which_change in any::<prop::sample::Index>(),
    ) {
        let seq = which_event.index(events.len());
        let stored = serde_json::to_value(&events[seq]).unwrap();
        let changes = mutations(&stored);
        let (what, changed) = &changes[which_change.index(changes.len())];
        // A change that no longer reads as an event is refused by the reader instead.
        if let Ok(changed) = serde_json::from_value::<Event>(changed.clone()) {
            let mut tampered = events.clone();
            tampered[seq] = changed;
            let link = verify_session(&tampered);
            prop_assert!(link.is_err(), "seq {}, {}: not caught", seq, what);
            prop_assert_eq!(link.unwrap_err().seq, seq as u64, "{}", what);
        }
    }

    #[test]
    fn any_cut_tail_is_caught_by_a_checkpoint(events in chain(), keep in any::<prop::sample::Index>()) {
        let signer = CheckpointSigner::from_secret_bytes(&[9; 32]);
        let checkpoint = signer.sign(at(0), vec![ChainHead::of(events.last().unwrap())]);
        let kept = &events[..keep.index(events.len())];
        let error = verify_against_checkpoints(kept, &[checkpoint], signer.public_key());
        let is_truncated_or_missing = matches!(
            error,
            Err(VerifyError::Truncated { .. } | VerifyError::SessionMissing { .. })
        );
        prop_assert!(is_truncated_or_missing, "{:?}", error);
    }
}
