//! The approvals broker on a real SQLite store: a held request's waiter wakes as soon as
//! an approver decides (not at its next poll), and ends denied, expired or withdrawn as the
//! store says; only people named by the rule decide, never their own request, each once,
//! always with a reason; a ticket is redeemed once, by its requester, for its connection
//! and statement, within its grant window; a restarted broker withdraws the holds it can
//! no longer serve but keeps tickets, and its sweeper expires tickets nobody waits on.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_approvals::broker::{may_decide, may_see};
use sluice_approvals::{fingerprint, Broker, BrokerError, BrokerSettings, DecideError, Webhooks};
use sluice_core::{ApprovalMode, ApprovalStatus, Verdict};
use sluice_store::{ApprovalFilter, ApprovalRecord};
use support::{
    agent, alice, bob, dba_carol, mallory, new_approval, parameters, robot, settings, TestStore,
    STATEMENT,
};

/// Long enough that nothing expires unless a test means it to.
const LONG: Duration = Duration::from_secs(600);

/// How long a test waits for what should happen at once; far beyond any real delay, far
/// below the 30 s poll and sweep intervals of [`settings`].
const PROMPTLY: Duration = Duration::from_secs(10);

fn broker_on(store: &TestStore, settings: BrokerSettings) -> Arc<Broker> {
    Broker::new(store.store.clone(), settings, Webhooks::none())
}

async fn stored(broker: &Broker, id: &str) -> ApprovalRecord {
    broker.get(id).await.unwrap().expect("the request is kept")
}

/// Until `id` has `status` (checking every 20 ms), or panics after `within`.
async fn until_status(broker: &Broker, id: &str, status: ApprovalStatus, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let now = stored(broker, id).await.status;
        if now == status {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "approval {id} is still {now} after {within:?}, expected {status}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Spawns a waiter on `id` and lets it settle into waiting, asserting it has not ended.
async fn spawn_waiter(
    broker: &Arc<Broker>,
    id: &str,
) -> tokio::task::JoinHandle<(Result<ApprovalRecord, BrokerError>, Instant)> {
    let (broker, id) = (broker.clone(), id.to_string());
    let waiter = tokio::spawn(async move {
        let outcome = broker.wait(&id).await;
        (outcome, Instant::now())
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !waiter.is_finished(),
        "the waiter ended before any decision"
    );
    waiter
}

#[tokio::test(flavor = "multi_thread")]
async fn a_waiter_wakes_as_soon_as_an_approver_approves() {
    let store = TestStore::new();
    let broker = broker_on(&store, settings());
    let request = broker
        .request(new_approval(ApprovalMode::Hold, LONG))
        .await
        .unwrap();
    assert_eq!(request.status, ApprovalStatus::Pending);
    assert!(request.id.starts_with("apr_"), "{}", request.id);
    assert_eq!(stored(&broker, &request.id).await, request);

    let waiter = spawn_waiter(&broker, &request.id).await;
    let decided_at = Instant::now();
    let decided = broker
        .decide(&alice(), &request.id, Verdict::Approve, "ticket OPS-12")
        .await
        .unwrap();
    assert_eq!(decided.status, ApprovalStatus::Approved);

    // The poll interval is 30 s: only the wake-up ends the wait within PROMPTLY.
    let (outcome, woke_at) = tokio::time::timeout(PROMPTLY, waiter)
        .await
        .expect("the waiter was not woken by the decision")
        .unwrap();
    let record = outcome.unwrap();
    assert_eq!(record.status, ApprovalStatus::Approved);
    assert_eq!(record.decisions.len(), 1);
    assert_eq!(record.decisions[0].approver.subject, alice().subject);
    assert_eq!(record.decisions[0].verdict, Verdict::Approve);
    assert_eq!(record.decisions[0].reason, "ticket OPS-12");
    assert!(record.resolved_at.is_some());
    let took = woke_at.saturating_duration_since(decided_at);
    assert!(took < Duration::from_millis(900), "woke after {took:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_denial_ends_the_wait_with_its_reason() {
    let store = TestStore::new();
    let broker = broker_on(&store, settings());
    let request = broker
        .request(new_approval(ApprovalMode::Hold, LONG))
        .await
        .unwrap();
    let waiter = spawn_waiter(&broker, &request.id).await;
    broker
        .decide(
            &bob(),
            &request.id,
            Verdict::Deny,
            "  not during the month-end close \n",
        )
        .await
        .unwrap();
    let (outcome, _) = tokio::time::timeout(PROMPTLY, waiter)
        .await
        .expect("the waiter was not woken by the denial")
        .unwrap();
    let record = outcome.unwrap();
    assert_eq!(record.status, ApprovalStatus::Denied);
    assert_eq!(record.decisions.len(), 1);
    assert_eq!(record.decisions[0].approver.subject, bob().subject);
    assert_eq!(record.decisions[0].verdict, Verdict::Deny);
    assert_eq!(
        record.decisions[0].reason, "not during the month-end close",
        "the reason is kept, trimmed"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn nobody_deciding_in_time_expires_the_request() {
    let store = TestStore::new();
    let broker = broker_on(&store, settings());
    let started = Instant::now();
    let request = broker
        .request(new_approval(ApprovalMode::Hold, Duration::from_millis(300)))
        .await
        .unwrap();
    let record = tokio::time::timeout(PROMPTLY, broker.wait(&request.id))
        .await
        .expect("the wait outlived the request's deadline")
        .unwrap();
    assert_eq!(record.status, ApprovalStatus::Expired);
    assert!(
        started.elapsed() >= Duration::from_millis(280),
        "expired after only {:?}",
        started.elapsed()
    );
    assert!(record.decisions.is_empty());
    assert!(record.resolved_at.unwrap() >= record.expires_at);
    assert_eq!(
        stored(&broker, &request.id).await.status,
        ApprovalStatus::Expired
    );

    // Too late to decide.
    match broker
        .decide(
            &alice(),
            &request.id,
            Verdict::Approve,
            "sorry, was at lunch",
        )
        .await
    {
        Err(DecideError::Conflict { status, .. }) => assert_eq!(status, ApprovalStatus::Expired),
        other => panic!("a decision on an expired request: {other:?}"),
    }
    assert!(stored(&broker, &request.id).await.decisions.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_withdrawn_request_takes_no_decision() {
    let store = TestStore::new();
    let broker = broker_on(&store, settings());
    let request = broker
        .request(new_approval(ApprovalMode::Hold, LONG))
        .await
        .unwrap();
    let record = broker.withdraw(&request.id).await.unwrap();
    assert_eq!(record.status, ApprovalStatus::Withdrawn);
    assert!(record.resolved_at.is_some());

    match broker
        .decide(&alice(), &request.id, Verdict::Approve, "looks fine")
        .await
    {
        Err(DecideError::Conflict { id, status, .. }) => {
            assert_eq!(id, request.id);
            assert_eq!(status, ApprovalStatus::Withdrawn);
        }
        other => panic!("a decision on a withdrawn request: {other:?}"),
    }
    let after = stored(&broker, &request.id).await;
    assert_eq!(after.status, ApprovalStatus::Withdrawn);
    assert!(after.decisions.is_empty());
    // Waiting on it now returns at once, as it stands.
    let waited = tokio::time::timeout(PROMPTLY, broker.wait(&request.id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(waited.status, ApprovalStatus::Withdrawn);

    // A decision recorded first wins over a later withdrawal.
    let approved = broker
        .request(new_approval(ApprovalMode::Hold, LONG))
        .await
        .unwrap();
    broker
        .decide(&alice(), &approved.id, Verdict::Approve, "fine")
        .await
        .unwrap();
    let record = broker.withdraw(&approved.id).await.unwrap();
    assert_eq!(record.status, ApprovalStatus::Approved);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_approvals_need_two_different_approvers() {
    let store = TestStore::new();
    let broker = broker_on(&store, settings());
    let mut new = new_approval(ApprovalMode::Hold, LONG);
    new.min_approvals = 2;
    let request = broker.request(new).await.unwrap();
    assert_eq!(request.min_approvals, 2);
    let waiter = spawn_waiter(&broker, &request.id).await;

    let first = broker
        .decide(&alice(), &request.id, Verdict::Approve, "first look: fine")
        .await
        .unwrap();
    assert_eq!(first.status, ApprovalStatus::Pending);
    assert_eq!(first.decisions.len(), 1);

    match broker
        .decide(&alice(), &request.id, Verdict::Approve, "still fine")
        .await
    {
        Err(DecideError::Conflict { status, what, .. }) => {
            assert_eq!(status, ApprovalStatus::Pending);
            assert!(what.contains(&alice().subject), "{what}");
        }
        other => panic!("the same approver twice: {other:?}"),
    }
    assert_eq!(stored(&broker, &request.id).await.decisions.len(), 1);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!waiter.is_finished(), "one approval of two ended the wait");

    let second = broker
        .decide(&bob(), &request.id, Verdict::Approve, "second look: fine")
        .await
        .unwrap();
    assert_eq!(second.status, ApprovalStatus::Approved);
    let (outcome, _) = tokio::time::timeout(PROMPTLY, waiter)
        .await
        .expect("the waiter was not woken by the second approval")
        .unwrap();
    let record = outcome.unwrap();
    assert_eq!(record.status, ApprovalStatus::Approved);
    let who: Vec<_> = record
        .decisions
        .iter()
        .map(|d| d.approver.subject.clone())
        .collect();
    assert_eq!(who, [alice().subject, bob().subject]);
}

/// Asserts `decide` was forbidden, saying `why`, and recorded nothing.
async fn assert_forbidden(
    broker: &Broker,
    outcome: Result<ApprovalRecord, DecideError>,
    id: &str,
    why: &str,
) {
    match outcome {
        Err(DecideError::Forbidden(message)) => {
            assert!(message.contains(why), "{message:?} does not say {why:?}")
        }
        other => panic!("expected Forbidden ({why}), got {other:?}"),
    }
    let record = stored(broker, id).await;
    assert_eq!(record.status, ApprovalStatus::Pending);
    assert!(record.decisions.is_empty(), "{:?}", record.decisions);
}

#[tokio::test(flavor = "multi_thread")]
async fn only_people_named_as_approvers_decide_and_never_their_own_request() {
    let store = TestStore::new();
    let broker = broker_on(&store, settings());

    // Carol is a person in the approvers' group: only asking herself stops her.
    let mut own = new_approval(ApprovalMode::Hold, LONG);
    own.requester = dba_carol();
    let own = broker.request(own).await.unwrap();
    let outcome = broker
        .decide(&dba_carol(), &own.id, Verdict::Approve, "I trust myself")
        .await;
    assert_forbidden(&broker, outcome, &own.id, "own request").await;
    assert!(may_decide(&alice(), &stored(&broker, &own.id).await).is_ok());

    let request = broker
        .request(new_approval(ApprovalMode::Hold, LONG))
        .await
        .unwrap();
    // An application in the approvers' group is still not a person.
    let outcome = broker
        .decide(
            &robot(),
            &request.id,
            Verdict::Approve,
            "automated check passed",
        )
        .await;
    assert_forbidden(&broker, outcome, &request.id, "only people approve").await;
    // A person, but not an approver.
    let outcome = broker
        .decide(&mallory(), &request.id, Verdict::Approve, "fine by me")
        .await;
    assert_forbidden(&broker, outcome, &request.id, "not among the approvers").await;
    // Denying is deciding too.
    let outcome = broker
        .decide(&mallory(), &request.id, Verdict::Deny, "no")
        .await;
    assert_forbidden(&broker, outcome, &request.id, "not among the approvers").await;
    // The agent itself.
    let outcome = broker
        .decide(&agent(), &request.id, Verdict::Approve, "please")
        .await;
    assert_forbidden(&broker, outcome, &request.id, "own request").await;

    // And an approver may.
    let record = broker
        .decide(&alice(), &request.id, Verdict::Approve, "fine")
        .await
        .unwrap();
    assert_eq!(record.status, ApprovalStatus::Approved);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_decision_needs_a_reason_and_an_existing_request() {
    let store = TestStore::new();
    let broker = broker_on(&store, settings());
    let request = broker
        .request(new_approval(ApprovalMode::Hold, LONG))
        .await
        .unwrap();
    for reason in ["", "   \t\n"] {
        match broker
            .decide(&alice(), &request.id, Verdict::Approve, reason)
            .await
        {
            Err(DecideError::BadRequest(_)) => {}
            other => panic!("a decision with reason {reason:?}: {other:?}"),
        }
    }
    assert!(stored(&broker, &request.id).await.decisions.is_empty());

    let unknown = "apr_doesnotexist000000";
    match broker
        .decide(&alice(), unknown, Verdict::Approve, "fine")
        .await
    {
        Err(DecideError::NotFound(id)) => assert_eq!(id, unknown),
        other => panic!("a decision on an unknown request: {other:?}"),
    }
    assert!(broker.get(unknown).await.unwrap().is_none());
    assert!(matches!(
        broker.wait(unknown).await,
        Err(BrokerError::NotFound(_))
    ));
    assert!(matches!(
        broker.withdraw(unknown).await,
        Err(BrokerError::NotFound(_))
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ticket_is_redeemed_once_by_its_requester_for_its_statement() {
    let store = TestStore::new();
    let broker = broker_on(&store, settings());
    let request = broker
        .request(new_approval(ApprovalMode::Ticket, LONG))
        .await
        .unwrap();
    assert_eq!(request.mode, ApprovalMode::Ticket);
    let fp = fingerprint(STATEMENT, &parameters());

    assert!(
        broker
            .redeem(&agent(), "orders", &fp)
            .await
            .unwrap()
            .is_none(),
        "redeemed before approval"
    );

    let approved = broker
        .decide(&alice(), &request.id, Verdict::Approve, "once")
        .await
        .unwrap();
    assert_eq!(approved.status, ApprovalStatus::Approved);
    let resolved_at = approved.resolved_at.unwrap();
    assert_eq!(
        approved.grant_expires_at,
        Some(resolved_at + 15 * 60 * 1_000_000),
        "the default grant window is 15 minutes"
    );

    // Anyone else, elsewhere, or anything else: no.
    let mut other_provider = agent();
    other_provider.provider = "okta".into();
    for (who, connection, fp, what) in [
        (mallory(), "orders", fp.clone(), "another principal"),
        (
            other_provider,
            "orders",
            fp.clone(),
            "same subject, other provider",
        ),
        (agent(), "billing", fp.clone(), "another connection"),
        (
            agent(),
            "orders",
            fingerprint(STATEMENT, &[Some("43".into())]),
            "other values",
        ),
        (
            agent(),
            "orders",
            fingerprint("DELETE FROM orders", &[]),
            "another statement",
        ),
    ] {
        assert!(
            broker
                .redeem(&who, connection, &fp)
                .await
                .unwrap()
                .is_none(),
            "redeemed by {what}"
        );
    }
    assert_eq!(
        stored(&broker, &request.id).await.status,
        ApprovalStatus::Approved
    );

    let redeemed = broker
        .redeem(&agent(), "orders", &fp)
        .await
        .unwrap()
        .expect("the approved ticket is redeemed");
    assert_eq!(redeemed.id, request.id);
    assert_eq!(redeemed.status, ApprovalStatus::Redeemed);
    assert!(redeemed.redeemed_at.is_some());
    assert!(
        broker
            .redeem(&agent(), "orders", &fp)
            .await
            .unwrap()
            .is_none(),
        "redeemed twice"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ticket_is_not_redeemed_after_its_grant_window() {
    let store = TestStore::new();
    let mut settings = settings();
    settings.grant_window = Duration::from_millis(300);
    let broker = broker_on(&store, settings);
    let request = broker
        .request(new_approval(ApprovalMode::Ticket, LONG))
        .await
        .unwrap();
    assert_eq!(request.grant_window, Some(300_000));
    let approved = broker
        .decide(&alice(), &request.id, Verdict::Approve, "quickly, then")
        .await
        .unwrap();
    assert_eq!(
        approved.grant_expires_at,
        Some(approved.resolved_at.unwrap() + 300_000)
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    let fp = fingerprint(STATEMENT, &parameters());
    assert!(
        broker
            .redeem(&agent(), "orders", &fp)
            .await
            .unwrap()
            .is_none(),
        "redeemed after the grant window"
    );
    assert_eq!(
        stored(&broker, &request.id).await.status,
        ApprovalStatus::Approved
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restart_withdraws_pending_holds_but_keeps_tickets() {
    let store = TestStore::new();
    let before = broker_on(&store, settings());
    let hold = before
        .request(new_approval(ApprovalMode::Hold, LONG))
        .await
        .unwrap();
    let ticket = before
        .request(new_approval(ApprovalMode::Ticket, LONG))
        .await
        .unwrap();
    let decided = before
        .request(new_approval(ApprovalMode::Hold, LONG))
        .await
        .unwrap();
    before
        .decide(&alice(), &decided.id, Verdict::Approve, "fine")
        .await
        .unwrap();
    drop(before);

    // A gateway sharing its store leaves others' holds alone.
    let mut sharing = settings();
    sharing.withdraw_holds_at_start = false;
    let shared = Broker::new(store.reopen(), sharing, Webhooks::none());
    shared.start().await.unwrap();
    assert_eq!(
        stored(&shared, &hold.id).await.status,
        ApprovalStatus::Pending
    );
    drop(shared);

    let after = Broker::new(store.reopen(), settings(), Webhooks::none());
    assert!(after.settings().withdraw_holds_at_start);
    after.start().await.unwrap();
    let hold = stored(&after, &hold.id).await;
    assert_eq!(hold.status, ApprovalStatus::Withdrawn);
    assert!(hold.resolved_at.is_some());
    assert_eq!(
        stored(&after, &ticket.id).await.status,
        ApprovalStatus::Pending
    );
    assert_eq!(
        stored(&after, &decided.id).await.status,
        ApprovalStatus::Approved
    );
    let pending = after
        .list(ApprovalFilter {
            status: Some(ApprovalStatus::Pending),
            ..ApprovalFilter::default()
        })
        .await
        .unwrap();
    let ids: Vec<_> = pending.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, [ticket.id.as_str()]);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sweeper_expires_a_ticket_past_its_deadline() {
    let store = TestStore::new();
    let mut settings = settings();
    settings.sweep_interval = Duration::from_millis(100);
    let broker = broker_on(&store, settings);
    broker.start().await.unwrap();
    let ticket = broker
        .request(new_approval(
            ApprovalMode::Ticket,
            Duration::from_millis(300),
        ))
        .await
        .unwrap();
    let lasting = broker
        .request(new_approval(ApprovalMode::Ticket, LONG))
        .await
        .unwrap();
    // Nobody waits on a ticket: only the sweeper can expire it.
    until_status(&broker, &ticket.id, ApprovalStatus::Expired, PROMPTLY).await;
    let record = stored(&broker, &ticket.id).await;
    assert!(record.resolved_at.unwrap() >= record.expires_at);
    assert_eq!(
        stored(&broker, &lasting.id).await.status,
        ApprovalStatus::Pending
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn without_its_sweeper_a_ticket_stays_pending_past_its_deadline() {
    // The counterpart of the test above: what expires tickets is the sweeper that
    // `start` runs, nothing else.
    let store = TestStore::new();
    let broker = broker_on(&store, settings());
    let ticket = broker
        .request(new_approval(
            ApprovalMode::Ticket,
            Duration::from_millis(100),
        ))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        stored(&broker, &ticket.id).await.status,
        ApprovalStatus::Pending
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn who_may_see_a_request() {
    let store = TestStore::new();
    let broker = broker_on(&store, settings());
    let record = broker
        .request(new_approval(ApprovalMode::Hold, LONG))
        .await
        .unwrap();
    assert!(may_see(&agent(), &record, false), "the requester");
    assert!(may_see(&alice(), &record, false), "an approver");
    assert!(may_see(&mallory(), &record, true), "an admin");
    assert!(!may_see(&mallory(), &record, false), "a stranger");
    let mut namesake = agent();
    namesake.provider = "okta".into();
    namesake.groups.clear();
    assert!(
        !may_see(&namesake, &record, false),
        "the requester's subject under another provider"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_principal_cannot_leave_more_requests_pending_than_its_cap() {
    let store = TestStore::new();
    let mut settings = settings();
    settings.pending_per_principal = 2;
    let broker = broker_on(&store, settings);
    let first = broker
        .request(new_approval(ApprovalMode::Ticket, LONG))
        .await
        .unwrap();
    broker
        .request(new_approval(ApprovalMode::Ticket, LONG))
        .await
        .unwrap();
    let third = broker
        .request(new_approval(ApprovalMode::Ticket, LONG))
        .await;
    assert!(matches!(&third, Err(BrokerError::Limit(_))), "{third:?}");
    // Another principal is counted apart; a decided request frees a place.
    let mut other = new_approval(ApprovalMode::Ticket, LONG);
    other.requester = robot();
    broker.request(other).await.unwrap();
    broker
        .decide(&alice(), &first.id, Verdict::Deny, "not now")
        .await
        .unwrap();
    broker
        .request(new_approval(ApprovalMode::Ticket, LONG))
        .await
        .unwrap();
}
