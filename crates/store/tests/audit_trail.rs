//! The audit trail on both stores: events read back exactly as recorded (so they verify),
//! tampering caught by verification, session summaries and their filters, checkpoints,
//! batches that are stored whole or not at all, and retention.

#[macro_use]
mod common;

use common::Backend;
use serde_json::json;
use sluice_audit::{
    verify_against_checkpoints, verify_session, ChainBuilder, ChainHead, CheckpointSigner,
    Decision, Event, EventBody, LinkProblem, LoginRefused, Protocol, Purged, RecordedPrincipal,
    Request, ResultError, SessionClosed, SessionOpened, StatementResult, Timestamp,
};
use sluice_store::{SessionEnd, SessionFilter, SessionPrincipal, StoreError};

on_both_stores!(
    a_recorded_session_reads_back_exactly_and_verifies,
    a_session_written_in_several_batches_continues_its_chain,
    a_changed_body_in_the_database_fails_verification_at_its_seq,
    an_unreadable_event_is_reported_corrupt_with_its_place,
    deleted_and_reordered_events_fail_verification,
    a_batch_is_stored_whole_or_not_at_all,
    a_seq_the_store_cannot_hold_is_refused_before_anything_is_written,
    sessions_are_summarised_and_filtered,
    session_ids_page_through_every_session_with_events,
    checkpoints_round_trip_and_the_stored_trail_verifies_against_them,
    an_empty_store_has_no_trail,
    purging_removes_expired_sessions_but_keeps_purge_records_and_live_ones,
);

/// 2026-05-01T09:30:00Z plus `seconds`.
fn at(seconds: i64) -> Timestamp {
    Timestamp::from_unix_micros(1_777_627_800_000_000 + seconds * 1_000_000).unwrap()
}

fn principal(subject: &str, display_name: &str) -> RecordedPrincipal {
    RecordedPrincipal {
        provider: "entra".into(),
        subject: subject.into(),
        display_name: display_name.into(),
        roles: vec!["Reports.Reader".into()],
        groups: vec!["g-analytics".into()],
        token_id: Some("uti-42".into()),
    }
}

/// A session as the PostgreSQL data path will record it: opened, an allowed statement and
/// its masked result, a refused statement and its error, closed. Starts `start` seconds in.
fn recorded_session(session_id: &str, subject: &str, connection: &str, start: i64) -> Vec<Event> {
    let mut chain = ChainBuilder::new(session_id);
    let mut events = vec![chain.append(
        at(start),
        EventBody::SessionOpened(SessionOpened {
            principal: principal(subject, &format!("{subject} (agent)")),
            client_addr: "10.0.0.7:51234".into(),
            connection: connection.into(),
            protocol: Protocol::Postgres,
            tls: true,
        }),
    )];
    let select = chain.append(
        at(start + 1),
        EventBody::Request(Request {
            text: "SELECT id, email, total FROM orders WHERE total > 12.5".into(),
            classification: std::sync::Arc::new(json!({
                "statements": [{
                    "kind": "select",
                    "accesses": [{ "action": "select", "object": "public.orders" }],
                    "cost": 0.1,
                    "ratio": 1e-7,
                    "big": 18_446_744_073_709_551_615_u64,
                    "note": "naïve “quotes” \u{1F600}",
                }],
            })),
            decision: Decision::Allow,
            rule: Some("policy readers, allow rule 1".into()),
            approval_id: None,
            parameters: vec![],
        }),
    );
    let select_seq = select.seq;
    events.push(select);
    events.push(chain.append(
        at(start + 2),
        EventBody::Result(StatementResult {
            request_seq: select_seq,
            columns: vec!["id".into(), "email".into(), "total".into()],
            rows: vec![
                vec![
                    Some("1".into()),
                    Some("a***@example.com".into()),
                    Some("19.90".into()),
                ],
                vec![Some("2".into()), None, Some("12.60".into())],
            ],
            truncated: false,
            row_count: 2,
            bytes: 96,
            duration_us: 1_234,
            error: None,
        }),
    ));
    let delete = chain.append(
        at(start + 3),
        EventBody::Request(Request {
            text: "DELETE FROM orders".into(),
            classification: std::sync::Arc::new(json!({ "statements": [{ "kind": "delete" }] })),
            decision: Decision::Deny,
            rule: None,
            approval_id: None,
            parameters: vec![],
        }),
    );
    let delete_seq = delete.seq;
    events.push(delete);
    events.push(chain.append(
        at(start + 3),
        EventBody::Result(StatementResult {
            request_seq: delete_seq,
            columns: vec![],
            rows: vec![],
            truncated: false,
            row_count: 0,
            bytes: 0,
            duration_us: 0,
            error: Some(ResultError {
                code: "42501".into(),
                message: "sluice: DELETE on public.orders is not allowed".into(),
            }),
        }),
    ));
    events.push(chain.append(
        at(start + 4),
        EventBody::SessionClosed(SessionClosed {
            reason: "client left".into(),
        }),
    ));
    events
}

fn refused_login(session_id: &str, start: i64) -> Event {
    ChainBuilder::new(session_id).append(
        at(start),
        EventBody::LoginRefused(LoginRefused {
            client_addr: "10.0.0.9:40000".into(),
            connection: "billing".into(),
            protocol: Protocol::Postgres,
            reason: "the token has expired".into(),
        }),
    )
}

fn a_recorded_session_reads_back_exactly_and_verifies(b: &dyn Backend) {
    let events = recorded_session("s1", "agent-7", "orders", 0);
    b.open().append_events(&events).unwrap();

    // Read back by another opening of the database, as `sluice sessions verify` does.
    let store = b.open();
    let stored = store.session_events("s1").unwrap();
    assert_eq!(stored, events);
    verify_session(&stored).unwrap();
    assert_eq!(store.last_event("s1").unwrap().as_ref(), events.last());
    assert_eq!(store.session_events("nobody").unwrap(), []);
    assert_eq!(store.last_event("nobody").unwrap(), None);

    // The derived columns hold what queries need.
    let derived = b.scalar(
        "SELECT at || '|' || at_us || '|' || kind FROM audit_events \
         WHERE session_id = 's1' AND seq = 1",
    );
    assert_eq!(
        derived,
        format!(
            "2026-05-01T09:30:01.000000Z|{}|request",
            events[1].at.unix_micros()
        )
    );
    // The body is kept as serialized, byte for byte.
    let body = b.scalar("SELECT body FROM audit_events WHERE session_id = 's1' AND seq = 1");
    assert_eq!(body, serde_json::to_string(&events[1].body).unwrap());
}

fn a_session_written_in_several_batches_continues_its_chain(b: &dyn Backend) {
    let store = b.open();
    let events = recorded_session("s1", "agent-7", "orders", 0);
    store.append_events(&events[..2]).unwrap();
    // After a restart the writer resumes from the last stored event.
    let last = store.last_event("s1").unwrap().unwrap();
    let mut chain = ChainBuilder::resume(&last);
    let next = chain.append(
        at(9),
        EventBody::SessionClosed(SessionClosed {
            reason: "gateway shut down".into(),
        }),
    );
    store.append_events(std::slice::from_ref(&next)).unwrap();
    let stored = store.session_events("s1").unwrap();
    assert_eq!(stored.len(), 3);
    verify_session(&stored).unwrap();
}

fn a_changed_body_in_the_database_fails_verification_at_its_seq(b: &dyn Backend) {
    let store = b.open();
    store
        .append_events(&recorded_session("s1", "agent-7", "orders", 0))
        .unwrap();
    b.execute_either(
        "UPDATE audit_events SET body = json_set(body, '$.text', 'SELECT 1') \
         WHERE session_id = 's1' AND seq = 3",
        "UPDATE audit_events SET body = jsonb_set(body::jsonb, '{text}', '\"SELECT 1\"')::text \
         WHERE session_id = 's1' AND seq = 3",
    );
    let link = verify_session(&store.session_events("s1").unwrap()).unwrap_err();
    assert_eq!((link.session_id.as_str(), link.seq), ("s1", 3));
    assert!(
        matches!(link.problem, LinkProblem::Changed { .. }),
        "{link}"
    );
}

fn an_unreadable_event_is_reported_corrupt_with_its_place(b: &dyn Backend) {
    let store = b.open();
    store
        .append_events(&recorded_session("s1", "agent-7", "orders", 0))
        .unwrap();
    b.execute_either(
        "UPDATE audit_events SET body = json_set(body, '$.smuggled', 1) \
         WHERE session_id = 's1' AND seq = 2",
        "UPDATE audit_events SET body = (body::jsonb || '{\"smuggled\": 1}')::text \
         WHERE session_id = 's1' AND seq = 2",
    );
    let error = store.session_events("s1").unwrap_err();
    assert!(matches!(error, StoreError::Corrupt { .. }), "{error:?}");
    assert!(
        error.to_string().contains("event seq 2 of session s1"),
        "{error}"
    );
}

fn deleted_and_reordered_events_fail_verification(b: &dyn Backend) {
    let store = b.open();
    store
        .append_events(&recorded_session("gone", "agent-7", "orders", 0))
        .unwrap();
    store
        .append_events(&recorded_session("swapped", "agent-7", "orders", 0))
        .unwrap();

    b.execute("DELETE FROM audit_events WHERE session_id = 'gone' AND seq = 2");
    let link = verify_session(&store.session_events("gone").unwrap()).unwrap_err();
    assert_eq!((link.session_id.as_str(), link.seq), ("gone", 2));
    assert_eq!(link.problem, LinkProblem::Missing { found: 3 });

    b.execute(
        "UPDATE audit_events SET seq = 100 WHERE session_id = 'swapped' AND seq = 2; \
         UPDATE audit_events SET seq = 2 WHERE session_id = 'swapped' AND seq = 3; \
         UPDATE audit_events SET seq = 3 WHERE session_id = 'swapped' AND seq = 100;",
    );
    let link = verify_session(&store.session_events("swapped").unwrap()).unwrap_err();
    assert_eq!((link.session_id.as_str(), link.seq), ("swapped", 2));
    assert_eq!(link.problem, LinkProblem::Renumbered { recorded_as: 3 });
}

fn a_batch_is_stored_whole_or_not_at_all(b: &dyn Backend) {
    let store = b.open();
    let first = recorded_session("s1", "agent-7", "orders", 0);
    store.append_events(&first[..3]).unwrap();

    // A new session's events, then one that takes a position already stored: the batch
    // fails, and neither the new session's events nor its summary remain.
    let mut batch = recorded_session("s2", "agent-8", "orders", 10);
    batch.push(first[2].clone());
    let error = store.append_events(&batch).unwrap_err();
    match &error {
        StoreError::Duplicate { op, what, .. } => {
            assert_eq!(*op, "append_events");
            assert_eq!(what, "event seq 2 of session s1");
        }
        other => panic!("expected Duplicate, got {other:?}"),
    }
    assert_eq!(store.session_events("s2").unwrap(), []);
    assert_eq!(b.count("audit_events"), 3);
    assert_eq!(b.count("audit_sessions"), 1);

    // The same within one batch: the second event at a position undoes the first too.
    let mut twice = first[3..5].to_vec();
    twice.push(first[3].clone());
    assert!(matches!(
        store.append_events(&twice),
        Err(StoreError::Duplicate { .. })
    ));
    assert_eq!(b.count("audit_events"), 3);

    // Nothing was left half-done: the rest of the session still goes in.
    store.append_events(&first[3..]).unwrap();
    verify_session(&store.session_events("s1").unwrap()).unwrap();
    store.append_events(&[]).unwrap();
}

fn a_seq_the_store_cannot_hold_is_refused_before_anything_is_written(b: &dyn Backend) {
    let store = b.open();
    let mut events = recorded_session("s1", "agent-7", "orders", 0);
    events[5].seq = u64::MAX;
    let error = store.append_events(&events).unwrap_err();
    assert!(
        matches!(error, StoreError::InvalidInput { .. }),
        "{error:?}"
    );
    assert_eq!(store.session_events("s1").unwrap(), []);
}

fn sessions_are_summarised_and_filtered(b: &dyn Backend) {
    let store = b.open();
    let mut events = recorded_session("s-early", "agent-7", "orders", 0);
    events.extend(recorded_session("s-billing", "agent-8", "billing", 100));
    events.push(refused_login("s-refused", 150));
    // Still open: opened and one request, no close yet.
    let open = recorded_session("s-open", "agent-7", "orders", 200);
    events.extend_from_slice(&open[..2]);
    store.append_events(&events).unwrap();

    let ids = |filter: SessionFilter| -> Vec<String> {
        store
            .list_sessions(&filter)
            .unwrap()
            .into_iter()
            .map(|s| s.session_id)
            .collect()
    };
    assert_eq!(
        ids(SessionFilter::default()),
        ["s-early", "s-billing", "s-refused", "s-open"]
    );
    let by_subject = SessionFilter {
        principal: Some("agent-7".into()),
        ..Default::default()
    };
    assert_eq!(ids(by_subject), ["s-early", "s-open"]);
    let by_display_name = SessionFilter {
        principal: Some("agent-8 (agent)".into()),
        ..Default::default()
    };
    assert_eq!(ids(by_display_name), ["s-billing"]);
    let by_connection = SessionFilter {
        connection: Some("billing".into()),
        ..Default::default()
    };
    assert_eq!(ids(by_connection), ["s-billing", "s-refused"]);
    let since = SessionFilter {
        since: Some(at(100)),
        ..Default::default()
    };
    assert_eq!(ids(since), ["s-billing", "s-refused", "s-open"]);
    let all_three = SessionFilter {
        principal: Some("agent-7".into()),
        connection: Some("orders".into()),
        since: Some(at(1)),
    };
    assert_eq!(ids(all_three), ["s-open"]);
    let nobody = SessionFilter {
        principal: Some("agent-9".into()),
        ..Default::default()
    };
    assert_eq!(ids(nobody), Vec::<String>::new());

    let all = store.list_sessions(&SessionFilter::default()).unwrap();
    let early = &all[0];
    assert_eq!(early.opened_at, at(0));
    assert_eq!(
        early.principal,
        Some(SessionPrincipal {
            provider: "entra".into(),
            subject: "agent-7".into(),
            display_name: "agent-7 (agent)".into(),
        })
    );
    assert_eq!(early.connection, "orders");
    assert_eq!(early.protocol, Protocol::Postgres);
    assert_eq!(early.client_addr, "10.0.0.7:51234");
    assert!(early.tls);
    assert_eq!(
        early.end,
        SessionEnd::Closed {
            at: at(4),
            reason: "client left".into()
        }
    );
    assert_eq!(early.events, 6);
    let refused = &all[2];
    assert_eq!(refused.principal, None);
    assert_eq!(
        refused.end,
        SessionEnd::LoginRefused {
            reason: "the token has expired".into()
        }
    );
    assert_eq!(refused.events, 1);
    let still_open = &all[3];
    assert_eq!(still_open.end, SessionEnd::Open);
    assert_eq!(still_open.events, 2);

    // Closing it later updates its summary.
    store.append_events(&open[2..]).unwrap();
    let all = store.list_sessions(&SessionFilter::default()).unwrap();
    assert!(matches!(all[3].end, SessionEnd::Closed { .. }));
    assert_eq!(all[3].events, 6);
}

fn session_ids_page_through_every_session_with_events(b: &dyn Backend) {
    let store = b.open();
    for id in ["c", "a", "e", "b", "d"] {
        store.append_events(&[refused_login(id, 0)]).unwrap();
    }
    assert_eq!(
        store.session_ids(None, 10).unwrap(),
        ["a", "b", "c", "d", "e"]
    );
    let first = store.session_ids(None, 2).unwrap();
    assert_eq!(first, ["a", "b"]);
    let second = store.session_ids(Some("b"), 2).unwrap();
    assert_eq!(second, ["c", "d"]);
    assert_eq!(store.session_ids(Some("d"), 2).unwrap(), ["e"]);
    assert_eq!(
        store.session_ids(Some("e"), 2).unwrap(),
        Vec::<String>::new()
    );

    // Ids sort in byte order on both stores, whatever a database's collation.
    for id in ["é", "B"] {
        store.append_events(&[refused_login(id, 0)]).unwrap();
    }
    assert_eq!(
        store.session_ids(None, 10).unwrap(),
        ["B", "a", "b", "c", "d", "e", "é"]
    );
    assert_eq!(store.session_ids(Some("B"), 1).unwrap(), ["a"]);
    assert_eq!(store.session_ids(Some("e"), 5).unwrap(), ["é"]);
}

fn checkpoints_round_trip_and_the_stored_trail_verifies_against_them(backend: &dyn Backend) {
    let store = backend.open();
    let signer = CheckpointSigner::generate();
    let a = recorded_session("a", "agent-7", "orders", 0);
    let b = recorded_session("b", "agent-8", "billing", 10);
    store.append_events(&a[..3]).unwrap();
    store.append_events(&b).unwrap();
    let early = signer.sign(at(12), vec![ChainHead::of(&a[2]), ChainHead::of(&b[5])]);
    store.put_checkpoint(&early).unwrap();
    store.append_events(&a[3..]).unwrap();
    let late = signer.sign(at(20), vec![ChainHead::of(&a[5])]);
    store.put_checkpoint(&late).unwrap();
    drop(store);

    let store = backend.open();
    let checkpoints = store.checkpoints().unwrap();
    assert_eq!(checkpoints, [early, late]);
    let mut events = Vec::new();
    for id in store.session_ids(None, 100).unwrap() {
        events.extend(store.session_events(&id).unwrap());
    }
    let verified = verify_against_checkpoints(&events, &checkpoints, signer.public_key()).unwrap();
    assert_eq!(verified.sessions, 2);
    assert_eq!(verified.events, 12);
    assert_eq!(verified.checkpoints, 2);
    assert_eq!(verified.unsigned_events, 0);

    // A cut-off tail passes the chain but not the checkpoint.
    backend.execute("DELETE FROM audit_events WHERE session_id = 'a' AND seq = 5");
    let events: Vec<Event> = ["a", "b"]
        .iter()
        .flat_map(|id| store.session_events(id).unwrap())
        .collect();
    let error = verify_against_checkpoints(&events, &checkpoints, signer.public_key()).unwrap_err();
    assert!(error.to_string().contains("session a"), "{error}");
}

fn an_empty_store_has_no_trail(b: &dyn Backend) {
    let store = b.open();
    assert_eq!(store.checkpoints().unwrap(), []);
    assert_eq!(store.session_ids(None, 10).unwrap(), Vec::<String>::new());
    assert_eq!(store.list_sessions(&SessionFilter::default()).unwrap(), []);
}

fn purging_removes_expired_sessions_but_keeps_purge_records_and_live_ones(b: &dyn Backend) {
    let store = b.open();
    let mut events = recorded_session("old", "agent-7", "orders", 0);
    events.extend(recorded_session("old-live", "agent-8", "orders", 10));
    events.extend(recorded_session("recent", "agent-7", "billing", 100));
    events.push(refused_login("old-refused", 20));
    events.push(ChainBuilder::new("purge-record").append(
        at(5),
        EventBody::Purged(Purged {
            before: at(3),
            sessions: 4,
        }),
    ));
    store.append_events(&events).unwrap();

    // Expired: every event before at(50). Kept: a purge record, a live session.
    let removed = store
        .purge_sessions(at(50), &["old-live".to_owned(), "no-such".to_owned()])
        .unwrap();
    assert_eq!(removed, 2);
    assert_eq!(
        store.session_ids(None, 10).unwrap(),
        ["old-live", "purge-record", "recent"]
    );
    assert_eq!(store.session_events("old").unwrap(), []);
    let listed: Vec<String> = store
        .list_sessions(&SessionFilter::default())
        .unwrap()
        .into_iter()
        .map(|s| s.session_id)
        .collect();
    assert_eq!(listed, ["old-live", "recent"]);
    assert_eq!(b.count("audit_events"), 13);
    assert_eq!(b.count("audit_sessions"), 2);

    // Nothing more has expired; a session whose last event is at the cut is not before it.
    assert_eq!(
        store
            .purge_sessions(at(50), &["old-live".to_owned()])
            .unwrap(),
        0
    );
    assert_eq!(store.purge_sessions(at(104), &[]).unwrap(), 1);
    assert_eq!(
        store.session_ids(None, 10).unwrap(),
        ["purge-record", "recent"]
    );
    verify_session(&store.session_events("recent").unwrap()).unwrap();
}
