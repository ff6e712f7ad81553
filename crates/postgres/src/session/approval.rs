//! Statements that need approval (DESIGN.md §5), in the relay's terms.
//!
//! The broker (`sluice-approvals`) keeps requests and decisions; this module only carries
//! them over the PostgreSQL protocol:
//! - **hold**: the statement is not sent. The client is told at once with a
//!   NoticeResponse (the approval id, what is awaited, where to decide), and the relay
//!   waits for the outcome while still reading the client: a CancelRequest withdraws the
//!   request and fails the statement as PostgreSQL fails a cancelled one (57014), a client
//!   that leaves withdraws it, and anything else the client sends meanwhile is kept, in
//!   order, for after. Approved, the statement goes on as if allowed; denied or expired,
//!   it is refused (42501) through the usual marker statement, so the resource's
//!   transaction and Sync state stay its own.
//! - **ticket**: a statement this principal already has an approved ticket for (same
//!   connection, same normalized text and values) runs, once; any other is refused at
//!   once with the new request's id.
//!
//! Every step goes into the session's audit chain: the request (decision `approve`, with
//! the approval id), each approver's decision and how it ended once the session learns
//! of them, then the statement that runs under it as an allowed request naming the
//! approval.

use std::sync::Arc;

use sluice_approvals::broker::describe_subjects;
use sluice_approvals::{Broker, BrokerError, NewApproval};
use sluice_core::{ApprovalMode, ApprovalStatus, Verdict};
use sluice_store::ApprovalRecord;
use tokio::io::{AsyncWriteExt, BufWriter, ReadHalf, WriteHalf};

use super::{ApprovalNeeded, Refusal, Session};
use crate::io::BoxIo;
use crate::protocol::backend::{self, Severity};
use crate::protocol::codec::{FrameError, FrameReader};
use crate::responses::RecordRef;

/// Bytes of client messages kept while a statement is held; beyond it the gateway stops
/// reading (the rest waits in the socket) until the hold ends.
const BACKLOG_LIMIT: usize = 1 << 20;

/// How asking for approval ended.
pub(super) enum Sought {
    /// Run the statement under this approval.
    Granted(String),
    /// Refuse it; `record` is its recorded request, which the refusal answers.
    Refused {
        refusal: Refusal,
        record: Option<RecordRef>,
    },
    /// The client left while its statement was held; the request is withdrawn.
    ClientLeft,
    /// The client broke the protocol while its statement was held: end the session.
    Broken(Refusal),
}

/// A held statement's request, as the hold starts.
struct Held {
    approval: ApprovalRecord,
    /// Its recorded request event.
    record: Option<RecordRef>,
    /// Where it is decided.
    link: String,
    /// Cancel requests of the session, seen up to the statement's arrival.
    cancels: tokio::sync::watch::Receiver<u64>,
}

/// What ended a hold other than the outcome.
enum Interrupt {
    Cancelled,
    ClientLeft,
    Broken(String),
}

impl Session {
    /// Asks for the approval `needed` (with the values bound to the statement, for an
    /// Execute), by the rule's mode.
    pub(super) async fn seek_approval(
        &mut self,
        needed: &ApprovalNeeded,
        parameters: &[Option<String>],
        client: &mut FrameReader<ReadHalf<BoxIo>>,
        server: &mut BufWriter<WriteHalf<BoxIo>>,
    ) -> Sought {
        let broker = self
            .gateway
            .approvals
            .clone()
            .expect("approval is sought only when the gateway has a broker");
        // Cancels from now on are for this statement (one sent while its request is
        // being stored must not be lost).
        let mut cancels = self.login.cancel_key.requests.clone();
        cancels.borrow_and_update();
        let fingerprint = sluice_approvals::fingerprint(&needed.normalized, parameters);
        if needed.approval.mode == ApprovalMode::Ticket {
            match broker
                .redeem(
                    &self.login.principal,
                    &self.login.connection.name,
                    &fingerprint,
                )
                .await
            {
                Ok(Some(ticket)) => {
                    self.record_outcome(&ticket).await;
                    return Sought::Granted(ticket.id);
                }
                Ok(None) => {}
                Err(e) => return self.broker_failed(needed, parameters, e).await,
            }
        }
        let request = NewApproval {
            requester: self.login.principal.clone(),
            connection: self.login.connection.name.clone(),
            protocol: "postgres".into(),
            session_id: self.recording.as_ref().map(|r| r.session_id().to_string()),
            statement: needed.text.clone(),
            parameters: parameters.to_vec(),
            fingerprint,
            reason: needed.reason.clone(),
            rule: needed.approval.rule.to_string(),
            approvers: needed.approval.approvers.clone(),
            mode: needed.approval.mode,
            timeout: needed.approval.timeout,
            min_approvals: needed.approval.min_approvals,
        };
        let approval = match broker.request(request).await {
            Ok(approval) => approval,
            Err(e) => return self.broker_failed(needed, parameters, e).await,
        };
        if approval.mode == ApprovalMode::Hold {
            // From here a session that ends withdraws it.
            self.held = Some(approval.id.clone());
        }
        let record = self
            .record_approval_request(needed, parameters, Some(approval.id.clone()))
            .await;
        let link = broker.console_link(&approval.id);
        let approvers = describe_subjects(&approval.approvers);
        match approval.mode {
            ApprovalMode::Ticket => Sought::Refused {
                refusal: Refusal {
                    rule: Some(approval.rule.clone()),
                    approval: true,
                    hint: Some(format!("follow it at {link}")),
                    ..Refusal::policy(format!(
                        "{}: approval {} requested (ticket); once it is approved, run exactly this statement again within {} ({})",
                        needed.message,
                        approval.id,
                        humantime::format_duration(broker.settings().grant_window),
                        waiting_for(&approvers, approval.min_approvals),
                    ))
                },
                record,
            },
            ApprovalMode::Hold => {
                let held = Held {
                    approval,
                    record,
                    link,
                    cancels,
                };
                self.hold(&broker, held, needed, client, server).await
            }
        }
    }

    /// Waits for the outcome of a held statement's approval.
    async fn hold(
        &mut self,
        broker: &Arc<Broker>,
        held: Held,
        needed: &ApprovalNeeded,
        client: &mut FrameReader<ReadHalf<BoxIo>>,
        server: &mut BufWriter<WriteHalf<BoxIo>>,
    ) -> Sought {
        let Held {
            approval,
            record,
            link,
            mut cancels,
        } = held;
        // What the client sent before this statement goes on while it waits.
        let _ = server.flush().await;
        let id = approval.id.clone();
        let notice = backend::error_response(
            Severity::Notice,
            "00000",
            &format!(
                "sluice: approval {id} requested: {} ({}); waiting up to {} for {}",
                needed.reason,
                approval.rule,
                humantime::format_duration(needed.approval.timeout),
                waiting_for(
                    &describe_subjects(&approval.approvers),
                    approval.min_approvals
                ),
            ),
            Some(&format!("follow or decide it at {link}")),
        );
        if let Some(notices) = &self.notices {
            let _ = notices.send(notice);
        }
        tracing::info!(principal = %self.login.principal.subject, connection = %self.login.connection.name,
            approval = %id, "statement held for approval");
        let mut cancels_open = true;
        let mut backlog_bytes = 0usize;
        let waiting_on = id.clone();
        let wait = broker.wait(&waiting_on);
        tokio::pin!(wait);
        let interrupted = loop {
            tokio::select! {
                outcome = &mut wait => break Ok(outcome),
                changed = cancels.changed(), if cancels_open => match changed {
                    Ok(()) => break Err(Interrupt::Cancelled),
                    Err(_) => cancels_open = false,
                },
                frame = client.next(), if backlog_bytes < BACKLOG_LIMIT => match frame {
                    Ok(frame) if frame.tag == b'X' => break Err(Interrupt::ClientLeft),
                    Ok(frame) => {
                        backlog_bytes += frame.raw.len();
                        self.backlog.push_back(frame);
                    }
                    Err(FrameError::Closed) => break Err(Interrupt::ClientLeft),
                    Err(e) => break Err(Interrupt::Broken(e.to_string())),
                },
            }
        };
        self.held = None;
        let outcome = match interrupted {
            Ok(outcome) => outcome,
            Err(Interrupt::Cancelled) => broker.withdraw(&id).await.inspect(|now| {
                if now.status != ApprovalStatus::Approved {
                    tracing::info!(approval = %id, "held statement cancelled by the client");
                }
            }),
            Err(Interrupt::ClientLeft) => {
                self.withdraw_held(&id).await;
                return Sought::ClientLeft;
            }
            Err(Interrupt::Broken(e)) => {
                self.withdraw_held(&id).await;
                return Sought::Broken(Refusal {
                    code: "08P01",
                    message: format!("sluice: invalid message from client: {e}"),
                    ..Default::default()
                });
            }
        };
        let approval = match outcome {
            Ok(approval) => approval,
            Err(e) => {
                // The outcome cannot be read: the statement does not run. Withdrawing may
                // fail too; the sweeper expires the request at its deadline.
                let _ = broker.withdraw(&id).await;
                return Sought::Refused {
                    refusal: unavailable(&e),
                    record,
                };
            }
        };
        self.record_outcome(&approval).await;
        let rule = Some(approval.rule.clone());
        let refusal = match approval.status {
            ApprovalStatus::Approved => {
                tracing::info!(approval = %id, "held statement approved; running it");
                return Sought::Granted(id);
            }
            ApprovalStatus::Denied => {
                let denial = approval
                    .decisions
                    .iter()
                    .rev()
                    .find(|d| d.verdict == Verdict::Deny);
                let (who, why) = denial
                    .map(|d| (d.approver.subject.as_str(), d.reason.as_str()))
                    .unwrap_or(("an approver", "no reason recorded"));
                Refusal::policy(format!("sluice: approval {id} denied by {who}: {why}"))
            }
            ApprovalStatus::Expired => Refusal::policy(format!(
                "sluice: approval {id} expired: no decision within {}",
                humantime::format_duration(needed.approval.timeout)
            )),
            ApprovalStatus::Withdrawn => Refusal {
                // As PostgreSQL answers a cancelled statement.
                code: "57014",
                message: format!(
                    "canceling statement due to user request (sluice: approval {id} withdrawn)"
                ),
                ..Default::default()
            },
            status => Refusal::policy(format!("sluice: approval {id} is {status}")),
        };
        Sought::Refused {
            refusal: Refusal {
                rule,
                approval: true,
                ..refusal
            },
            record,
        }
    }

    /// Withdraws a held request whose session is going away, and records that.
    pub(super) async fn withdraw_held(&self, id: &str) {
        let Some(broker) = &self.gateway.approvals else {
            return;
        };
        match broker.withdraw(id).await {
            Ok(approval) => self.record_outcome(&approval).await,
            Err(e) => {
                tracing::warn!(approval = %id, error = %e, "held approval request not withdrawn; it expires at its deadline")
            }
        }
    }

    /// Records each decision of `approval` and how it ended, in this session's chain.
    async fn record_outcome(&self, approval: &ApprovalRecord) {
        let Some(recording) = &self.recording else {
            return;
        };
        let (decisions, resolved) = sluice_approvals::outcome_events(approval);
        recording.approval_outcome(decisions, resolved).await;
    }

    /// Records the request for approval. The statement does not run on this record (one
    /// that runs later is recorded again, allowed), so a failure is logged, not refused.
    async fn record_approval_request(
        &self,
        needed: &ApprovalNeeded,
        parameters: &[Option<String>],
        approval_id: Option<String>,
    ) -> Option<RecordRef> {
        let recording = self.recording.as_ref()?;
        let request = sluice_audit::Request {
            text: needed.text.clone(),
            classification: needed.classification.clone(),
            decision: sluice_audit::Decision::Approve,
            rule: Some(needed.approval.rule.to_string()),
            approval_id,
            parameters: parameters.to_vec(),
        };
        match recording.request(request).await {
            Ok(seq) => Some(RecordRef {
                seq,
                sent: std::time::Instant::now(),
            }),
            Err(e) => {
                tracing::error!(principal = %self.login.principal.subject, error = %e, "approval request not recorded");
                None
            }
        }
    }

    async fn broker_failed(
        &self,
        needed: &ApprovalNeeded,
        parameters: &[Option<String>],
        e: BrokerError,
    ) -> Sought {
        tracing::error!(principal = %self.login.principal.subject, error = %e, "statement refused: approval cannot be asked for");
        Sought::Refused {
            refusal: Refusal {
                rule: Some(needed.approval.rule.to_string()),
                approval: true,
                ..unavailable(&e)
            },
            record: self.record_approval_request(needed, parameters, None).await,
        }
    }
}

fn unavailable(e: &BrokerError) -> Refusal {
    if let BrokerError::Limit(limit) = e {
        return Refusal {
            code: "53400",
            message: format!("sluice: this statement needs approval, and {limit}"),
            ..Default::default()
        };
    }
    Refusal {
        code: "58030",
        message: format!(
            "sluice: this statement needs approval, and approvals are unavailable: {e}"
        ),
        ..Default::default()
    }
}

/// `groups dba-oncall` or `2 approvals from groups dba-oncall`.
fn waiting_for(approvers: &str, min_approvals: u32) -> String {
    if min_approvals > 1 {
        format!("{min_approvals} approvals from {approvers}")
    } else {
        format!("approval from {approvers}")
    }
}
