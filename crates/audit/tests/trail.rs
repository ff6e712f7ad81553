//! A recorded trail as a store or a JSONL export would give it back: every event kind
//! survives the round trip, and every kind of tampering is named where it happened.

mod support;

use serde_json::Value;
use sluice_audit::{
    verify_against_checkpoints, verify_session, ChainHead, CheckpointError, CheckpointSigner,
    Event, EventKind, LinkProblem, VerifyError,
};
use support::{at, held_statement, mutations, psql_session, purge_record, refused_login};

fn to_jsonl(events: &[Event]) -> String {
    events
        .iter()
        .map(|event| serde_json::to_string(event).unwrap() + "\n")
        .collect()
}

fn from_jsonl(text: &str) -> Vec<Event> {
    text.lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn head(events: &[Event]) -> ChainHead {
    ChainHead::of(events.last().unwrap())
}

#[test]
fn every_event_kind_round_trips_through_jsonl_and_still_verifies() {
    let mut events = psql_session("s1", 0);
    events.extend(refused_login("s2", 10));
    events.extend(purge_record("s3", at(0), 20));
    events.extend(held_statement("s4", 30));
    let mut kinds: Vec<EventKind> = events.iter().map(|event| event.body.kind()).collect();
    kinds.sort_by_key(|kind| kind.as_str());
    kinds.dedup();
    assert_eq!(kinds.len(), EventKind::ALL.len(), "every kind is exercised");

    let exported = to_jsonl(&events);
    let imported = from_jsonl(&exported);
    assert_eq!(imported, events);
    assert_eq!(to_jsonl(&imported), exported, "the same bytes again");
    for session in [
        &imported[..7],
        &imported[7..8],
        &imported[8..9],
        &imported[9..],
    ] {
        verify_session(session).unwrap();
    }
}

#[test]
fn the_jsonl_shape_is_an_envelope_with_a_kind_tagged_body() {
    let events = psql_session("s1", 0);
    let line: Value = serde_json::to_value(&events[1]).unwrap();
    assert_eq!(line["session_id"], "s1");
    assert_eq!(line["seq"], 1);
    assert_eq!(line["at"], "2026-05-01T09:30:01.000250Z");
    assert_eq!(line["prev_hash"], Value::from(events[0].hash.clone()));
    assert_eq!(line["body"]["kind"], "request");
    assert_eq!(line["body"]["decision"], "allow");
    assert_eq!(line["body"]["classification"]["cost"], 1.5);
}

#[test]
fn any_single_change_to_a_stored_event_is_caught_at_its_seq() {
    let events = psql_session("s1", 0);
    let mut caught = 0;
    let mut refused_by_the_reader = 0;
    for (seq, event) in events.iter().enumerate() {
        let stored = serde_json::to_value(event).unwrap();
        for (what, changed) in mutations(&stored) {
            let Ok(changed) = serde_json::from_value::<Event>(changed) else {
                // Not an event any more (an unknown field, a malformed time): a store or
                // an import refuses it outright.
                refused_by_the_reader += 1;
                continue;
            };
            let mut tampered = events.clone();
            tampered[seq] = changed;
            let link =
                verify_session(&tampered).expect_err(&format!("seq {seq}, {what}: not caught"));
            assert_eq!(link.seq, seq as u64, "seq {seq}, {what}: {link}");
            caught += 1;
        }
    }
    assert!(caught > 1_000, "only {caught} changes were checked");
    assert!(refused_by_the_reader > 0);
}

#[test]
fn a_deleted_middle_event_is_caught() {
    let mut events = from_jsonl(&to_jsonl(&psql_session("s1", 0)));
    events.remove(3);
    let link = verify_session(&events).unwrap_err();
    assert_eq!(
        (link.seq, &link.problem),
        (3, &LinkProblem::Missing { found: 4 })
    );
    assert_eq!(
        link.to_string(),
        "session s1, seq 3: events are missing: the next event present has seq 4"
    );
}

#[test]
fn two_swapped_events_are_caught() {
    let original = psql_session("s1", 0);

    let mut listed_out_of_order = original.clone();
    listed_out_of_order.swap(1, 2);
    let link = verify_session(&listed_out_of_order).unwrap_err();
    assert_eq!(
        (link.seq, link.problem),
        (1, LinkProblem::OutOfOrder { found: 2 })
    );

    let mut renumbered = original.clone();
    renumbered[1].seq = 2;
    renumbered[2].seq = 1;
    renumbered.swap(1, 2);
    let link = verify_session(&renumbered).unwrap_err();
    assert_eq!(
        (link.seq, link.problem),
        (1, LinkProblem::Renumbered { recorded_as: 2 })
    );
}

#[test]
fn a_truncated_tail_is_caught_by_a_checkpoint() {
    let signer = CheckpointSigner::generate();
    let events = psql_session("s1", 0);
    let checkpoint = signer.sign(at(30), vec![head(&events)]);
    let truncated = &events[..5];
    verify_session(truncated).unwrap();
    let error =
        verify_against_checkpoints(truncated, &[checkpoint], signer.public_key()).unwrap_err();
    assert!(
        matches!(
            error,
            VerifyError::Truncated {
                last_seq: Some(4),
                signed_seq: 6,
                ..
            }
        ),
        "{error}"
    );
}

#[test]
fn a_forged_checkpoint_is_refused() {
    let gateway = CheckpointSigner::generate();
    let events = psql_session("s1", 0);
    let genuine = gateway.sign(at(30), vec![head(&events)]);
    verify_against_checkpoints(
        &events,
        std::slice::from_ref(&genuine),
        gateway.public_key(),
    )
    .unwrap();

    // Signed with another key, claiming the gateway's key id.
    let forger = CheckpointSigner::generate();
    let mut forged = forger.sign(at(30), vec![head(&events[..5])]);
    forged.key_id = genuine.key_id.clone();
    let error =
        verify_against_checkpoints(&events[..5], &[forged], gateway.public_key()).unwrap_err();
    assert!(
        matches!(
            error,
            VerifyError::Checkpoint {
                error: CheckpointError::BadSignature,
                ..
            }
        ),
        "{error}"
    );

    // The genuine checkpoint with its head moved back to hide a cut.
    let mut altered = genuine;
    altered.heads[0] = head(&events[..5]);
    let error =
        verify_against_checkpoints(&events[..5], &[altered], gateway.public_key()).unwrap_err();
    assert!(
        matches!(
            error,
            VerifyError::Checkpoint {
                error: CheckpointError::BadSignature,
                ..
            }
        ),
        "{error}"
    );
}

#[test]
fn verification_passes_after_a_retention_purge_and_catches_deletions_beyond_it() {
    let signer = CheckpointSigner::generate();
    let old = psql_session("old", 0); // events at seconds 0..=6
    let refused = refused_login("refused", 8);
    let recent = psql_session("recent", 100);
    let mut checkpoints =
        vec![signer.sign(at(110), vec![head(&old), head(&refused), head(&recent)])];

    // Retention removes the sessions whose last event is before second 50, records the
    // purge, and signs the record at once.
    let purge = purge_record("purge", at(50), 200);
    checkpoints.push(signer.sign(at(201), vec![head(&purge)]));
    let mut kept = recent.clone();
    kept.extend(purge.clone());
    let exported = from_jsonl(&to_jsonl(&kept));
    let verified =
        verify_against_checkpoints(&exported, &checkpoints, signer.public_key()).unwrap();
    assert_eq!(verified.purged_sessions, 2);
    assert_eq!(verified.sessions, 2);

    // The purge does not excuse removing a session newer than its cut-off.
    let error = verify_against_checkpoints(&purge, &checkpoints, signer.public_key()).unwrap_err();
    assert!(
        matches!(&error, VerifyError::SessionMissing { session_id, .. } if session_id == "recent"),
        "{error}"
    );

    // Nor does a purge record the gateway never signed.
    let forged_purge = purge_record("forged", at(500), 300);
    let mut with_forged = forged_purge;
    with_forged.extend(purge);
    let error =
        verify_against_checkpoints(&with_forged, &checkpoints, signer.public_key()).unwrap_err();
    assert!(
        matches!(&error, VerifyError::SessionMissing { session_id, .. } if session_id == "recent"),
        "{error}"
    );
}
