//! Caps against abuse, written once for every protocol: how many sessions one principal
//! may hold open, how many failed authentications one address may make before it is
//! turned away for a while, how many statements one query string may carry, and how
//! many approval requests one principal may leave pending. Each protocol crate asks here
//! and says no in its own terms (PostgreSQL 53300 / 28000 / 54000, HTTP 429).
//!
//! - [`Limits`]: the settings and the live counts, shared by every listener;
//! - [`SessionPermit`]: one open session, counted until it is dropped.
//!
//! Architecture invariants:
//! - Counting is in memory, per gateway process: a restart forgets failed
//!   authentications (the store is not written on every bad token, which would hand an
//!   attacker the store's write rate), and sessions end with the process anyway.
//! - Memory is bounded: addresses whose window has passed are dropped as new ones come,
//!   and at most [`MAX_TRACKED_ADDRESSES`] are kept (past that, unknown addresses are
//!   refused until room frees, rather than tracked without bound).
//! - No clock of its own: callers pass `Instant`s, so tests need no sleeping.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sluice_core::Principal;

/// Addresses with failed authentications tracked at once.
pub const MAX_TRACKED_ADDRESSES: usize = 100_000;

/// The caps; `config` reads them from the `limits:` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitSettings {
    /// Sessions one principal may hold open at once (PostgreSQL sessions, HTTP client
    /// connections).
    pub sessions_per_principal: usize,
    /// Failed authentications from one address within `auth_failure_window`, after which
    /// the address is refused until the window has passed.
    pub auth_failures_per_address: u32,
    pub auth_failure_window: Duration,
    /// Statements one query string may carry.
    pub statements_per_query: usize,
    /// Approval requests one principal may leave pending.
    pub pending_approvals_per_principal: usize,
}

impl Default for LimitSettings {
    fn default() -> Self {
        LimitSettings {
            sessions_per_principal: 100,
            auth_failures_per_address: 30,
            auth_failure_window: Duration::from_secs(60),
            statements_per_query: 1_000,
            pending_approvals_per_principal: 20,
        }
    }
}

/// Why a cap says no.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitExceeded {
    #[error("{subject} already holds {open} sessions, the most one principal may (limits.sessions_per_principal)")]
    Sessions { subject: String, open: usize },
    #[error("too many failed authentications from this address; try again in {}s", retry_after.as_secs().max(1))]
    AuthFailures { retry_after: Duration },
    #[error("the query string holds {count} statements; at most {max} are judged in one string (limits.statements_per_query)")]
    Statements { count: usize, max: usize },
    #[error("{subject} already has {pending} approval requests pending, the most one principal may (limits.pending_approvals_per_principal)")]
    PendingApprovals { subject: String, pending: usize },
}

/// The caps and the live counts.
#[derive(Debug, Default)]
pub struct Limits {
    settings: LimitSettings,
    sessions: Mutex<HashMap<(String, String), usize>>,
    failures: Mutex<HashMap<IpAddr, FailureWindow>>,
}

#[derive(Debug, Clone, Copy)]
struct FailureWindow {
    started: Instant,
    count: u32,
}

/// One open session of a principal; the count goes down when it is dropped.
#[derive(Debug)]
pub struct SessionPermit {
    limits: Arc<Limits>,
    key: (String, String),
}

impl Drop for SessionPermit {
    fn drop(&mut self) {
        let mut sessions = self.limits.sessions.lock().expect("sessions lock");
        if let Some(open) = sessions.get_mut(&self.key) {
            *open -= 1;
            if *open == 0 {
                sessions.remove(&self.key);
            }
        }
    }
}

impl Limits {
    pub fn new(settings: LimitSettings) -> Arc<Self> {
        Arc::new(Limits {
            settings,
            sessions: Mutex::default(),
            failures: Mutex::default(),
        })
    }

    pub fn settings(&self) -> &LimitSettings {
        &self.settings
    }

    /// Counts a new session of `principal`, or says it holds as many as it may.
    pub fn open_session(
        self: &Arc<Self>,
        principal: &Principal,
    ) -> Result<SessionPermit, LimitExceeded> {
        let key = (principal.provider.clone(), principal.subject.clone());
        let mut sessions = self.sessions.lock().expect("sessions lock");
        let open = sessions.entry(key.clone()).or_insert(0);
        if *open >= self.settings.sessions_per_principal {
            return Err(LimitExceeded::Sessions {
                subject: principal.subject.clone(),
                open: *open,
            });
        }
        *open += 1;
        Ok(SessionPermit {
            limits: self.clone(),
            key,
        })
    }

    /// Sessions `principal` holds open now.
    pub fn open_sessions(&self, principal: &Principal) -> usize {
        let key = (principal.provider.clone(), principal.subject.clone());
        self.sessions
            .lock()
            .expect("sessions lock")
            .get(&key)
            .copied()
            .unwrap_or(0)
    }

    /// Whether `address` may try to authenticate at `now`.
    pub fn may_authenticate(&self, address: IpAddr, now: Instant) -> Result<(), LimitExceeded> {
        let failures = self.failures.lock().expect("failures lock");
        match failures.get(&address) {
            Some(w)
                if self.in_window(w, now) && w.count >= self.settings.auth_failures_per_address =>
            {
                Err(LimitExceeded::AuthFailures {
                    retry_after: self
                        .settings
                        .auth_failure_window
                        .saturating_sub(now.saturating_duration_since(w.started)),
                })
            }
            None if failures.len() >= MAX_TRACKED_ADDRESSES => Err(LimitExceeded::AuthFailures {
                retry_after: self.settings.auth_failure_window,
            }),
            _ => Ok(()),
        }
    }

    /// Counts a failed authentication from `address` at `now`.
    pub fn authentication_failed(&self, address: IpAddr, now: Instant) {
        let mut failures = self.failures.lock().expect("failures lock");
        if failures.len() >= MAX_TRACKED_ADDRESSES / 2 {
            failures.retain(|_, w| self.in_window(w, now));
        }
        if !failures.contains_key(&address) && failures.len() >= MAX_TRACKED_ADDRESSES {
            return;
        }
        let window = failures.entry(address).or_insert(FailureWindow {
            started: now,
            count: 0,
        });
        if !self.in_window(window, now) {
            *window = FailureWindow {
                started: now,
                count: 0,
            };
        }
        window.count = window.count.saturating_add(1);
    }

    /// Whether a query string of `count` statements may be judged.
    pub fn check_statements(&self, count: usize) -> Result<(), LimitExceeded> {
        let max = self.settings.statements_per_query;
        if count > max {
            return Err(LimitExceeded::Statements { count, max });
        }
        Ok(())
    }

    /// Whether `principal`, with `pending` requests pending, may ask for another.
    pub fn check_pending_approvals(
        &self,
        principal: &Principal,
        pending: usize,
    ) -> Result<(), LimitExceeded> {
        if pending >= self.settings.pending_approvals_per_principal {
            return Err(LimitExceeded::PendingApprovals {
                subject: principal.subject.clone(),
                pending,
            });
        }
        Ok(())
    }

    fn in_window(&self, window: &FailureWindow, now: Instant) -> bool {
        now.saturating_duration_since(window.started) < self.settings.auth_failure_window
    }
}
