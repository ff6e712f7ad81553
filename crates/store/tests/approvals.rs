//! Approval requests on both stores: read back exactly as recorded, refused when they are
//! not new and pending, listed and filtered, decided (denial, distinct approvers, expiry,
//! a ticket's grant window), redeemed once by their requester for their statement,
//! resolved, swept by expiry and withdrawn, and decided or redeemed once when calls race.

#[macro_use]
mod common;

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use common::{approval_request, approver, requester, Backend, Kind, MINUTE, T0};
use sluice_core::{ApprovalMode, ApprovalStatus, Subjects, Verdict};
use sluice_store::{
    ApprovalDecision, ApprovalFilter, ApprovalRecord, DecideOutcome, Store, StoreError,
};

on_both_stores!(
    a_request_reads_back_exactly,
    a_taken_id_is_refused,
    invalid_requests_are_refused_and_nothing_is_stored,
    requests_are_listed_newest_first_and_filtered,
    a_denial_ends_the_request,
    two_approvals_need_two_distinct_approvers,
    deciding_an_ended_or_unknown_request_records_nothing,
    a_decision_after_the_deadline_expires_the_request,
    an_approved_ticket_is_redeemable_for_its_grant_window,
    a_ticket_is_redeemed_once_by_its_requester_for_its_statement,
    only_approved_tickets_within_their_grant_are_redeemed,
    the_oldest_matching_ticket_is_redeemed_first,
    resolving_ends_only_pending_requests,
    a_recorded_decision_wins_over_a_later_resolution,
    expiry_sweeps_only_pending_requests_that_are_due,
    withdrawing_holds_leaves_tickets_and_decided_requests,
    approvals_survive_reopen,
    an_unreadable_request_is_reported_corrupt_with_its_id,
    concurrent_redemptions_redeem_a_ticket_once,
    concurrent_decisions_resolve_a_request_once,
    a_call_that_changes_nothing_leaves_nothing_locked,
);

fn hold(id: &str, requested_at: i64) -> ApprovalRecord {
    approval_request(id, ApprovalMode::Hold, requested_at)
}

fn ticket(id: &str, requested_at: i64) -> ApprovalRecord {
    approval_request(id, ApprovalMode::Ticket, requested_at)
}

fn decision(who: &str, verdict: Verdict, at: i64) -> ApprovalDecision {
    ApprovalDecision {
        approver: approver(who),
        verdict,
        reason: format!("{who}: {} (checked the ticket)", verdict.as_str()),
        at,
    }
}

fn approve(who: &str, at: i64) -> ApprovalDecision {
    decision(who, Verdict::Approve, at)
}

fn deny(who: &str, at: i64) -> ApprovalDecision {
    decision(who, Verdict::Deny, at)
}

fn recorded(outcome: DecideOutcome) -> ApprovalRecord {
    match outcome {
        DecideOutcome::Recorded(record) => record,
        other => panic!("expected Recorded, got {other:?}"),
    }
}

fn not_pending(outcome: DecideOutcome) -> ApprovalRecord {
    match outcome {
        DecideOutcome::NotPending(record) => record,
        other => panic!("expected NotPending, got {other:?}"),
    }
}

fn ids(records: &[ApprovalRecord]) -> Vec<&str> {
    records.iter().map(|r| r.id.as_str()).collect()
}

/// A ticket inserted and approved by alice at `T0 + 1 minute`.
fn approved_ticket(store: &dyn Store, id: &str, requested_at: i64) -> ApprovalRecord {
    store.insert_approval(&ticket(id, requested_at)).unwrap();
    recorded(
        store
            .decide_approval(id, &approve("tid-1/alice", requested_at + MINUTE))
            .unwrap(),
    )
}

/// Redeems as the agent, for the request fixture's connection and fingerprint.
fn redeem(store: &dyn Store, at: i64) -> Option<ApprovalRecord> {
    let agent = requester();
    store
        .redeem_ticket(
            &agent.provider,
            &agent.subject,
            "orders",
            "fp-delete-orders",
            at,
        )
        .unwrap()
}

fn a_request_reads_back_exactly(b: &dyn Backend) {
    let store = b.open();
    let full = ticket("apr_full", T0);
    let mut bare = hold("apr_bare", T0 + 1);
    bare.session_id = None;
    bare.parameters = vec![];
    bare.statement = "TRUNCATE orders; -- naïve “quotes” \u{1F600}\n".into();
    // Escaped in the JSON column, so kept by both stores.
    bare.requester.display_name = "agent\0with a NUL".into();
    bare.requester.roles.clear();
    bare.requester.groups.clear();
    bare.requester.tenant_id = None;
    bare.requester.token_id = None;
    bare.requester.expires_at = None;
    bare.approvers = Subjects::default();
    bare.min_approvals = u32::MAX;
    bare.requested_at = i64::MIN;
    bare.expires_at = i64::MAX;
    for r in [&full, &bare] {
        store.insert_approval(r).unwrap();
    }
    assert_eq!(store.approval("apr_full").unwrap(), Some(full.clone()));
    assert_eq!(store.approval("apr_bare").unwrap(), Some(bare));
    assert_eq!(store.approval("apr_none").unwrap(), None);
    assert_eq!(store.approval("").unwrap(), None);

    // The requester's provider and subject are kept for redeeming, beside the principal.
    assert_eq!(
        b.scalar(
            "SELECT requester_provider || ' ' || requester_subject FROM approvals \
             WHERE id = 'apr_full'"
        ),
        "entra tid-1/agent-oid"
    );

    // Decisions come back with their approvers whole, in the order they were recorded.
    let mut two = full.clone();
    two.id = "apr_two".into();
    two.min_approvals = 2;
    store.insert_approval(&two).unwrap();
    let first = approve("tid-1/bob", T0 + MINUTE);
    let second = approve("tid-1/alice", T0 + 2 * MINUTE);
    store.decide_approval("apr_two", &first).unwrap();
    let decided = recorded(store.decide_approval("apr_two", &second).unwrap());
    assert_eq!(decided.decisions, [first, second]);
    assert_eq!(store.approval("apr_two").unwrap(), Some(decided));
}

fn a_taken_id_is_refused(b: &dyn Backend) {
    let store = b.open();
    let first = hold("apr_1", T0);
    store.insert_approval(&first).unwrap();
    let mut other = ticket("apr_1", T0 + MINUTE);
    other.fingerprint = "fp-other".into();
    let err = store.insert_approval(&other).unwrap_err();
    match &err {
        StoreError::Duplicate { op, db, what } => {
            assert_eq!(*op, "insert_approval");
            assert!(db.contains(&b.shown_as()), "{db}");
            assert!(what.contains("apr_1"), "{what}");
        }
        other => panic!("expected Duplicate, got {other:?}"),
    }
    assert!(!err.is_unavailable());
    assert_eq!(store.approval("apr_1").unwrap(), Some(first));
    assert_eq!(b.count("approvals"), 1);
}

/// A change that makes a request unfit to insert.
type Spoil = fn(&mut ApprovalRecord);

fn invalid_requests_are_refused_and_nothing_is_stored(b: &dyn Backend) {
    let store = b.open();
    let cases: [(&str, Spoil); 9] = [
        ("min_approvals", |r| r.min_approvals = 0),
        ("fingerprint", |r| r.fingerprint.clear()),
        ("connection", |r| r.connection.clear()),
        ("id is empty", |r| r.id.clear()),
        ("must be pending, not approved", |r| {
            r.status = ApprovalStatus::Approved
        }),
        ("must be pending, not expired", |r| {
            r.status = ApprovalStatus::Expired
        }),
        ("no decisions", |r| {
            r.decisions.push(approve("tid-1/alice", T0))
        }),
        ("resolved_at", |r| r.resolved_at = Some(T0)),
        ("redeemed_at", |r| r.redeemed_at = Some(T0)),
    ];
    for (expected, spoil) in cases {
        let mut r = ticket("apr_bad", T0);
        spoil(&mut r);
        let err = store.insert_approval(&r).unwrap_err();
        match &err {
            StoreError::InvalidInput { op, db, reason } => {
                assert_eq!(*op, "insert_approval");
                assert!(db.contains(&b.shown_as()), "{db}");
                assert!(reason.contains(expected), "{expected}: {reason}");
            }
            other => panic!("{expected}: expected InvalidInput, got {other:?}"),
        }
        assert!(!err.is_unavailable());
    }
    assert_eq!(b.count("approvals"), 0);
    assert_eq!(
        store.list_approvals(&ApprovalFilter::default()).unwrap(),
        []
    );
}

fn requests_are_listed_newest_first_and_filtered(b: &dyn Backend) {
    let store = b.open();
    assert_eq!(
        store.list_approvals(&ApprovalFilter::default()).unwrap(),
        []
    );
    // Inserted out of order; "apr_B" and "apr_b" were made at the same time, and sort
    // by id in byte order ("B" < "b"), descending.
    let mut on_billing = hold("apr_c", T0 + 3 * MINUTE);
    on_billing.connection = "billing".into();
    for r in [
        &hold("apr_b", T0 + 2 * MINUTE),
        &ticket("apr_a", T0 + MINUTE),
        &on_billing,
        &hold("apr_B", T0 + 2 * MINUTE),
        &ticket("apr_0", T0),
    ] {
        store.insert_approval(r).unwrap();
    }
    store
        .decide_approval("apr_a", &approve("tid-1/alice", T0 + 4 * MINUTE))
        .unwrap();
    store
        .decide_approval("apr_B", &deny("tid-1/alice", T0 + 4 * MINUTE))
        .unwrap();

    let all = store.list_approvals(&ApprovalFilter::default()).unwrap();
    assert_eq!(ids(&all), ["apr_c", "apr_b", "apr_B", "apr_a", "apr_0"]);
    // Each with its decisions, as read one by one.
    for r in &all {
        assert_eq!(store.approval(&r.id).unwrap().as_ref(), Some(r));
    }
    assert_eq!(all[3].decisions.len(), 1);
    assert_eq!(all[3].status, ApprovalStatus::Approved);

    let filter = |status: Option<ApprovalStatus>, connection: Option<&str>, limit| {
        let filter = ApprovalFilter {
            status,
            connection: connection.map(str::to_owned),
            limit,
        };
        ids(&store.list_approvals(&filter).unwrap())
            .into_iter()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let pending = Some(ApprovalStatus::Pending);
    assert_eq!(filter(pending, None, None), ["apr_c", "apr_b", "apr_0"]);
    assert_eq!(filter(Some(ApprovalStatus::Denied), None, None), ["apr_B"]);
    assert!(filter(Some(ApprovalStatus::Redeemed), None, None).is_empty());
    assert_eq!(filter(None, Some("billing"), None), ["apr_c"]);
    assert_eq!(filter(pending, Some("orders"), None), ["apr_b", "apr_0"]);
    assert!(filter(None, Some("nowhere"), None).is_empty());
    assert_eq!(filter(None, None, Some(2)), ["apr_c", "apr_b"]);
    assert_eq!(filter(pending, Some("orders"), Some(1)), ["apr_b"]);
    assert!(filter(None, None, Some(0)).is_empty());
    assert_eq!(filter(None, None, Some(usize::MAX)).len(), 5);
}

fn a_denial_ends_the_request(b: &dyn Backend) {
    let store = b.open();
    let mut r = hold("apr_1", T0);
    r.min_approvals = 2;
    store.insert_approval(&r).unwrap();

    let yes = approve("tid-1/alice", T0 + MINUTE);
    let after_yes = recorded(store.decide_approval("apr_1", &yes).unwrap());
    assert_eq!(after_yes.status, ApprovalStatus::Pending);
    assert_eq!(after_yes.resolved_at, None);

    let no = deny("tid-1/bob", T0 + 2 * MINUTE);
    let denied = recorded(store.decide_approval("apr_1", &no).unwrap());
    assert_eq!(denied.status, ApprovalStatus::Denied);
    assert_eq!(denied.resolved_at, Some(T0 + 2 * MINUTE));
    assert_eq!(denied.grant_expires_at, None);
    assert_eq!(denied.decisions, [yes, no]);
    assert_eq!(store.approval("apr_1").unwrap(), Some(denied.clone()));

    // Nothing more is recorded: not a third approver's approval, which would otherwise
    // have made two.
    let late = approve("tid-1/carol", T0 + 3 * MINUTE);
    assert_eq!(
        not_pending(store.decide_approval("apr_1", &late).unwrap()),
        denied
    );
    assert_eq!(b.count("approval_decisions"), 2);
}

fn two_approvals_need_two_distinct_approvers(b: &dyn Backend) {
    let store = b.open();
    let mut r = hold("apr_1", T0);
    r.min_approvals = 2;
    store.insert_approval(&r).unwrap();

    let first = approve("tid-1/alice", T0 + MINUTE);
    let pending = recorded(store.decide_approval("apr_1", &first).unwrap());
    assert_eq!(pending.status, ApprovalStatus::Pending);

    // The same approver (provider and subject) again, whatever the verdict or the rest of
    // the principal: refused, nothing recorded.
    let mut again = approve("tid-1/alice", T0 + 2 * MINUTE);
    again.approver.display_name = "Alice, again".into();
    again.approver.roles.push("Admin".into());
    for d in [again, deny("tid-1/alice", T0 + 2 * MINUTE)] {
        match store.decide_approval("apr_1", &d).unwrap() {
            DecideOutcome::AlreadyDecided(current) => assert_eq!(current, pending),
            other => panic!("expected AlreadyDecided, got {other:?}"),
        }
    }
    assert_eq!(store.approval("apr_1").unwrap(), Some(pending));

    // The same subject under another provider is another approver.
    let mut elsewhere = approve("tid-1/alice", T0 + 3 * MINUTE);
    elsewhere.approver.provider = "okta".into();
    let approved = recorded(store.decide_approval("apr_1", &elsewhere).unwrap());
    assert_eq!(approved.status, ApprovalStatus::Approved);
    assert_eq!(approved.resolved_at, Some(T0 + 3 * MINUTE));
    // A held request has no grant window.
    assert_eq!(approved.grant_expires_at, None);
    assert_eq!(approved.decisions, [first, elsewhere]);
    assert_eq!(store.approval("apr_1").unwrap(), Some(approved));
}

fn deciding_an_ended_or_unknown_request_records_nothing(b: &dyn Backend) {
    let store = b.open();
    assert_eq!(
        store
            .decide_approval("apr_none", &approve("tid-1/alice", T0))
            .unwrap(),
        DecideOutcome::NotFound
    );
    let approved = approved_ticket(&*store, "apr_1", T0);
    assert_eq!(approved.status, ApprovalStatus::Approved);
    for d in [
        approve("tid-1/bob", T0 + 2 * MINUTE),
        deny("tid-1/bob", T0 + 2 * MINUTE),
        // Also the approver who approved it.
        deny("tid-1/alice", T0 + 2 * MINUTE),
    ] {
        assert_eq!(
            not_pending(store.decide_approval("apr_1", &d).unwrap()),
            approved
        );
    }
    store.insert_approval(&hold("apr_2", T0)).unwrap();
    let withdrawn = store
        .resolve_approval("apr_2", ApprovalStatus::Withdrawn, T0 + MINUTE)
        .unwrap()
        .unwrap();
    assert_eq!(
        not_pending(
            store
                .decide_approval("apr_2", &approve("tid-1/alice", T0 + 2 * MINUTE))
                .unwrap()
        ),
        withdrawn
    );
    assert_eq!(b.count("approval_decisions"), 1);
}

fn a_decision_after_the_deadline_expires_the_request(b: &dyn Backend) {
    let store = b.open();
    let r = hold("apr_late", T0);
    store.insert_approval(&r).unwrap();
    let late = approve("tid-1/alice", r.expires_at + 1);
    let expired = not_pending(store.decide_approval("apr_late", &late).unwrap());
    assert_eq!(expired.status, ApprovalStatus::Expired);
    assert_eq!(expired.resolved_at, Some(r.expires_at + 1));
    assert_eq!(expired.decisions, []);
    assert_eq!(store.approval("apr_late").unwrap(), Some(expired.clone()));
    // It stays expired.
    let later = approve("tid-1/bob", r.expires_at - 1);
    assert_eq!(
        not_pending(store.decide_approval("apr_late", &later).unwrap()),
        expired
    );
    assert_eq!(b.count("approval_decisions"), 0);

    // A decision at the deadline itself is in time.
    let r = hold("apr_just", T0);
    store.insert_approval(&r).unwrap();
    let just = approve("tid-1/alice", r.expires_at);
    let approved = recorded(store.decide_approval("apr_just", &just).unwrap());
    assert_eq!(approved.status, ApprovalStatus::Approved);
    assert_eq!(approved.resolved_at, Some(r.expires_at));
}

fn an_approved_ticket_is_redeemable_for_its_grant_window(b: &dyn Backend) {
    let store = b.open();
    let mut r = ticket("apr_1", T0);
    r.min_approvals = 2;
    store.insert_approval(&r).unwrap();
    let first = recorded(
        store
            .decide_approval("apr_1", &approve("tid-1/alice", T0 + MINUTE))
            .unwrap(),
    );
    // Not before it is approved.
    assert_eq!(first.grant_expires_at, None);
    let approved = recorded(
        store
            .decide_approval("apr_1", &approve("tid-1/bob", T0 + 3 * MINUTE))
            .unwrap(),
    );
    assert_eq!(approved.status, ApprovalStatus::Approved);
    assert_eq!(approved.resolved_at, Some(T0 + 3 * MINUTE));
    // From the approval, not from the request.
    assert_eq!(approved.grant_expires_at, Some(T0 + 13 * MINUTE));
    assert_eq!(approved.grant_window, Some(10 * MINUTE));
    assert_eq!(approved.redeemed_at, None);

    // A denied ticket gets no grant.
    store.insert_approval(&ticket("apr_2", T0)).unwrap();
    let denied = recorded(
        store
            .decide_approval("apr_2", &deny("tid-1/alice", T0 + MINUTE))
            .unwrap(),
    );
    assert_eq!(denied.grant_expires_at, None);
}

fn a_ticket_is_redeemed_once_by_its_requester_for_its_statement(b: &dyn Backend) {
    let store = b.open();
    let approved = approved_ticket(&*store, "apr_1", T0);
    let grant_ends = approved.grant_expires_at.unwrap();
    let at = grant_ends - 1;
    let agent = requester();
    for (provider, subject, connection, fingerprint) in [
        ("entra", "tid-1/other-agent", "orders", "fp-delete-orders"),
        ("okta", agent.subject.as_str(), "orders", "fp-delete-orders"),
        (
            "entra",
            agent.subject.as_str(),
            "billing",
            "fp-delete-orders",
        ),
        (
            "entra",
            agent.subject.as_str(),
            "orders",
            "fp-delete-customers",
        ),
        ("", "", "", ""),
    ] {
        assert_eq!(
            store
                .redeem_ticket(provider, subject, connection, fingerprint, at)
                .unwrap(),
            None,
            "{provider} {subject} {connection} {fingerprint}"
        );
    }
    assert_eq!(store.approval("apr_1").unwrap(), Some(approved.clone()));

    let redeemed = redeem(&*store, at).unwrap();
    let mut expected = approved;
    expected.status = ApprovalStatus::Redeemed;
    expected.redeemed_at = Some(at);
    assert_eq!(redeemed, expected);
    assert_eq!(store.approval("apr_1").unwrap(), Some(expected));
    // Once.
    assert_eq!(redeem(&*store, at), None);
}

fn only_approved_tickets_within_their_grant_are_redeemed(b: &dyn Backend) {
    let store = b.open();
    // Approved at T0 + 1 minute: the grant runs until T0 + 11 minutes, exclusive.
    let approved = approved_ticket(&*store, "apr_1", T0);
    let grant_ends = approved.grant_expires_at.unwrap();
    // Requests for the same statement by the same agent that are not approved tickets.
    store.insert_approval(&ticket("apr_pending", T0)).unwrap();
    store.insert_approval(&ticket("apr_denied", T0)).unwrap();
    store
        .decide_approval("apr_denied", &deny("tid-1/alice", T0 + MINUTE))
        .unwrap();
    store.insert_approval(&hold("apr_hold", T0)).unwrap();
    let hold_approved = recorded(
        store
            .decide_approval("apr_hold", &approve("tid-1/alice", T0 + MINUTE))
            .unwrap(),
    );
    assert_eq!(hold_approved.status, ApprovalStatus::Approved);
    // Rows given a grant behind the store's back are still not approved tickets.
    b.execute(&format!(
        "UPDATE approvals SET grant_expires_at = {} WHERE id <> 'apr_1'",
        T0 + 60 * MINUTE
    ));

    assert_eq!(redeem(&*store, grant_ends), None);
    assert_eq!(redeem(&*store, grant_ends + MINUTE), None);
    for id in ["apr_1", "apr_pending", "apr_denied", "apr_hold"] {
        let r = store.approval(id).unwrap().unwrap();
        assert_ne!(r.status, ApprovalStatus::Redeemed, "{id}");
        assert_eq!(r.redeemed_at, None, "{id}");
    }
    // Within its grant, the approved ticket is there for the taking.
    assert_eq!(
        redeem(&*store, grant_ends - 1).map(|r| r.id),
        Some("apr_1".into())
    );
    assert_eq!(redeem(&*store, grant_ends - 1), None);
}

fn the_oldest_matching_ticket_is_redeemed_first(b: &dyn Backend) {
    let store = b.open();
    approved_ticket(&*store, "apr_newer", T0 + MINUTE);
    approved_ticket(&*store, "apr_older", T0);
    let at = T0 + 5 * MINUTE;
    assert_eq!(redeem(&*store, at).map(|r| r.id), Some("apr_older".into()));
    assert_eq!(redeem(&*store, at).map(|r| r.id), Some("apr_newer".into()));
    assert_eq!(redeem(&*store, at), None);
}

fn resolving_ends_only_pending_requests(b: &dyn Backend) {
    let store = b.open();
    store.insert_approval(&hold("apr_w", T0)).unwrap();
    store.insert_approval(&ticket("apr_e", T0)).unwrap();

    let withdrawn = store
        .resolve_approval("apr_w", ApprovalStatus::Withdrawn, T0 + MINUTE)
        .unwrap()
        .unwrap();
    let mut expected = hold("apr_w", T0);
    expected.status = ApprovalStatus::Withdrawn;
    expected.resolved_at = Some(T0 + MINUTE);
    assert_eq!(withdrawn, expected);
    assert_eq!(store.approval("apr_w").unwrap(), Some(expected.clone()));

    let expired = store
        .resolve_approval("apr_e", ApprovalStatus::Expired, T0 + 2 * MINUTE)
        .unwrap()
        .unwrap();
    assert_eq!(expired.status, ApprovalStatus::Expired);
    assert_eq!(expired.resolved_at, Some(T0 + 2 * MINUTE));

    // Once ended, a second resolution changes nothing and gives it back as it stands.
    assert_eq!(
        store
            .resolve_approval("apr_w", ApprovalStatus::Expired, T0 + 3 * MINUTE)
            .unwrap(),
        Some(expected)
    );
    assert_eq!(
        store
            .resolve_approval("apr_none", ApprovalStatus::Withdrawn, T0)
            .unwrap(),
        None
    );

    // Only expiry and withdrawal end a request this way.
    store.insert_approval(&hold("apr_p", T0)).unwrap();
    for to in [
        ApprovalStatus::Pending,
        ApprovalStatus::Approved,
        ApprovalStatus::Denied,
        ApprovalStatus::Redeemed,
    ] {
        let err = store
            .resolve_approval("apr_p", to, T0 + MINUTE)
            .unwrap_err();
        match &err {
            StoreError::InvalidInput { op, reason, .. } => {
                assert_eq!(*op, "resolve_approval");
                assert!(reason.contains(to.as_str()), "{reason}");
            }
            other => panic!("{to}: expected InvalidInput, got {other:?}"),
        }
    }
    assert_eq!(store.approval("apr_p").unwrap(), Some(hold("apr_p", T0)));
}

fn a_recorded_decision_wins_over_a_later_resolution(b: &dyn Backend) {
    let store = b.open();
    let approved = approved_ticket(&*store, "apr_1", T0);
    for to in [ApprovalStatus::Withdrawn, ApprovalStatus::Expired] {
        assert_eq!(
            store
                .resolve_approval("apr_1", to, T0 + 2 * MINUTE)
                .unwrap(),
            Some(approved.clone())
        );
    }
    // The same for a denial, and for a redeemed ticket.
    store.insert_approval(&hold("apr_2", T0)).unwrap();
    let denied = recorded(
        store
            .decide_approval("apr_2", &deny("tid-1/bob", T0 + MINUTE))
            .unwrap(),
    );
    assert_eq!(
        store
            .resolve_approval("apr_2", ApprovalStatus::Withdrawn, T0 + 2 * MINUTE)
            .unwrap(),
        Some(denied)
    );
    let redeemed = redeem(&*store, T0 + 2 * MINUTE).unwrap();
    assert_eq!(
        store
            .resolve_approval("apr_1", ApprovalStatus::Expired, T0 + 3 * MINUTE)
            .unwrap(),
        Some(redeemed)
    );
}

fn expiry_sweeps_only_pending_requests_that_are_due(b: &dyn Backend) {
    let store = b.open();
    let now = T0 + 20 * MINUTE;
    // Expire at T0 + 15 min and T0 + 16 min (due), T0 + 20 min (due: at `now`),
    // T0 + 21 min (not yet).
    let due_long_ago = hold("apr_a", T0);
    let due = ticket("apr_b", T0 + MINUTE);
    let mut due_now = hold("apr_c", T0 + 2 * MINUTE);
    due_now.expires_at = now;
    let not_yet = hold("apr_d", T0 + 6 * MINUTE);
    for r in [&due_now, &not_yet, &due, &due_long_ago] {
        store.insert_approval(r).unwrap();
    }
    // Due, but already decided.
    approved_ticket(&*store, "apr_approved", T0);
    store.insert_approval(&hold("apr_withdrawn", T0)).unwrap();
    store
        .resolve_approval("apr_withdrawn", ApprovalStatus::Withdrawn, T0 + MINUTE)
        .unwrap();

    let expired = store.expire_due(now).unwrap();
    assert_eq!(ids(&expired), ["apr_a", "apr_b", "apr_c"]);
    for (r, before) in expired.iter().zip([&due_long_ago, &due, &due_now]) {
        let mut expected = before.clone();
        expected.status = ApprovalStatus::Expired;
        expected.resolved_at = Some(now);
        assert_eq!(r, &expected);
        assert_eq!(store.approval(&r.id).unwrap().as_ref(), Some(r));
    }
    for (id, status) in [
        ("apr_d", ApprovalStatus::Pending),
        ("apr_approved", ApprovalStatus::Approved),
        ("apr_withdrawn", ApprovalStatus::Withdrawn),
    ] {
        assert_eq!(store.approval(id).unwrap().unwrap().status, status, "{id}");
    }
    // Swept once.
    assert_eq!(store.expire_due(now).unwrap(), []);
    assert_eq!(
        ids(&store.expire_due(not_yet.expires_at).unwrap()),
        ["apr_d"]
    );
}

fn withdrawing_holds_leaves_tickets_and_decided_requests(b: &dyn Backend) {
    let store = b.open();
    for r in [
        hold("apr_h2", T0 + MINUTE),
        hold("apr_h1", T0),
        ticket("apr_t", T0),
        hold("apr_approved", T0),
        hold("apr_denied", T0),
    ] {
        store.insert_approval(&r).unwrap();
    }
    store
        .decide_approval("apr_approved", &approve("tid-1/alice", T0 + MINUTE))
        .unwrap();
    store
        .decide_approval("apr_denied", &deny("tid-1/alice", T0 + MINUTE))
        .unwrap();

    let at = T0 + 2 * MINUTE;
    let withdrawn = store.withdraw_pending_holds(at).unwrap();
    assert_eq!(ids(&withdrawn), ["apr_h1", "apr_h2"]);
    for r in &withdrawn {
        assert_eq!(r.status, ApprovalStatus::Withdrawn);
        assert_eq!(r.resolved_at, Some(at));
        assert_eq!(store.approval(&r.id).unwrap().as_ref(), Some(r));
    }
    for (id, status) in [
        ("apr_t", ApprovalStatus::Pending),
        ("apr_approved", ApprovalStatus::Approved),
        ("apr_denied", ApprovalStatus::Denied),
    ] {
        assert_eq!(store.approval(id).unwrap().unwrap().status, status, "{id}");
    }
    assert_eq!(store.withdraw_pending_holds(at).unwrap(), []);
}

fn approvals_survive_reopen(b: &dyn Backend) {
    let mut r = ticket("apr_1", T0);
    r.min_approvals = 2;
    b.open().insert_approval(&r).unwrap();
    let first = approve("tid-1/alice", T0 + MINUTE);
    b.open().decide_approval("apr_1", &first).unwrap();
    let approved = recorded(
        b.open()
            .decide_approval("apr_1", &approve("tid-1/bob", T0 + 2 * MINUTE))
            .unwrap(),
    );
    assert_eq!(b.open().approval("apr_1").unwrap(), Some(approved.clone()));
    let redeemed = redeem(&*b.open(), T0 + 3 * MINUTE).unwrap();
    assert_eq!(redeemed.decisions, approved.decisions);
    let store = b.open();
    assert_eq!(store.approval("apr_1").unwrap(), Some(redeemed));
    assert_eq!(redeem(&*store, T0 + 3 * MINUTE), None);
}

fn an_unreadable_request_is_reported_corrupt_with_its_id(b: &dyn Backend) {
    let store = b.open();
    store.insert_approval(&hold("apr_1", T0)).unwrap();
    store
        .decide_approval("apr_1", &deny("tid-1/alice", T0 + MINUTE))
        .unwrap();
    // Valid JSON objects, as the schema checks, but not what the store wrote.
    let check = |what: &str| {
        let err = store.approval("apr_1").unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
        assert!(!err.is_unavailable());
        assert_eq!(err.operation(), Some("approval"));
        let msg = err.to_string();
        assert!(msg.contains("apr_1") && msg.contains(what), "{msg}");
        let err = store
            .list_approvals(&ApprovalFilter::default())
            .unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    };
    b.execute("UPDATE approvals SET approvers = '{\"everyone\": true}' WHERE id = 'apr_1'");
    check("approvers");
    b.execute(
        "UPDATE approvals SET approvers = '{}', requester = '{\"subject\": 1}' \
         WHERE id = 'apr_1'",
    );
    check("requester");
    b.execute(&format!(
        "UPDATE approvals SET requester = '{}' WHERE id = 'apr_1'",
        serde_json::to_string(&requester()).unwrap()
    ));
    b.execute("UPDATE approval_decisions SET approver = '{}' WHERE approval_id = 'apr_1'");
    check("decision 1");
}

/// Several gateways (a store each, as many connections) race to redeem one ticket.
fn concurrent_redemptions_redeem_a_ticket_once(b: &dyn Backend) {
    const RACERS: usize = 6;
    approved_ticket(&*b.open(), "apr_1", T0);
    let stores: Vec<Arc<dyn Store>> = (0..RACERS).map(|_| b.open()).collect();
    let start = Barrier::new(RACERS);
    let redeemed: Vec<Option<ApprovalRecord>> = thread::scope(|s| {
        let racers: Vec<_> = stores
            .iter()
            .map(|store| {
                let start = &start;
                s.spawn(move || {
                    start.wait();
                    redeem(&**store, T0 + 2 * MINUTE)
                })
            })
            .collect();
        racers.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let winners: Vec<_> = redeemed.iter().flatten().collect();
    assert_eq!(winners.len(), 1, "{redeemed:?}");
    assert_eq!(winners[0].status, ApprovalStatus::Redeemed);
    assert_eq!(
        b.open().approval("apr_1").unwrap().as_ref(),
        Some(winners[0])
    );
}

/// Several approvers, each through a gateway of their own, decide a request that needs
/// one approval at the same time: exactly one decision is recorded.
fn concurrent_decisions_resolve_a_request_once(b: &dyn Backend) {
    const RACERS: usize = 6;
    b.open().insert_approval(&ticket("apr_1", T0)).unwrap();
    let stores: Vec<Arc<dyn Store>> = (0..RACERS).map(|_| b.open()).collect();
    let start = Barrier::new(RACERS);
    let outcomes: Vec<DecideOutcome> = thread::scope(|s| {
        let racers: Vec<_> = stores
            .iter()
            .enumerate()
            .map(|(i, store)| {
                let start = &start;
                s.spawn(move || {
                    let verdict = if i % 2 == 0 { approve } else { deny };
                    let d = verdict(&format!("tid-1/approver-{i}"), T0 + MINUTE);
                    start.wait();
                    store.decide_approval("apr_1", &d).unwrap()
                })
            })
            .collect();
        racers.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let decided: Vec<&ApprovalRecord> = outcomes
        .iter()
        .filter_map(|o| match o {
            DecideOutcome::Recorded(r) => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(decided.len(), 1, "{outcomes:?}");
    let decided = decided[0];
    assert_ne!(decided.status, ApprovalStatus::Pending);
    assert_eq!(decided.decisions.len(), 1);
    for outcome in &outcomes {
        match outcome {
            DecideOutcome::Recorded(_) => {}
            DecideOutcome::NotPending(r) => assert_eq!(r, decided),
            other => panic!("expected NotPending, got {other:?}"),
        }
    }
    assert_eq!(b.count("approval_decisions"), 1);
    assert_eq!(b.open().approval("apr_1").unwrap().as_ref(), Some(decided));
}

/// After a call returns, the store holds no transaction open: with PostgreSQL no session
/// of the database is left idle in a transaction (with its row locks), with SQLite
/// another connection takes the write lock at once.
fn assert_nothing_held(b: &dyn Backend, after: &str) {
    match b.kind() {
        Kind::Sqlite => b.execute("BEGIN IMMEDIATE; ROLLBACK;"),
        Kind::Postgres => assert_eq!(
            b.scalar(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                 AND state LIKE 'idle in transaction%'"
            ),
            "0",
            "a transaction is left open after {after}"
        ),
    }
}

/// Every way a call can end without changing anything ends its transaction before it
/// returns, not when its gateway next calls the store: until then, another gateway
/// deciding or redeeming the same request would wait for its lock.
fn a_call_that_changes_nothing_leaves_nothing_locked(b: &dyn Backend) {
    let (store, other) = (b.open(), b.open());
    let approved = approved_ticket(&*store, "apr_approved", T0);
    let mut two = ticket("apr_two", T0);
    two.min_approvals = 2;
    store.insert_approval(&two).unwrap();
    store
        .decide_approval("apr_two", &approve("tid-1/alice", T0 + MINUTE))
        .unwrap();
    store.insert_approval(&hold("apr_pending", T0)).unwrap();
    assert_nothing_held(b, "the set-up");

    let outcome = store
        .decide_approval("apr_approved", &deny("tid-1/bob", T0 + 2 * MINUTE))
        .unwrap();
    assert_eq!(not_pending(outcome), approved);
    assert_nothing_held(b, "a decision on an ended request");

    let outcome = store
        .decide_approval("apr_two", &deny("tid-1/alice", T0 + 2 * MINUTE))
        .unwrap();
    assert!(matches!(outcome, DecideOutcome::AlreadyDecided(_)));
    assert_nothing_held(b, "a second decision by one approver");

    let outcome = store
        .decide_approval("apr_none", &deny("tid-1/alice", T0))
        .unwrap();
    assert_eq!(outcome, DecideOutcome::NotFound);
    assert_nothing_held(b, "a decision on no request");

    let refused = store.insert_approval(&hold("apr_pending", T0));
    assert!(matches!(refused, Err(StoreError::Duplicate { .. })));
    assert_nothing_held(b, "a refused insert");

    let grant_ends = approved.grant_expires_at.unwrap();
    assert_eq!(redeem(&*store, grant_ends), None);
    assert_nothing_held(b, "a redemption finding no ticket");

    let resolved = store
        .resolve_approval("apr_approved", ApprovalStatus::Withdrawn, T0)
        .unwrap();
    assert_eq!(resolved, Some(approved));
    assert_nothing_held(b, "a resolution of an ended request");

    assert_eq!(store.expire_due(T0).unwrap(), []);
    assert_eq!(
        ids(&store.withdraw_pending_holds(T0).unwrap()),
        ["apr_pending"]
    );
    assert_nothing_held(b, "the sweeps");

    // And another gateway goes on deciding and redeeming at once.
    let started = Instant::now();
    assert!(redeem(&*other, grant_ends - 1).is_some());
    recorded(
        other
            .decide_approval("apr_two", &approve("tid-1/bob", T0 + 3 * MINUTE))
            .unwrap(),
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "waited {:?} for a lock",
        started.elapsed()
    );
}
