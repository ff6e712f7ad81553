//! The approvals broker: asks the store to keep a request, waits for its outcome, records
//! decisions after checking who makes them, redeems tickets, and expires what nobody
//! decided in time.
//!
//! One broker per gateway, shared by every protocol's sessions and by the admin API. A
//! held statement's session calls [`Broker::request`] then [`Broker::wait`]; an approver's
//! call reaches [`Broker::decide`], which records the decision in the store and wakes the
//! waiter at once. The waiter re-reads the request from the store, which is the only
//! truth: the wake-up is a shortcut, and a waiter that missed one (a decision taken
//! through another gateway instance) finds it by polling.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use rand::Rng;
use sluice_core::{ApprovalMode, ApprovalStatus, Principal, PrincipalKind, Subjects, Verdict};
use sluice_store::{
    ApprovalDecision, ApprovalFilter, ApprovalRecord, DecideOutcome, Store, StoreError,
};
use tokio::sync::Notify;

use crate::error::{BrokerError, DecideError};
use crate::view::{ApprovalView, DecisionView};
use crate::webhook::{Announcement, Webhooks};

/// Default time an approved ticket stays redeemable.
pub const DEFAULT_GRANT_WINDOW: Duration = Duration::from_secs(15 * 60);

/// How the broker behaves.
#[derive(Debug, Clone)]
pub struct BrokerSettings {
    /// How long an approved ticket may be redeemed, from its approval.
    pub grant_window: Duration,
    /// The base address of the admin API and console (no trailing slash), for links.
    pub console_url: String,
    /// How often a waiter re-reads its request from the store (decisions taken through
    /// another gateway instance wake nobody here).
    pub poll_interval: Duration,
    /// How often requests past their deadline are expired (tickets above all: no session
    /// waits on them).
    pub sweep_interval: Duration,
    /// Withdraw pending held requests at start: their sessions died with the gateway
    /// that held them. Right for one gateway on its own store; gateways sharing a store
    /// leave it off, or they would withdraw each other's.
    pub withdraw_holds_at_start: bool,
    /// Requests one principal may leave pending (`limits.pending_approvals_per_principal`).
    pub pending_per_principal: usize,
}

impl BrokerSettings {
    pub fn new(console_url: String) -> Self {
        BrokerSettings {
            grant_window: DEFAULT_GRANT_WINDOW,
            console_url: console_url.trim_end_matches('/').to_string(),
            poll_interval: Duration::from_secs(1),
            sweep_interval: Duration::from_secs(5),
            withdraw_holds_at_start: true,
            pending_per_principal: sluice_limits::LimitSettings::default()
                .pending_approvals_per_principal,
        }
    }
}

/// What a protocol crate knows when a statement needs approval.
#[derive(Debug, Clone)]
pub struct NewApproval {
    pub requester: Principal,
    pub connection: String,
    /// As the audit trail spells it (`postgres`).
    pub protocol: String,
    pub session_id: Option<String>,
    pub statement: String,
    pub parameters: Vec<Option<String>>,
    /// [`crate::fingerprint`] of the statement.
    pub fingerprint: String,
    /// Why approval is needed, as the agent is told.
    pub reason: String,
    /// The approve rule, as the policy engine names it.
    pub rule: String,
    pub approvers: Subjects,
    pub mode: ApprovalMode,
    /// Decisions are taken for this long.
    pub timeout: Duration,
    pub min_approvals: u32,
}

pub struct Broker {
    store: Arc<dyn Store>,
    settings: BrokerSettings,
    /// Held requests someone waits on here, to wake them when a decision is recorded.
    waiters: Mutex<HashMap<String, Arc<Notify>>>,
    webhooks: Webhooks,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Broker {
    pub fn new(store: Arc<dyn Store>, settings: BrokerSettings, webhooks: Webhooks) -> Arc<Self> {
        Arc::new(Broker {
            store,
            settings,
            waiters: Mutex::new(HashMap::new()),
            webhooks,
        })
    }

    /// Withdraws held requests left over from before (when the settings say so) and
    /// starts the expiry sweeper. Call once, inside the runtime, before sessions start.
    pub async fn start(self: &Arc<Self>) -> Result<(), BrokerError> {
        if self.settings.withdraw_holds_at_start {
            let store = self.store.clone();
            let withdrawn = blocking(move || store.withdraw_pending_holds(now_us())).await?;
            for record in withdrawn {
                tracing::info!(approval = %record.id, "held approval request withdrawn: its session ended with the gateway's last run");
                self.announce("approval.withdrawn", &record, None);
            }
        }
        let broker = Arc::downgrade(self);
        let every = self.settings.sweep_interval;
        tokio::spawn(sweep(broker, every));
        Ok(())
    }

    pub fn settings(&self) -> &BrokerSettings {
        &self.settings
    }

    /// Where an approver reads and decides request `id`.
    pub fn console_link(&self, id: &str) -> String {
        format!("{}/approvals/{id}", self.settings.console_url)
    }

    /// The request as people and tools see it.
    pub fn view(&self, record: &ApprovalRecord) -> ApprovalView {
        ApprovalView::new(record, self.console_link(&record.id))
    }

    /// Keeps a new request in the store and announces it. Fails (and the statement must
    /// then be refused) if the store cannot take it.
    pub async fn request(&self, new: NewApproval) -> Result<ApprovalRecord, BrokerError> {
        // A principal cannot flood approvers: past its cap of pending requests it must
        // wait for some to be decided, withdrawn or expire.
        let store = self.store.clone();
        let pending = blocking(move || {
            store.list_approvals(&sluice_store::ApprovalFilter {
                status: Some(ApprovalStatus::Pending),
                ..Default::default()
            })
        })
        .await?
        .iter()
        .filter(|a| {
            a.requester.provider == new.requester.provider
                && a.requester.subject == new.requester.subject
        })
        .count();
        if pending >= self.settings.pending_per_principal {
            return Err(sluice_limits::LimitExceeded::PendingApprovals {
                subject: new.requester.subject.clone(),
                pending,
            }
            .into());
        }
        let now = now_us();
        let record = ApprovalRecord {
            id: new_approval_id(),
            mode: new.mode,
            status: ApprovalStatus::Pending,
            requester: new.requester,
            connection: new.connection,
            protocol: new.protocol,
            session_id: new.session_id,
            statement: new.statement,
            parameters: new.parameters,
            fingerprint: new.fingerprint,
            reason: new.reason,
            rule: new.rule,
            approvers: new.approvers,
            min_approvals: new.min_approvals.max(1),
            requested_at: now,
            expires_at: now.saturating_add(micros(new.timeout)),
            grant_window: (new.mode == ApprovalMode::Ticket)
                .then(|| micros(self.settings.grant_window)),
            grant_expires_at: None,
            resolved_at: None,
            redeemed_at: None,
            decisions: Vec::new(),
        };
        let store = self.store.clone();
        let stored = record.clone();
        blocking(move || store.insert_approval(&stored)).await?;
        tracing::info!(approval = %record.id, mode = record.mode.as_str(), principal = %record.requester.subject,
            connection = %record.connection, "approval requested");
        self.announce("approval.requested", &record, None);
        Ok(record)
    }

    /// Waits until request `id` is no longer pending and returns it as it then stands:
    /// approved, denied, expired (no decision by its deadline: this call expires it) or
    /// withdrawn. Cancel-safe: dropping the future leaves the request pending (withdraw
    /// it with [`Broker::withdraw`]).
    pub async fn wait(&self, id: &str) -> Result<ApprovalRecord, BrokerError> {
        let waiter = WaiterGuard::register(self, id);
        loop {
            let record = self
                .get(id)
                .await?
                .ok_or_else(|| BrokerError::NotFound(id.to_string()))?;
            if record.status != ApprovalStatus::Pending {
                return Ok(record);
            }
            let now = now_us();
            if now >= record.expires_at {
                return self.resolve(id, ApprovalStatus::Expired).await;
            }
            let until_deadline = Duration::from_micros((record.expires_at - now) as u64);
            tokio::select! {
                _ = waiter.notify.notified() => {}
                _ = tokio::time::sleep(until_deadline.min(self.settings.poll_interval)) => {}
            }
        }
    }

    /// Withdraws a request still pending (its session left while it waited); a decision
    /// recorded first wins. Returns the request as it then stands.
    pub async fn withdraw(&self, id: &str) -> Result<ApprovalRecord, BrokerError> {
        self.resolve(id, ApprovalStatus::Withdrawn).await
    }

    async fn resolve(&self, id: &str, to: ApprovalStatus) -> Result<ApprovalRecord, BrokerError> {
        let store = self.store.clone();
        let at = now_us();
        let owned = id.to_string();
        let record = blocking(move || store.resolve_approval(&owned, to, at))
            .await?
            .ok_or_else(|| BrokerError::NotFound(id.to_string()))?;
        if record.status == to && record.resolved_at == Some(at) {
            tracing::info!(approval = %id, status = %to, "approval request ended without a decision");
            let event = match to {
                ApprovalStatus::Expired => "approval.expired",
                _ => "approval.withdrawn",
            };
            self.announce(event, &record, None);
        }
        Ok(record)
    }

    /// Records `approver`'s decision on request `id`, after checking they may make it:
    /// a person (not an application), named by the rule's `approvers`, and not the one who
    /// asked. Every decision needs a reason. Returns the request as it then stands.
    pub async fn decide(
        &self,
        approver: &Principal,
        id: &str,
        verdict: Verdict,
        reason: &str,
    ) -> Result<ApprovalRecord, DecideError> {
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(DecideError::BadRequest(
                "every decision needs a reason; say why".into(),
            ));
        }
        let record = self
            .get(id)
            .await
            .map_err(|e| match e {
                BrokerError::Store(e) => DecideError::Store(e),
                BrokerError::NotFound(id) => DecideError::NotFound(id),
                BrokerError::Limit(e) => DecideError::BadRequest(e.to_string()),
            })?
            .ok_or_else(|| DecideError::NotFound(id.to_string()))?;
        may_decide(approver, &record).map_err(DecideError::Forbidden)?;
        let decision = ApprovalDecision {
            approver: approver.clone(),
            verdict,
            reason: reason.to_string(),
            at: now_us(),
        };
        let store = self.store.clone();
        let owned = id.to_string();
        let recorded = decision.clone();
        let outcome = blocking(move || store.decide_approval(&owned, &recorded)).await?;
        match outcome {
            DecideOutcome::Recorded(record) => {
                tracing::info!(approval = %id, approver = %approver.subject, verdict = verdict.as_str(),
                    status = %record.status, "approval decision recorded");
                if record.status != ApprovalStatus::Pending {
                    self.wake(id);
                }
                self.announce("approval.decided", &record, Some(&decision));
                Ok(record)
            }
            DecideOutcome::NotFound => Err(DecideError::NotFound(id.to_string())),
            DecideOutcome::NotPending(record) => {
                if record.status == ApprovalStatus::Expired
                    && record.resolved_at == Some(decision.at)
                {
                    self.wake(id);
                    self.announce("approval.expired", &record, None);
                }
                Err(DecideError::Conflict {
                    id: id.to_string(),
                    status: record.status,
                    what: "it is no longer pending; nothing was recorded".into(),
                })
            }
            DecideOutcome::AlreadyDecided(record) => Err(DecideError::Conflict {
                id: id.to_string(),
                status: record.status,
                what: format!("{} has already decided it", approver.subject),
            }),
        }
    }

    /// Redeems an approved ticket of `requester` for exactly this statement on this
    /// connection: at most once, within its grant window.
    pub async fn redeem(
        &self,
        requester: &Principal,
        connection: &str,
        fingerprint: &str,
    ) -> Result<Option<ApprovalRecord>, BrokerError> {
        let store = self.store.clone();
        let (provider, subject) = (requester.provider.clone(), requester.subject.clone());
        let (connection, fingerprint) = (connection.to_string(), fingerprint.to_string());
        let redeemed = blocking(move || {
            store.redeem_ticket(&provider, &subject, &connection, &fingerprint, now_us())
        })
        .await?;
        if let Some(record) = &redeemed {
            tracing::info!(approval = %record.id, principal = %record.requester.subject, "approved ticket redeemed");
        }
        Ok(redeemed)
    }

    pub async fn get(&self, id: &str) -> Result<Option<ApprovalRecord>, BrokerError> {
        let store = self.store.clone();
        let id = id.to_string();
        Ok(blocking(move || store.approval(&id)).await?)
    }

    pub async fn list(&self, filter: ApprovalFilter) -> Result<Vec<ApprovalRecord>, BrokerError> {
        let store = self.store.clone();
        Ok(blocking(move || store.list_approvals(&filter)).await?)
    }

    fn wake(&self, id: &str) {
        if let Some(notify) = self.waiters.lock().get(id) {
            notify.notify_one();
        }
    }

    fn announce(
        &self,
        event: &'static str,
        record: &ApprovalRecord,
        decision: Option<&ApprovalDecision>,
    ) {
        if self.webhooks.is_empty() {
            return;
        }
        self.webhooks.announce(Announcement {
            event,
            approval: self.view(record),
            decision: decision.map(DecisionView::from),
            at: crate::view::rfc3339(now_us()),
        });
    }

    /// Expires what is past its deadline; wakes waiters of those held here.
    async fn sweep_once(&self) -> Result<(), BrokerError> {
        let store = self.store.clone();
        let expired = blocking(move || store.expire_due(now_us())).await?;
        for record in expired {
            tracing::info!(approval = %record.id, "approval request expired without a decision");
            self.wake(&record.id);
            self.announce("approval.expired", &record, None);
        }
        Ok(())
    }
}

/// Whether `viewer` may read request `record`: who asked, the people who may decide it,
/// and admins. An application its approvers name sees nothing it could not decide.
pub fn may_see(viewer: &Principal, record: &ApprovalRecord, is_admin: bool) -> bool {
    is_admin
        || same_principal(viewer, &record.requester)
        || (viewer.kind == PrincipalKind::User && record.approvers.contains(viewer))
}

/// Why `approver` may not decide `record`, if they may not.
pub fn may_decide(approver: &Principal, record: &ApprovalRecord) -> Result<(), String> {
    if same_principal(approver, &record.requester) {
        return Err(format!(
            "nobody approves their own request: {} asked for approval {}",
            approver.subject, record.id
        ));
    }
    if approver.kind != PrincipalKind::User {
        return Err(format!(
            "only people approve: {} is an application (its token is app-only)",
            approver.subject
        ));
    }
    if !record.approvers.contains(approver) {
        return Err(format!(
            "{} is not among the approvers of approval {} ({}: {})",
            approver.subject,
            record.id,
            record.rule,
            describe_subjects(&record.approvers)
        ));
    }
    Ok(())
}

/// `subjects [a] roles [b] groups [c]`, leaving out what is empty.
pub fn describe_subjects(s: &Subjects) -> String {
    let mut parts = Vec::new();
    for (what, list) in [
        ("subjects", &s.subjects),
        ("roles", &s.roles),
        ("groups", &s.groups),
    ] {
        if !list.is_empty() {
            parts.push(format!("{what} {}", list.join(", ")));
        }
    }
    if parts.is_empty() {
        "nobody".into()
    } else {
        parts.join("; ")
    }
}

fn same_principal(a: &Principal, b: &Principal) -> bool {
    a.provider == b.provider && a.subject == b.subject
}

/// Registers a waiter for a request for as long as it lives.
struct WaiterGuard<'a> {
    broker: &'a Broker,
    id: String,
    notify: Arc<Notify>,
}

impl<'a> WaiterGuard<'a> {
    fn register(broker: &'a Broker, id: &str) -> Self {
        let notify = broker
            .waiters
            .lock()
            .entry(id.to_string())
            .or_insert_with(|| Arc::new(Notify::new()))
            .clone();
        WaiterGuard {
            broker,
            id: id.to_string(),
            notify,
        }
    }
}

impl Drop for WaiterGuard<'_> {
    fn drop(&mut self) {
        self.broker.waiters.lock().remove(&self.id);
    }
}

async fn sweep(broker: Weak<Broker>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(broker) = broker.upgrade() else {
            return;
        };
        if let Err(e) = broker.sweep_once().await {
            tracing::warn!(error = %e, "expiring approval requests failed; trying again");
        }
    }
}

/// `apr_` and 20 random lowercase letters and digits (about 103 bits).
fn new_approval_id() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let tail: String = (0..20)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    format!("apr_{tail}")
}

pub(crate) fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        // A store call that panicked: nothing is known of its outcome, so it counts as
        // the store being unavailable (callers fail closed).
        Err(e) => Err(StoreError::Unavailable {
            op: "approval store call",
            db: "(blocking task)".into(),
            source: Box::new(e),
        }),
    }
}
