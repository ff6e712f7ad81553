//! The relay: where every statement is judged.
//!
//! Two halves run concurrently in one task: client to resource ([`Session::client_to_server`])
//! judges and forwards; resource to client ([`server_to_client`]) forwards verbatim, rewrites
//! the errors of refused statements, and ends the session when the token expires or the
//! gateway shuts down.
//!
//! A refused statement is never answered by the gateway alone. It sends the resource, in
//! the refused message's place, a statement that fails without side effects and whose
//! error names a random marker (`FETCH` of a cursor, or `Execute` of a portal, called
//! `sluice_refused_<nonce>_<n>`), and rewrites that error into the refusal on the way back.
//! So the client sees its refusal exactly where PostgreSQL would have put an error, and the
//! resource's transaction and error-until-Sync state are what they would have been had the
//! statement failed there. If the resource skips the marker statement (because an earlier
//! statement of the batch failed), the client sees that earlier error only, as it would.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use rand::Rng;
use sluice_sql::{CopyOut, CopyOutFormat, SearchPath, SearchPathChange, StatementClass, Usage};
use tokio::io::{AsyncWriteExt, BufWriter, ReadHalf, WriteHalf};

use crate::cancel::CancelTarget;
use crate::catalog::Catalog;
use crate::gather::GatherWriter;
use crate::io::BoxIo;
use crate::login::{LoggedIn, MAX_FRONTEND_MESSAGE};
use crate::masking::{CopyMask, ResultMask, SessionMasks};
use crate::protocol::backend::{self, error_fields, Severity};
use crate::protocol::codec::{Frame, FrameError, FrameReader};
use crate::protocol::frontend::{self, FrontendMessage};
use crate::recording::{bind_values, classification_json, RecordedStatement, ResultRecording};
use crate::responses::{Answering, RecordRef, Request, ResponseTracker};
use crate::upstream::MAX_BACKEND_MESSAGE;

mod approval;
mod ready;

use crate::PgGateway;
use approval::Sought;
use ready::ReadyCount;

/// Settings that change how statement text is read (encoding, string-literal escapes).
const LEXICAL_SETTINGS: &[&str] = &[
    "client_encoding",
    "standard_conforming_strings",
    "backslash_quote",
];

/// A refusal on its way: the marker the resource's error will name, and the error the
/// client gets instead.
struct PendingRefusal {
    marker: String,
    error: Bytes,
    /// The ReadyForQuery that ends the batch it belongs to; once that has passed, the
    /// marker can no longer appear.
    sync_point: u64,
}

#[derive(Default)]
struct Shared {
    pending: VecDeque<PendingRefusal>,
    /// Requests sent and not yet answered; kept only when the session masks or records
    /// results.
    responses: ResponseTracker,
    copy_in: CopyInSyncs,
}

/// The resource ignores Sync in copy-in mode: no ReadyForQuery answers those Syncs, so
/// the sync points the client half counts must not include them, or anything waiting for
/// the resource to catch up (settle, refusal bookkeeping) would wait forever. Whether a
/// Sync is ignored depends on whether the resource entered copy-in (its
/// CopyInResponse), which may come before or after the Sync: both halves keep this
/// together under the shared lock.
#[derive(Default)]
struct CopyInSyncs {
    /// A COPY FROM STDIN was sent and the client has not ended its data (CopyDone or
    /// CopyFail) nor sent another statement.
    pending: bool,
    /// The resource said CopyInResponse for it.
    entered: bool,
    /// Syncs sent while `pending` and before `entered`, counted as sync points: the
    /// resource's CopyInResponse credits them as answered.
    uncredited: u64,
}

/// What the session knows of an SQL-level prepared statement (`PREPARE name AS ...`).
///
/// The gateway cannot see whether the resource ran a `PREPARE` or a `DEALLOCATE` (an
/// earlier statement of the string may fail, and the rest is skipped), so it never
/// forgets: `EXECUTE name` is judged against every statement ever prepared under the
/// name, and a second `PREPARE` of a name not deallocated is refused as PostgreSQL
/// refuses it.
#[derive(Default)]
struct SqlPrepared {
    candidates: Vec<StatementClass>,
    /// A `DEALLOCATE` of it (or `DEALLOCATE ALL`, `DISCARD ALL`) was sent.
    deallocated: bool,
}

/// Statement and portal names the gateway uses at the resource for what needs approval;
/// clients may not use them.
const PRIVATE_PREFIX: &str = "sluice_apr_";

/// What the session knows of a prepared statement (and of the portals bound from it).
#[derive(Clone, Default)]
struct Prepared {
    /// The name at the resource, when it is not the client's: a statement (or portal)
    /// that needs approval is parsed (bound) under a private name, so nothing the client
    /// sends under its own names (a Parse or Bind the resource skips after an error, an
    /// unconfirmed DEALLOCATE) can leave the gateway believing a name holds something
    /// harmless while the resource holds the statement that needs approval.
    wire_name: Option<String>,
    /// Its `COPY ... TO STDOUT` plan, when it is one and the session masks.
    copy: Option<Arc<CopyOut>>,
    /// How each execution is recorded, when the session records.
    record: Option<Arc<RecordedStatement>>,
    /// A portal's bound parameter values, for its executions' records and approvals.
    parameters: Arc<Vec<Option<String>>>,
    /// Executions need this approval first.
    approval: Option<Arc<ApprovalNeeded>>,
    /// A portal's approval, once granted: its further Executes (after PortalSuspended)
    /// continue the same execution.
    approved: Option<String>,
}

/// The classification and deciding rules of the SQL judged last, for its request event.
#[derive(Default)]
struct Judgement {
    class: Option<Arc<sluice_sql::Classification>>,
    rules: Vec<String>,
}

/// The last SQL whose every statement the policy allowed outright, and how it was
/// classified and judged. That verdict depends only on the text and the search path it
/// was read with (no statement of it prepares, executes or deallocates anything, or
/// names a cursor, and the session's policy is fixed at login), so the same text under
/// the same path is not judged again: clients of the extended protocol parse the same
/// unnamed statement for every execution.
struct AllowedSql {
    /// Rewritten in place for the next text, so a session whose texts never repeat
    /// (literals inlined) allocates no new copy per statement.
    sql: String,
    search_path: SearchPath,
    class: Arc<sluice_sql::Classification>,
    /// The deciding rules as recorded (empty when the session is not recorded).
    rules: Vec<String>,
}

/// How one statement was judged, when it may run at all.
enum StatementJudgement {
    /// By these allow rules (none for what is always allowed).
    Allowed(Vec<sluice_policy::RuleRef>),
    /// Once approved.
    NeedsApproval {
        approval: sluice_policy::Approval,
        /// `delete on public.orders requires approval`
        reason: String,
        /// As a refusal would put it: `sluice: ... (policy p, approve rule 1)`.
        message: String,
    },
}

/// A string that may run: what it needs and what it changes.
struct Judged {
    copies: Vec<Arc<CopyOut>>,
    effects: Effects,
    /// Its statements run once this approval is granted.
    approval: Option<ApprovalNeeded>,
}

/// What a string changes in the session once it runs (see [`Session::apply`]).
struct Effects {
    search_path: SearchPath,
    user_in_path: bool,
    role_changed: bool,
    /// Statements that prepare or deallocate SQL-level prepared statements.
    statements: Vec<StatementClass>,
}

/// What the session knows of SQL that needs approval before it runs.
#[derive(Debug, Clone)]
struct ApprovalNeeded {
    approval: sluice_policy::Approval,
    reason: String,
    message: String,
    /// The SQL as the agent sent it.
    text: String,
    /// Its normalized text, for a ticket's fingerprint.
    normalized: String,
    /// Its classification as recorded (null when the session is not recorded).
    classification: Arc<serde_json::Value>,
}

/// What a session that masks results needs.
#[derive(Clone)]
struct Masking {
    masks: Arc<SessionMasks>,
    catalog: Arc<Catalog>,
}

/// Why a message is refused: SQLSTATE and message, and for a syntax error where in the
/// statement it is.
#[derive(Default)]
struct Refusal {
    code: &'static str,
    message: String,
    position: Option<u32>,
    /// The policy rule that decided, for the record.
    rule: Option<String>,
    /// The decision was `approve` (recorded as such when no approval could be asked for).
    approval: bool,
    /// What to do about it (psql shows it as `HINT:`).
    hint: Option<String>,
}

impl Refusal {
    fn policy(message: String) -> Self {
        Refusal {
            code: "42501",
            message,
            ..Default::default()
        }
    }
}

pub struct Session {
    login: LoggedIn,
    gateway: Arc<PgGateway>,
    search_path: SearchPath,
    /// Extended-protocol statement names whose Parse was allowed.
    statements: HashMap<String, Prepared>,
    /// Portals bound from those statements (sessions that mask or record).
    portals: HashMap<String, Prepared>,
    /// Records the session, unless recording is off.
    recording: Option<sluice_recorder::SessionRecorder>,
    /// Whether requests are tracked to tie responses to them (masking or recording).
    tracking: bool,
    judgement: Judgement,
    /// SQL-level `PREPARE name AS ...`, for judging `EXECUTE name`.
    sql_prepared: HashMap<String, SqlPrepared>,
    /// Statements and portals that need approval live at the resource under names of the
    /// gateway's own (`sluice_apr_<nonce>_<n>`), never under the client's: see
    /// [`Prepared::wire_name`]. This counts them.
    private_names: u64,
    nonce: String,
    refusals: u64,
    /// Sync points (Sync, Query) sent to the resource so far.
    sync_points: u64,
    /// After an extended-protocol refusal, client messages up to Sync are dropped (the
    /// resource would discard them anyway).
    discard_until_sync: bool,
    /// Set when a mask applies to the session.
    masking: Option<Masking>,
    /// Whether a search path in force may hold `"$user"`.
    user_in_path: bool,
    /// SET ROLE or SET SESSION AUTHORIZATION ran: `"$user"` no longer names a known schema.
    role_changed: bool,
    /// Whether the last SQL judged calls a function other than the reviewed built-ins
    /// (see [`Session::settle`]).
    last_judged_risky: bool,
    /// Extended-protocol statements that call such functions.
    risky_statements: std::collections::HashSet<String>,
    /// Statements and portals that are `COPY ... FROM STDIN` (see [`CopyInSyncs`]).
    copy_in_statements: std::collections::HashSet<String>,
    copy_in_portals: std::collections::HashSet<String>,
    /// The SQL judged last reads COPY data from the client.
    last_judged_copy_in: bool,
    /// A risky statement was executed: settle at the next Sync.
    settle_after_sync: bool,
    /// The sync point to wait for before reading the client's next message.
    settle_at: Option<u64>,
    /// See [`AllowedSql`].
    last_allowed: Option<AllowedSql>,
    /// ReadyForQuery messages the resource has sent, from the other half.
    ready: Arc<ReadyCount>,
    /// Messages the client sent while a statement of its was held for approval, to be
    /// handled once the hold ends.
    backlog: VecDeque<Frame>,
    /// The approval a statement of this session waits on, withdrawn if the session ends
    /// meanwhile.
    held: Option<String>,
    /// Messages for the client from the gateway itself (an approval's NoticeResponse),
    /// written by the other half between the resource's messages.
    notices: Option<tokio::sync::mpsc::UnboundedSender<Bytes>>,
}

/// How a session ended, for the log.
enum End {
    ClientLeft,
    ServerLeft,
    /// Ended by the gateway; `notice` is the FATAL still to send to the client.
    Fatal {
        reason: String,
        notice: Option<Bytes>,
    },
}

impl End {
    fn fatal(refusal: Refusal) -> Self {
        let notice = backend::error_response(Severity::Fatal, refusal.code, &refusal.message, None);
        End::Fatal {
            reason: refusal.message,
            notice: Some(notice),
        }
    }

    fn sent(reason: &str) -> Self {
        End::Fatal {
            reason: reason.to_string(),
            notice: None,
        }
    }
}

impl Session {
    pub fn new(login: LoggedIn, gateway: Arc<PgGateway>) -> Self {
        let nonce: u64 = rand::rng().random();
        let masking = SessionMasks::new(&login.policy, &gateway.mask_hash_key).and_then(|masks| {
            Some(Masking {
                masks,
                catalog: gateway.catalogs.get(&login.connection.name)?.clone(),
            })
        });
        let user_in_path = login.connection.search_path_has_user;
        let recording = login.recording.clone();
        Session {
            tracking: masking.is_some() || recording.is_some(),
            recording,
            judgement: Judgement::default(),
            search_path: login.connection.search_path.clone(),
            login,
            gateway,
            statements: HashMap::new(),
            portals: HashMap::new(),
            sql_prepared: HashMap::new(),
            private_names: 0,
            nonce: format!("{nonce:016x}"),
            refusals: 0,
            sync_points: 0,
            discard_until_sync: false,
            masking,
            user_in_path,
            role_changed: false,
            last_judged_risky: false,
            risky_statements: Default::default(),
            copy_in_statements: Default::default(),
            copy_in_portals: Default::default(),
            last_judged_copy_in: false,
            settle_after_sync: false,
            settle_at: None,
            last_allowed: None,
            ready: Arc::default(),
            backlog: VecDeque::new(),
            held: None,
            notices: None,
        }
    }

    pub async fn run(
        mut self,
        client: FrameReader<BoxIo>,
        closing: tokio::sync::watch::Receiver<bool>,
    ) -> String {
        let (client_io, client_buf) = client.into_parts();
        let (client_r, client_w) = tokio::io::split(client_io);
        let mut client_r = FrameReader::with_buffer(client_r, client_buf, MAX_FRONTEND_MESSAGE);
        let mut client_w = GatherWriter::new(client_w);

        let upstream = std::mem::replace(
            &mut self.login.upstream.stream,
            FrameReader::new(Box::new(tokio::io::empty()) as BoxIo, 0),
        );
        let (server_io, server_buf) = upstream.into_parts();
        let (server_r, server_w) = tokio::io::split(server_io);
        let mut server_r = FrameReader::with_buffer(server_r, server_buf, MAX_BACKEND_MESSAGE);
        let mut server_w = BufWriter::new(server_w);

        let shared = Arc::new(Mutex::new(Shared::default()));
        let expires_at = self.login.principal.expires_at;
        let row_limit = self.login.policy.limits.max_rows.map(|max| RowLimit {
            max,
            cancel: CancelTarget {
                upstream: self.login.upstream.addr,
                pid: self.login.upstream.pid,
                secret: self.login.upstream.secret,
            },
        });

        let masking = self.masking.clone();
        let caps = self
            .gateway
            .recorder
            .as_ref()
            .map(|r| r.settings().result_caps)
            .unwrap_or_default();
        let result_recording = self
            .recording
            .clone()
            .map(|session| ResultRecording::new(session, caps));
        let tracking = self.tracking;
        let (notices_tx, notices) = tokio::sync::mpsc::unbounded_channel();
        self.notices = Some(notices_tx);
        let ready = self.ready.clone();
        let end = {
            let relay_in = self.client_to_server(&mut client_r, &mut server_w, &shared);
            let relay = ServerRelay {
                shared: &shared,
                tracking,
                recording: result_recording,
                row_limit,
                counter: RowCounter::default(),
                ready_seen: 0,
                ready,
                masking: masking.map(|setup| ResultMasking {
                    setup,
                    current: None,
                    portals: HashMap::new(),
                    copy: None,
                    rows: None,
                    masked_rows: BytesMut::new(),
                    replacement: String::new(),
                }),
            };
            let relay_out = server_to_client(
                &mut server_r,
                &mut client_w,
                relay,
                expires_at,
                closing,
                notices,
            );
            tokio::select! {
                end = relay_in => end,
                end = relay_out => end,
            }
        };
        // The session ended while a statement waited for approval (the token expired,
        // the gateway is shutting down, the resource left): the request is withdrawn.
        if let Some(id) = self.held.take() {
            self.withdraw_held(&id).await;
        }
        if let End::Fatal {
            notice: Some(notice),
            ..
        } = &end
        {
            let _ = client_w.write_all(notice).await;
            let _ = client_w.flush().await;
        }
        // Say goodbye to the resource properly rather than leave it an unexpected EOF.
        let _ = server_w.write_all(&backend::message(b'X', &[])).await;
        let _ = server_w.flush().await;
        let _ = client_w.shutdown().await;
        let reason = match end {
            End::ClientLeft => "client left".into(),
            End::ServerLeft => "resource closed the connection".into(),
            End::Fatal { reason, .. } => reason,
        };
        if let Some(recording) = &self.recording {
            recording.close(&reason).await;
        }
        reason
    }

    async fn client_to_server(
        &mut self,
        client: &mut FrameReader<ReadHalf<BoxIo>>,
        server: &mut BufWriter<WriteHalf<BoxIo>>,
        shared: &Mutex<Shared>,
    ) -> End {
        loop {
            // Messages the client sent while a statement of its was held come first.
            let next = match self.backlog.pop_front() {
                Some(frame) => Ok(frame),
                None => client.next().await,
            };
            let frame = match next {
                Ok(frame) => frame,
                Err(FrameError::Closed) => return End::ClientLeft,
                Err(e) => {
                    return End::fatal(Refusal {
                        code: "08P01",
                        message: format!("sluice: invalid message from client: {e}"),
                        ..Default::default()
                    })
                }
            };
            match self
                .handle_client_frame(&frame, client, server, shared)
                .await
            {
                Ok(Continue::Yes) => {}
                Ok(Continue::Terminate) => {
                    let _ = server.flush().await;
                    return End::ClientLeft;
                }
                Err(refusal) => return End::fatal(refusal),
            }
            if let Some(sync_point) = self.settle_at.take() {
                if let Err(end) = self.settle(sync_point, server).await {
                    return end;
                }
            }
            if !client.has_buffered_frame()
                && self.backlog.is_empty()
                && server.flush().await.is_err()
            {
                return End::ServerLeft;
            }
        }
    }

    /// Judges one client message and forwards it, or its refusal. An `Err` ends the
    /// session with a FATAL.
    async fn handle_client_frame(
        &mut self,
        frame: &Frame,
        client: &mut FrameReader<ReadHalf<BoxIo>>,
        server: &mut BufWriter<WriteHalf<BoxIo>>,
        shared: &Mutex<Shared>,
    ) -> Result<Continue, Refusal> {
        let message = FrontendMessage::decode(frame).map_err(|e| Refusal {
            code: "08P01",
            message: format!("sluice: {e}"),
            ..Default::default()
        })?;
        if self.discard_until_sync
            && !matches!(message, FrontendMessage::Sync | FrontendMessage::Terminate)
        {
            return Ok(Continue::Yes);
        }
        let lost = |_| Refusal {
            code: "08006",
            message: "sluice: lost the connection to the resource".into(),
            ..Default::default()
        };
        match message {
            FrontendMessage::Query { sql } => match self.judge_sql(sql).await {
                Ok(judged) => {
                    let approval_id = match &judged.approval {
                        None => None,
                        Some(needed) => match self.seek_approval(needed, &[], client, server).await
                        {
                            Sought::Granted(id) => Some(id),
                            Sought::Refused { refusal, record } => {
                                return self
                                    .refuse_simple(refusal, record, server, shared)
                                    .await
                                    .map(|_| Continue::Yes)
                                    .map_err(lost);
                            }
                            Sought::ClientLeft => return Ok(Continue::Terminate),
                            Sought::Broken(refusal) => return Err(refusal),
                        },
                    };
                    self.apply(judged.effects);
                    let copies = judged.copies;
                    let record = match self.record_allowed(sql, approval_id).await {
                        Ok(record) => record,
                        Err(refusal) => {
                            return self
                                .refuse_simple(refusal, None, server, shared)
                                .await
                                .map(|_| Continue::Yes)
                                .map_err(lost);
                        }
                    };
                    self.track(
                        shared,
                        Request::Query {
                            copies: copies.into(),
                            record,
                        },
                    );
                    self.statement_sent(shared, self.last_judged_copy_in);
                    server.write_all(&frame.raw).await.map_err(lost)?;
                    self.sync_points += 1;
                    if self.last_judged_risky {
                        self.settle_at = Some(self.sync_points);
                    }
                }
                Err(refusal) => {
                    let record = self.record_refused(sql, &refusal).await;
                    self.refuse_simple(refusal, record, server, shared)
                        .await
                        .map_err(lost)?
                }
            },
            // PostgreSQL refuses to parse a name that exists (only the unnamed statement is
            // replaced), and the gateway must not let its own picture of the name change
            // while the resource keeps the old statement.
            FrontendMessage::Parse { name, sql } if self.check_new_name(name).is_err() => {
                let refusal = self.check_new_name(name).expect_err("checked in the guard");
                let record = self.record_refused(sql, &refusal).await;
                self.refuse_extended(refusal, record, server, shared)
                    .await
                    .map_err(lost)?;
            }
            FrontendMessage::Parse { name, sql } => match self.judge_sql(sql).await {
                Ok(judged) => {
                    // Parse runs nothing: a statement that needs approval is asked for
                    // it at each Execute, with the values bound to it.
                    self.apply(judged.effects);
                    let mut copies = judged.copies;
                    let approval = judged.approval.map(Arc::new);
                    let record = self.recording.as_ref().map(|_| {
                        Arc::new(RecordedStatement {
                            text: sql.to_string(),
                            classification: self.judgement_json(),
                            rule: self.judgement_rule(),
                        })
                    });
                    let wire_name = approval.is_some().then(|| self.private_name());
                    self.statements.insert(
                        name.to_string(),
                        Prepared {
                            wire_name: wire_name.clone(),
                            copy: copies.pop(),
                            record,
                            approval,
                            ..Default::default()
                        },
                    );
                    if self.last_judged_risky {
                        self.risky_statements.insert(name.to_string());
                    } else {
                        self.risky_statements.remove(name);
                    }
                    if self.last_judged_copy_in {
                        self.copy_in_statements.insert(name.to_string());
                    } else {
                        self.copy_in_statements.remove(name);
                    }
                    self.track(shared, Request::Parse);
                    match &wire_name {
                        Some(wire) => server
                            .write_all(&frontend::renamed(frame, &[wire]))
                            .await
                            .map_err(lost)?,
                        None => server.write_all(&frame.raw).await.map_err(lost)?,
                    }
                }
                Err(refusal) => {
                    self.statements.remove(name);
                    let record = self.record_refused(sql, &refusal).await;
                    self.refuse_extended(refusal, record, server, shared)
                        .await
                        .map_err(lost)?;
                }
            },
            FrontendMessage::Bind { statement, .. }
            | FrontendMessage::Describe {
                kind: b'S',
                name: statement,
            } => {
                if let Some(prepared) = self.statements.get(statement).cloned() {
                    if let FrontendMessage::Bind { portal, .. } = message {
                        if self.copy_in_statements.contains(statement) {
                            self.copy_in_portals.insert(portal.to_string());
                        } else if !self.copy_in_portals.is_empty() {
                            self.copy_in_portals.remove(portal);
                        }
                    }
                    // Requests are tracked before they are written: a large message goes
                    // straight to the socket, and its answer may come back at once.
                    match message {
                        FrontendMessage::Bind { portal, .. }
                            if portal.starts_with(PRIVATE_PREFIX) =>
                        {
                            let refusal = self.check_new_name(portal).expect_err("reserved");
                            let record = self.record_refused("Bind", &refusal).await;
                            self.refuse_extended(refusal, record, server, shared)
                                .await
                                .map_err(lost)?;
                        }
                        FrontendMessage::Bind { portal, .. }
                            if self.tracking || prepared.approval.is_some() =>
                        {
                            let bound = if self.recording.is_some() || prepared.approval.is_some() {
                                match bind_values(frame.body()) {
                                    Some(bound) => bound,
                                    // An approver must see the values the statement runs with.
                                    None if prepared.approval.is_some() => {
                                        let refusal = Refusal {
                                            code: "08P01",
                                            message: "sluice: cannot read this Bind's parameter values, and the statement needs approval with them".into(),
                                            ..Default::default()
                                        };
                                        let record = self.record_refused("Bind", &refusal).await;
                                        return self
                                            .refuse_extended(refusal, record, server, shared)
                                            .await
                                            .map(|_| Continue::Yes)
                                            .map_err(lost);
                                    }
                                    None => Default::default(),
                                }
                            } else {
                                Default::default()
                            };
                            let formats = bound.result_formats;
                            let wire_portal =
                                prepared.wire_name.is_some().then(|| self.private_name());
                            let wire_frame = match (&wire_portal, &prepared.wire_name) {
                                (Some(wire_portal), Some(wire_statement)) => {
                                    Some(frontend::renamed(frame, &[wire_portal, wire_statement]))
                                }
                                _ => None,
                            };
                            self.portals.insert(
                                portal.to_string(),
                                Prepared {
                                    parameters: Arc::new(bound.parameters),
                                    wire_name: wire_portal.clone(),
                                    ..prepared
                                },
                            );
                            self.track(
                                shared,
                                Request::Bind {
                                    portal: portal.to_string(),
                                    statement: statement.to_string(),
                                    formats,
                                },
                            );
                            match &wire_frame {
                                Some(renamed) => server.write_all(renamed).await.map_err(lost)?,
                                None => server.write_all(&frame.raw).await.map_err(lost)?,
                            }
                            if self.masking.is_some() {
                                // Learn the result's columns before its rows come: Execute's
                                // rows carry no description of their own.
                                self.track(
                                    shared,
                                    Request::GatewayDescribe {
                                        portal: portal.to_string(),
                                    },
                                );
                                server
                                    .write_all(&frontend::describe_portal(
                                        wire_portal.as_deref().unwrap_or(portal),
                                    ))
                                    .await
                                    .map_err(lost)?;
                            }
                        }
                        FrontendMessage::Bind { portal, .. } => {
                            if !self.portals.is_empty() {
                                // A portal of that name bound earlier from a statement that
                                // needs approval is gone.
                                self.portals.remove(portal);
                            }
                            server.write_all(&frame.raw).await.map_err(lost)?;
                        }
                        _ => {
                            self.track(
                                shared,
                                Request::DescribeStatement {
                                    statement: statement.to_string(),
                                },
                            );
                            match &prepared.wire_name {
                                Some(wire) => server
                                    .write_all(&frontend::renamed(frame, &[wire]))
                                    .await
                                    .map_err(lost)?,
                                None => server.write_all(&frame.raw).await.map_err(lost)?,
                            }
                        }
                    }
                } else {
                    // Never parsed through the gateway, or refused: the resource must not
                    // bind a statement (the unnamed one above all) the gateway did not let in.
                    let refusal = Refusal {
                        code: "26000",
                        message: format!("prepared statement \"{statement}\" does not exist"),
                        ..Default::default()
                    };
                    let what = match message {
                        FrontendMessage::Bind { .. } => "Bind",
                        _ => "Describe",
                    };
                    let record = self
                        .record_refused(
                            &format!("{what} of prepared statement \"{statement}\""),
                            &refusal,
                        )
                        .await;
                    self.refuse_extended(refusal, record, server, shared)
                        .await
                        .map_err(lost)?;
                }
            }
            FrontendMessage::Close { kind: b'S', name } => {
                let wire = self.statements.remove(name).and_then(|p| p.wire_name);
                self.risky_statements.remove(name);
                self.track(shared, Request::Close);
                self.write_renamed(frame, wire.as_deref(), server)
                    .await
                    .map_err(lost)?;
            }
            FrontendMessage::Sync => {
                self.discard_until_sync = false;
                self.track(shared, Request::Sync);
                let answered = {
                    let mut shared = shared.lock();
                    let copy = &mut shared.copy_in;
                    if copy.pending && !copy.entered {
                        copy.uncredited += 1;
                    }
                    // Ignored by the resource: no ReadyForQuery will come for it.
                    !(copy.pending && copy.entered)
                };
                server.write_all(&frame.raw).await.map_err(lost)?;
                if answered {
                    self.sync_points += 1;
                }
                if std::mem::take(&mut self.settle_after_sync) {
                    self.settle_at = Some(self.sync_points);
                }
            }
            FrontendMessage::Terminate => return Ok(Continue::Terminate),
            FrontendMessage::FunctionCall => {
                let refusal = Refusal::policy(
                    "sluice: the FunctionCall message is not allowed; call functions with SQL"
                        .into(),
                );
                let record = self.record_refused("FunctionCall", &refusal).await;
                self.refuse_simple(refusal, record, server, shared)
                    .await
                    .map_err(lost)?;
            }
            FrontendMessage::Describe { name, .. } => {
                self.track(
                    shared,
                    Request::DescribePortal {
                        portal: name.to_string(),
                    },
                );
                let wire = self.portals.get(name).and_then(|p| p.wire_name.clone());
                self.write_renamed(frame, wire.as_deref(), server)
                    .await
                    .map_err(lost)?
            }
            FrontendMessage::Execute { portal } => {
                // Over-cautious on purpose: any Execute while a risky statement exists.
                self.settle_after_sync |= !self.risky_statements.is_empty();
                let prepared = self.portals.get(portal).cloned().unwrap_or_default();
                let approval_id = match (&prepared.approval, &prepared.approved) {
                    (None, _) => None,
                    (Some(_), Some(id)) => Some(id.clone()),
                    (Some(needed), None) => {
                        match self
                            .seek_approval(needed, &prepared.parameters, client, server)
                            .await
                        {
                            Sought::Granted(id) => {
                                if let Some(bound) = self.portals.get_mut(portal) {
                                    bound.approved = Some(id.clone());
                                }
                                Some(id)
                            }
                            Sought::Refused { refusal, record } => {
                                return self
                                    .refuse_extended(refusal, record, server, shared)
                                    .await
                                    .map(|_| Continue::Yes)
                                    .map_err(lost);
                            }
                            Sought::ClientLeft => return Ok(Continue::Terminate),
                            Sought::Broken(refusal) => return Err(refusal),
                        }
                    }
                };
                let record = match self
                    .record_execution(
                        portal,
                        prepared.record.as_deref(),
                        &prepared.parameters,
                        approval_id,
                    )
                    .await
                {
                    Ok(record) => record,
                    Err(refusal) => {
                        return self
                            .refuse_extended(refusal, None, server, shared)
                            .await
                            .map(|_| Continue::Yes)
                            .map_err(lost);
                    }
                };
                self.track(
                    shared,
                    Request::Execute {
                        portal: portal.to_string(),
                        copy: prepared.copy,
                        record,
                    },
                );
                self.statement_sent(shared, self.copy_in_portals.contains(portal));
                self.write_renamed(frame, prepared.wire_name.as_deref(), server)
                    .await
                    .map_err(lost)?
            }
            FrontendMessage::Close { name, .. } => {
                self.track(shared, Request::Close);
                let wire = self.portals.get(name).and_then(|p| p.wire_name.clone());
                self.write_renamed(frame, wire.as_deref(), server)
                    .await
                    .map_err(lost)?
            }
            FrontendMessage::CopyDone | FrontendMessage::CopyFail => {
                self.track(shared, Request::CopyEnd);
                shared.lock().copy_in.pending = false;
                server.write_all(&frame.raw).await.map_err(lost)?
            }
            FrontendMessage::Flush | FrontendMessage::CopyData => {
                server.write_all(&frame.raw).await.map_err(lost)?
            }
            FrontendMessage::Other(tag) => {
                return Err(Refusal {
                    code: "08P01",
                    message: format!(
                        "sluice: unexpected message type \"{}\"",
                        (tag as char).escape_default()
                    ),
                    ..Default::default()
                })
            }
        }
        Ok(Continue::Yes)
    }

    /// Waits, before reading the client's next message, until the resource has answered up
    /// to `sync_point`.
    ///
    /// The gateway reads statements as the resource does only while
    /// `standard_conforming_strings` is on and the encoding is UTF-8; `SET` of those is
    /// refused, but a function (`set_config`, or any user-defined function, procedure or
    /// `DO` block) can change them too. The resource reports such a change in a
    /// ParameterStatus before its ReadyForQuery, and the other half then ends the session.
    /// A client that pipelined its next statement behind the call would have it read by
    /// the resource under the new setting before the gateway saw the report, so after a
    /// statement that calls anything but the reviewed built-ins, the gateway lets nothing
    /// more through until that report could have come.
    async fn settle(
        &mut self,
        sync_point: u64,
        server: &mut BufWriter<WriteHalf<BoxIo>>,
    ) -> Result<(), End> {
        server.flush().await.map_err(|_| End::ServerLeft)?;
        // If the resource leaves meanwhile, the other half ends the session, and this wait
        // with it.
        self.ready.wait_for(sync_point).await;
        Ok(())
    }

    /// Notes a request sent to the resource, when the session masks results (see
    /// [`crate::responses`]). Called before the request is written, so the answer can never
    /// arrive before it is expected.
    fn track(&self, shared: &Mutex<Shared>, request: Request) {
        if self.tracking {
            shared.lock().responses.push(request);
        }
    }

    /// `DEALLOCATE name`, or with an empty name `DEALLOCATE ALL` / `DISCARD ALL`: the
    /// resource forgets those prepared statements (SQL- and protocol-level share one
    /// namespace), and so does the gateway.
    fn forget_prepared(&mut self, name: &str) {
        if name.is_empty() {
            self.statements.retain(|n, _| n.is_empty());
            for prepared in self.sql_prepared.values_mut() {
                prepared.deallocated = true;
            }
            self.risky_statements.retain(|n| n.is_empty());
            self.copy_in_statements.retain(|n| n.is_empty());
        } else {
            self.statements.remove(name);
            if let Some(prepared) = self.sql_prepared.get_mut(name) {
                prepared.deallocated = true;
            }
            self.risky_statements.remove(name);
            self.copy_in_statements.remove(name);
        }
    }

    /// A statement (a Query, or an Execute) goes to the resource: a COPY window before it
    /// is over, and a new one opens if this one reads COPY data from the client.
    fn statement_sent(&self, shared: &Mutex<Shared>, copy_in: bool) {
        let mut shared = shared.lock();
        if copy_in || shared.copy_in.pending {
            shared.copy_in = CopyInSyncs {
                pending: copy_in,
                ..Default::default()
            };
        }
    }

    /// The last judged SQL's classification, as recorded.
    fn judgement_json(&self) -> Arc<serde_json::Value> {
        Arc::new(
            self.judgement
                .class
                .as_deref()
                .map(classification_json)
                .unwrap_or(serde_json::Value::Null),
        )
    }

    /// The allow rules that covered the last judged SQL, as recorded.
    fn judgement_rule(&self) -> Option<String> {
        (!self.judgement.rules.is_empty()).then(|| self.judgement.rules.join("; "))
    }

    /// Records an allowed request about to be sent. An error is the refusal to send
    /// instead: a request that cannot be recorded does not run.
    async fn record_request(
        &self,
        text: &str,
        classification: Arc<serde_json::Value>,
        rule: Option<String>,
        parameters: Vec<Option<String>>,
        approval_id: Option<String>,
    ) -> Result<Option<RecordRef>, Refusal> {
        let Some(recording) = &self.recording else {
            return Ok(None);
        };
        let request = sluice_audit::Request {
            text: text.to_string(),
            classification,
            decision: sluice_audit::Decision::Allow,
            rule,
            approval_id,
            parameters,
        };
        match recording.request(request).await {
            Ok(seq) => Ok(Some(RecordRef {
                seq,
                sent: std::time::Instant::now(),
            })),
            Err(e) => {
                tracing::error!(principal = %self.login.principal.subject, error = %e, "statement refused: it cannot be recorded");
                Err(Refusal {
                    code: "58030",
                    message: format!("sluice: {e}"),
                    ..Default::default()
                })
            }
        }
    }

    /// Records the SQL just judged and allowed (under an approval, when it needed one).
    async fn record_allowed(
        &self,
        sql: &str,
        approval_id: Option<String>,
    ) -> Result<Option<RecordRef>, Refusal> {
        if self.recording.is_none() {
            return Ok(None);
        }
        self.record_request(
            sql,
            self.judgement_json(),
            self.judgement_rule(),
            Vec::new(),
            approval_id,
        )
        .await
    }

    /// Records one execution of a portal.
    async fn record_execution(
        &self,
        portal: &str,
        statement: Option<&RecordedStatement>,
        parameters: &[Option<String>],
        approval_id: Option<String>,
    ) -> Result<Option<RecordRef>, Refusal> {
        if self.recording.is_none() {
            return Ok(None);
        }
        match statement {
            Some(statement) => {
                self.record_request(
                    &statement.text,
                    statement.classification.clone(),
                    statement.rule.clone(),
                    parameters.to_vec(),
                    approval_id,
                )
                .await
            }
            // A cursor declared in SQL (its DECLARE was judged) fetched through the
            // extended protocol.
            None => {
                self.record_request(
                    &format!("Execute of portal \"{portal}\""),
                    Arc::new(serde_json::Value::Null),
                    None,
                    Vec::new(),
                    None,
                )
                .await
            }
        }
    }

    /// Records a refused request. The refusal stands whether or not it could be recorded.
    async fn record_refused(&self, text: &str, refusal: &Refusal) -> Option<RecordRef> {
        let recording = self.recording.as_ref()?;
        let request = sluice_audit::Request {
            text: text.to_string(),
            classification: self.judgement_json(),
            decision: if refusal.approval {
                sluice_audit::Decision::Approve
            } else {
                sluice_audit::Decision::Deny
            },
            rule: refusal.rule.clone(),
            approval_id: None,
            parameters: Vec::new(),
        };
        match recording.request(request).await {
            Ok(seq) => Some(RecordRef {
                seq,
                sent: std::time::Instant::now(),
            }),
            Err(e) => {
                tracing::error!(principal = %self.login.principal.subject, error = %e, "refused request not recorded");
                None
            }
        }
    }

    /// Judges the SQL of a Query or a Parse: every statement must be allowed (or, all of
    /// them under one approve rule, approved), or none runs. Returns, when the session
    /// masks, the plans of the string's `COPY ... TO STDOUT`s, and what the string changes
    /// in the session, for [`Session::apply`] once it may run.
    async fn judge_sql(&mut self, sql: &str) -> Result<Judged, Refusal> {
        self.judgement = Judgement::default();
        let remembered = self
            .last_allowed
            .as_ref()
            .filter(|last| *last.sql == *sql && last.search_path == self.search_path);
        if let Some(last) = remembered {
            let class = last.class.clone();
            if self.recording.is_some() {
                self.judgement.class = Some(class.clone());
                self.judgement.rules = last.rules.clone();
            }
            return self.judge_the_rest(sql, class, None, Vec::new()).await;
        }
        let class = self
            .gateway
            .classifier
            .classify(sql, &self.search_path)
            // What cannot be judged is refused like anything else refused (DESIGN.md §3:
            // 42501), with the parser's own message.
            .map_err(|e| Refusal {
                position: match e {
                    sluice_sql::ClassifyError::Parse(_) => sluice_sql::syntax_error_position(sql),
                    _ => None,
                },
                ..Refusal::policy(format!("sluice: {e}"))
            })?;
        self.gateway
            .limits
            .check_statements(class.statements.len())
            .map_err(|e| Refusal {
                code: "54000",
                ..Refusal::policy(format!("sluice: {e}"))
            })?;
        if self.recording.is_some() {
            self.judgement.class = Some(class.clone());
        }
        let mut approval: Option<ApprovalNeeded> = None;
        // What an approver must see beside the text: the statements an EXECUTE runs.
        let mut executed = Vec::new();
        // Whether the verdict depends on nothing but the text and the search path.
        let mut rememberable = true;
        for statement in &class.statements {
            rememberable &= statement.prepares.is_none()
                && statement.executes.is_none()
                && statement.deallocates.is_none()
                && statement.portal.is_none();
            if let Some(name) = &statement.prepares {
                self.check_new_name(name)?;
            }
            let reserved = [
                &statement.portal,
                &statement.executes,
                &statement.deallocates,
            ]
            .into_iter()
            .flatten()
            .find(|name| name.starts_with(PRIVATE_PREFIX));
            if let Some(name) = reserved {
                return Err(Refusal {
                    code: "42602",
                    message: format!(
                        "sluice: \"{name}\": names beginning with {PRIVATE_PREFIX} are reserved by the gateway"
                    ),
                    ..Default::default()
                });
            }
            if let Some(name) = &statement.executes {
                if let Some(prepared) = self.sql_prepared.get(name) {
                    for candidate in &prepared.candidates {
                        executed.push(format!("-- {name} is: {}", candidate.text));
                    }
                }
            }
            let rules = match self.judge_statement(statement)? {
                StatementJudgement::Allowed(rules) => rules,
                StatementJudgement::NeedsApproval {
                    approval: needed,
                    reason,
                    message,
                } => {
                    let rule = needed.rule.clone();
                    match &approval {
                        None => {
                            approval = Some(ApprovalNeeded {
                                approval: needed,
                                reason,
                                message,
                                text: sql.to_string(),
                                normalized: String::new(),
                                classification: Arc::new(serde_json::Value::Null),
                            })
                        }
                        Some(first) if first.approval.rule == needed.rule => {}
                        Some(first) => {
                            // One approval for statements whose rules name different
                            // approvers would let either set of approvers pass both.
                            return Err(Refusal {
                                rule: Some(first.approval.rule.to_string()),
                                approval: true,
                                ..Refusal::policy(format!(
                                    "sluice: the statements of this string need approval under different rules ({} and {}); send them one at a time",
                                    first.approval.rule, needed.rule
                                ))
                            });
                        }
                    }
                    rememberable = false;
                    vec![rule]
                }
            };
            if self.recording.is_some() {
                for rule in rules {
                    let rule = rule.to_string();
                    if !self.judgement.rules.contains(&rule) {
                        self.judgement.rules.push(rule);
                    }
                }
            }
        }
        if rememberable {
            let last = self.last_allowed.get_or_insert_with(|| AllowedSql {
                sql: String::new(),
                search_path: self.search_path.clone(),
                class: class.clone(),
                rules: Vec::new(),
            });
            last.sql.clear();
            last.sql.push_str(sql);
            last.search_path = self.search_path.clone();
            last.class = class.clone();
            last.rules.clone_from(&self.judgement.rules);
        } else {
            self.last_allowed = None;
        }
        self.judge_the_rest(sql, class, approval, executed).await
    }

    /// The part of [`Session::judge_sql`] that follows the policy's verdict: masks against
    /// the catalog, what the string risks, what it changes in the session.
    async fn judge_the_rest(
        &mut self,
        sql: &str,
        class: Arc<sluice_sql::Classification>,
        mut approval: Option<ApprovalNeeded>,
        executed: Vec<String>,
    ) -> Result<Judged, Refusal> {
        self.judge_masks_through_catalog(&class).await?;
        let accesses = || class.statements.iter().flat_map(|s| s.accesses.iter());
        // A string that reads COPY data from the client cannot wait for its own end
        // before the client sends that data.
        self.last_judged_risky = accesses().any(|a| {
            matches!(a.object, sluice_core::Object::Function(_))
                || matches!(
                    a.action,
                    sluice_core::Action::Procedural | sluice_core::Action::Call
                )
        }) && !accesses().any(|a| a.action == sluice_core::Action::CopyIn);
        self.last_judged_copy_in = accesses().any(|a| a.action == sluice_core::Action::CopyIn);
        // The resource may end up with either path (a SET LOCAL ends with its transaction,
        // a rollback undoes a SET), so names resolve in both from now on.
        let mut path = self.search_path.clone();
        let mut user_in_path = self.user_in_path;
        let mut role_changed = self.role_changed;
        for statement in &class.statements {
            // `"$user"` is the schema named after the current user: the gateway's role,
            // until SET ROLE or SET SESSION AUTHORIZATION changes who that is.
            let sets_role = statement.kind == "VariableSetStmt"
                && statement.accesses.iter().any(|a| {
                    matches!(&a.object, sluice_core::Object::Setting(name) if name == "role" || name == "session_authorization")
                });
            if sets_role {
                if user_in_path {
                    return Err(Refusal::policy(
                        "sluice: the search path holds \"$user\", and changing the role would change which schema that is; set search_path without \"$user\" first".into(),
                    ));
                }
                role_changed = true;
            }
            match &statement.search_path_change {
                None => {}
                Some(SearchPathChange::To(schemas)) => {
                    if schemas.iter().any(|s| s == "$user") {
                        if role_changed {
                            return Err(Refusal::policy(
                                "sluice: \"$user\" in search_path cannot be followed after the role was changed; name the schemas".into(),
                            ));
                        }
                        user_in_path = true;
                    }
                    let user = &self.login.connection.target.user;
                    let schemas = schemas
                        .iter()
                        .map(|s| if s == "$user" { user.clone() } else { s.clone() });
                    path = path.union(&SearchPath::new(schemas));
                }
                Some(SearchPathChange::Reset) => path = path.union(&self.login.connection.search_path),
                Some(SearchPathChange::Unknown) => {
                    return Err(Refusal::policy(
                        "sluice: this form of SET search_path cannot be followed by the gateway; name the schemas".into(),
                    ))
                }
            }
        }
        // Remembered once the whole string may run (see `apply`).
        let effects = Effects {
            search_path: path,
            user_in_path,
            role_changed,
            statements: class
                .statements
                .iter()
                .filter(|s| s.deallocates.is_some() || s.prepares.is_some())
                .cloned()
                .collect(),
        };
        if let Some(needed) = &mut approval {
            let normalized = sluice_sql::normalized_text(sql)
                .map_err(|e| Refusal::policy(format!("sluice: {e}")))?;
            if !executed.is_empty() {
                needed.text = format!("{sql}\n{}", executed.join("\n"));
            }
            // A ticket is for exactly this statement (with what its EXECUTEs run), under
            // this rule, touching these objects as resolved now: a changed search path or
            // a stricter rule asks again.
            needed.normalized = format!(
                "{normalized}\n{}\n-- {}\n-- {}",
                executed.join("\n"),
                needed.approval.rule,
                needed.reason
            );
            needed.classification = self.judgement_json();
        }
        let copies = match self.masking {
            Some(_) => class
                .statements
                .iter()
                .filter_map(|s| s.copy_out.clone().map(Arc::new))
                .collect(),
            None => Vec::new(),
        };
        Ok(Judged {
            copies,
            effects,
            approval,
        })
    }

    /// Remembers what a string that may run changes: the search path, the role, SQL-level
    /// prepared statements.
    fn apply(&mut self, effects: Effects) {
        self.search_path = effects.search_path;
        self.user_in_path = effects.user_in_path;
        self.role_changed = effects.role_changed;
        for statement in effects.statements {
            if let Some(name) = &statement.deallocates {
                self.forget_prepared(name);
            }
            if let Some(name) = &statement.prepares {
                let prepared = self.sql_prepared.entry(name.clone()).or_default();
                prepared.candidates.push(statement.clone());
                prepared.deallocated = false;
            }
        }
    }

    /// Whether the client may create a statement named `name` now: not a name the
    /// gateway keeps for itself, and not one that exists (PostgreSQL refuses that too,
    /// and the gateway must not change its picture of a name the resource keeps).
    fn check_new_name(&self, name: &str) -> Result<(), Refusal> {
        if name.starts_with(PRIVATE_PREFIX) {
            return Err(Refusal {
                code: "42602",
                message: format!(
                    "sluice: names beginning with {PRIVATE_PREFIX} are reserved by the gateway"
                ),
                ..Default::default()
            });
        }
        let taken = self.statements.contains_key(name)
            || self.sql_prepared.get(name).is_some_and(|p| !p.deallocated);
        if !name.is_empty() && taken {
            return Err(Refusal {
                code: "42P05",
                message: format!("prepared statement \"{name}\" already exists"),
                ..Default::default()
            });
        }
        Ok(())
    }

    /// Writes `frame` to the resource, under `wire` (the name the resource knows it by)
    /// when that is not the client's.
    async fn write_renamed(
        &self,
        frame: &Frame,
        wire: Option<&str>,
        server: &mut BufWriter<WriteHalf<BoxIo>>,
    ) -> std::io::Result<()> {
        match wire {
            Some(wire) => server.write_all(&frontend::renamed(frame, &[wire])).await,
            None => server.write_all(&frame.raw).await,
        }
    }

    /// A fresh name at the resource for a statement or portal that needs approval.
    fn private_name(&mut self) -> String {
        self.private_names += 1;
        format!("{PRIVATE_PREFIX}{}_{}", self.nonce, self.private_names)
    }

    /// Masks are written against tables, and the policy, which has no catalog, refuses a
    /// masked column leaving through an expression or a whole row when the statement names
    /// the masked table. A view, a partition or an inheritance child shows that column
    /// under another table's name: each table a value leaves from that way is resolved
    /// through the catalog, and the statement refused if the column it gives is masked.
    async fn judge_masks_through_catalog(
        &self,
        class: &sluice_sql::Classification,
    ) -> Result<(), Refusal> {
        let Some(masking) = &self.masking else {
            return Ok(());
        };
        for statement in &class.statements {
            for flow in &statement.flows.columns {
                let predicate =
                    flow.usage == Usage::Predicate && masking.masks.refuses_any_predicates();
                if !matches!(flow.usage, Usage::Derived(_) | Usage::WholeRow) && !predicate {
                    continue;
                }
                let relation = masking
                    .catalog
                    .relation_named(std::slice::from_ref(&flow.table))
                    .await
                    .map_err(|e| {
                        Refusal::policy(format!(
                            "sluice: cannot check this statement against the masks: {e}"
                        ))
                    })?;
                let Some(relation) = relation else { continue };
                let shown = relation.columns().iter().find(|column| {
                    flow.column.as_deref().is_none_or(|c| c == column.name)
                        && if predicate {
                            masking.masks.refuses_predicates(&column.names)
                        } else {
                            masking.masks.column_strategy(&column.names).is_some()
                        }
                });
                if let Some(column) = shown {
                    let how = if predicate {
                        "and its policy refuses conditions on masked columns (mask_predicates: refuse)"
                    } else {
                        "and cannot leave through an expression or a whole row; select the column itself"
                    };
                    return Err(Refusal::policy(format!(
                        "sluice: {}.{} shows a masked column {how}",
                        flow.table, column.name
                    )));
                }
            }
        }
        Ok(())
    }

    /// Judges one statement: the rules that allowed it, or the approval it needs.
    fn judge_statement(&self, statement: &StatementClass) -> Result<StatementJudgement, Refusal> {
        // Settings that change how the resource reads statement text: the gateway's parser
        // reads it as UTF-8 with standard-conforming strings, so these stay as they are.
        let lexical = statement.accesses.iter().find_map(|a| match &a.object {
            // The classifier marks a value the gateway already reads by as an ordinary
            // `set`; any other is explicit-only, and refused here whatever the policy says.
            sluice_core::Object::Setting(name)
                if a.action == sluice_core::Action::Set
                    && a.explicit_only
                    && statement.kind == "VariableSetStmt"
                    && LEXICAL_SETTINGS.contains(&name.as_str()) =>
            {
                Some(name.clone())
            }
            _ => None,
        });
        if let Some(name) = lexical {
            return Err(Refusal::policy(format!(
                "sluice: {name} cannot be changed through the gateway, which must read statements exactly as the resource does"
            )));
        }
        let Some(name) = &statement.executes else {
            return self.judge_one(statement);
        };
        let candidates = match self.sql_prepared.get(name) {
            Some(prepared) => &prepared.candidates,
            None => {
                return Err(Refusal::policy(format!(
                    "sluice: EXECUTE {name}: no statement of that name was prepared through the gateway"
                )))
            }
        };
        // Every statement the name may hold at the resource must be allowed, or approved
        // under one rule.
        let mut rules = Vec::new();
        let mut approval: Option<StatementJudgement> = None;
        for candidate in candidates {
            match self.judge_one(candidate)? {
                StatementJudgement::Allowed(more) => rules.extend(more),
                needs @ StatementJudgement::NeedsApproval { .. } => match (&approval, &needs) {
                    (None, _) => approval = Some(needs),
                    (
                        Some(StatementJudgement::NeedsApproval {
                            approval: first, ..
                        }),
                        StatementJudgement::NeedsApproval {
                            approval: other, ..
                        },
                    ) if first.rule != other.rule => {
                        return Err(Refusal {
                            rule: Some(first.rule.to_string()),
                            approval: true,
                            ..Refusal::policy(format!(
                                "sluice: EXECUTE {name}: the statements prepared under that name need approval under different rules ({} and {})",
                                first.rule, other.rule
                            ))
                        });
                    }
                    _ => {}
                },
            }
        }
        Ok(approval.unwrap_or(StatementJudgement::Allowed(rules)))
    }

    /// Judges one statement as it is (an `EXECUTE` already resolved).
    fn judge_one(&self, statement: &StatementClass) -> Result<StatementJudgement, Refusal> {
        if let Some(masking) = &self.masking {
            if let Some(message) = unmaskable_copy(statement, masking) {
                return Err(Refusal::policy(format!("sluice: {message}")));
            }
        }
        // The decision alone: this session's masks and limits were set up at login.
        let decision = self.login.policy.decide(statement);
        match decision.client_message() {
            None => match decision {
                sluice_policy::Decision::Allow { rules } => Ok(StatementJudgement::Allowed(rules)),
                _ => Ok(StatementJudgement::Allowed(Vec::new())),
            },
            Some(message)
                if self.gateway.approvals.is_some()
                    && matches!(decision, sluice_policy::Decision::Approve { .. }) =>
            {
                let sluice_policy::Decision::Approve { reason, approval } = decision else {
                    unreachable!("matched above")
                };
                Ok(StatementJudgement::NeedsApproval {
                    approval,
                    reason,
                    message: format!("sluice: {message}"),
                })
            }
            Some(message) => {
                tracing::debug!(principal = %self.login.principal.subject, connection = %self.login.connection.name,
                    statement = %statement.text, reason = %message, "statement refused by policy");
                let (rule, approval) = match &decision {
                    sluice_policy::Decision::Deny { rule, .. } => {
                        (rule.as_ref().map(ToString::to_string), false)
                    }
                    sluice_policy::Decision::Approve { approval, .. } => {
                        (Some(approval.rule.to_string()), true)
                    }
                    sluice_policy::Decision::Allow { .. } => (None, false),
                };
                Err(Refusal {
                    rule,
                    approval,
                    ..Refusal::policy(format!("sluice: {message}"))
                })
            }
        }
    }

    /// Records a refusal whose marker the resource's error will name, and returns the
    /// marker. The refusal belongs to the batch that the next ReadyForQuery ends.
    fn register_refusal(&mut self, refusal: Refusal, shared: &Mutex<Shared>) -> String {
        // Every refusal passes here (policy, unparseable SQL, unknown statements, settings
        // the gateway cannot follow), so every one is logged.
        tracing::info!(principal = %self.login.principal.subject, connection = %self.login.connection.name,
            code = refusal.code, reason = %refusal.message, "request refused");
        self.refusals += 1;
        let marker = format!("sluice_refused_{}_{}", self.nonce, self.refusals);
        let error = backend::error_response_at(
            Severity::Error,
            refusal.code,
            &refusal.message,
            refusal.hint.as_deref(),
            refusal.position,
        );
        shared.lock().pending.push_back(PendingRefusal {
            marker: marker.clone(),
            error,
            sync_point: self.sync_points + 1,
        });
        marker
    }

    /// Refuses a Query or FunctionCall: a failing FETCH takes its place.
    async fn refuse_simple(
        &mut self,
        refusal: Refusal,
        record: Option<RecordRef>,
        server: &mut BufWriter<WriteHalf<BoxIo>>,
        shared: &Mutex<Shared>,
    ) -> std::io::Result<()> {
        let marker = self.register_refusal(refusal, shared);
        self.sync_points += 1;
        self.track(
            shared,
            Request::Query {
                copies: Default::default(),
                record,
            },
        );
        server
            .write_all(&frontend::query(&format!("FETCH \"{marker}\"")))
            .await
    }

    /// Refuses a Parse, Bind or Describe: a failing Execute takes its place, and the rest of
    /// the batch up to Sync is dropped.
    async fn refuse_extended(
        &mut self,
        refusal: Refusal,
        record: Option<RecordRef>,
        server: &mut BufWriter<WriteHalf<BoxIo>>,
        shared: &Mutex<Shared>,
    ) -> std::io::Result<()> {
        let marker = self.register_refusal(refusal, shared);
        self.discard_until_sync = true;
        self.track(
            shared,
            Request::Execute {
                portal: marker.clone(),
                copy: None,
                record,
            },
        );
        server.write_all(&frontend::execute(&marker)).await
    }
}

enum Continue {
    Yes,
    Terminate,
}

/// `max_rows` of the session's policies, and how to stop a statement that exceeds it.
struct RowLimit {
    max: u64,
    cancel: CancelTarget,
}

/// Counts the rows of the statement being answered and stops it past the limit: the
/// client gets an error (never a silently truncated result), the resource gets a cancel,
/// and what the resource still sends of that statement is dropped.
#[derive(Default)]
struct RowCounter {
    rows: u64,
    /// Dropping the rest of a stopped statement, up to its end (CommandComplete, the
    /// cancel's ErrorResponse, or PortalSuspended).
    stopping: bool,
}

enum RowAction {
    Forward,
    Drop,
    /// Send this error instead of the row, and cancel the statement.
    Stop(Bytes),
}

impl RowCounter {
    fn on_message(&mut self, tag: u8, limit: Option<&RowLimit>) -> RowAction {
        let Some(limit) = limit else {
            return RowAction::Forward;
        };
        if self.stopping {
            if matches!(tag, b'C' | b'E' | b's' | b'Z') {
                self.stopping = false;
                self.rows = 0;
                // ReadyForQuery is the client's too; the statement's own end is not.
                return if tag == b'Z' {
                    RowAction::Forward
                } else {
                    RowAction::Drop
                };
            }
            return RowAction::Drop;
        }
        match tag {
            b'D' => {
                self.rows += 1;
                if self.rows > limit.max {
                    self.stopping = true;
                    let message = format!(
                        "sluice: the statement returned more than {} rows, the limit of this session's policy (max_rows); narrow it or add a LIMIT",
                        limit.max
                    );
                    return RowAction::Stop(backend::error_response(
                        Severity::Error,
                        "54000",
                        &message,
                        None,
                    ));
                }
                RowAction::Forward
            }
            b'T' | b'C' | b'E' | b's' | b'I' | b'Z' => {
                self.rows = 0;
                RowAction::Forward
            }
            _ => RowAction::Forward,
        }
    }
}

/// Resource to client: verbatim, except refusals, row limits and the session's end.
///
/// Each wake-up forwards every whole message already received (a burst of rows costs one
/// pass and one flush), then waits again for the resource, the token's expiry or shutdown.
async fn server_to_client(
    server: &mut FrameReader<ReadHalf<BoxIo>>,
    client: &mut GatherWriter<WriteHalf<BoxIo>>,
    mut relay: ServerRelay<'_>,
    expires_at: Option<i64>,
    mut closing: tokio::sync::watch::Receiver<bool>,
    mut notices: tokio::sync::mpsc::UnboundedReceiver<Bytes>,
) -> End {
    let expiry = async {
        match expires_at {
            Some(at) => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs() as i64)
                    .unwrap_or(0);
                tokio::time::sleep(std::time::Duration::from_secs((at - now).max(0) as u64)).await
            }
            None => std::future::pending().await,
        }
    };
    tokio::pin!(expiry);
    // Made once: a `changed()` made anew on every wake-up would register with the
    // channel's notifier and leave it again each time.
    let shutdown = async {
        loop {
            if closing.changed().await.is_err() {
                // The listener is gone without saying so: nothing will ask to close.
                std::future::pending::<()>().await;
            }
            if *closing.borrow() {
                return;
            }
        }
    };
    tokio::pin!(shutdown);
    loop {
        let mut frame = tokio::select! {
            // The gateway's own notice first: it tells the client of a hold before
            // anything the resource answers after it.
            biased;
            Some(notice) = notices.recv() => {
                if client.write_all(&notice).await.is_err() || client.flush().await.is_err() {
                    return End::ClientLeft;
                }
                continue;
            }
            _ = &mut expiry => {
                let reason = "sluice: session ended: the token expired; reconnect with a fresh token";
                let _ = client.write_all(&backend::error_response(Severity::Fatal, "28000", reason, None)).await;
                let _ = client.flush().await;
                return End::sent("token expired");
            }
            () = &mut shutdown => {
                let _ = client.write_all(&backend::error_response(Severity::Fatal, "57P01", "sluice: the gateway is shutting down", None)).await;
                let _ = client.flush().await;
                return End::sent("gateway shutdown");
            }
            frame = server.next() => frame,
        };
        loop {
            let Ok(message) = frame else {
                let _ = client
                    .write_all(&backend::error_response(
                        Severity::Fatal,
                        "08006",
                        "sluice: the resource closed the connection",
                        None,
                    ))
                    .await;
                let _ = client.flush().await;
                return End::ServerLeft;
            };
            if let Err(end) = relay.forward(message, client).await {
                return end;
            }
            // Without masks or row limits, only errors (refusals to rewrite) and
            // ReadyForQuery (their bookkeeping) need a look: the rest of what is buffered
            // goes out as one block. A recorded session's rows past the record's cap are
            // only counted, and go out the same way.
            if relay.masking.is_none() && relay.row_limit.is_none() {
                match &mut relay.recording {
                    None => {
                        if let Some(run) = server.take_run(|tag| !matches!(tag, b'E' | b'Z' | b'S'))
                        {
                            if client.queue(run).await.is_err() {
                                return End::ClientLeft;
                            }
                        }
                    }
                    Some(recording) if recording.only_counting() => {
                        if let Some(run) = server.take_run(|tag| matches!(tag, b'D' | b'd')) {
                            recording.count_rows(count_frames(&run), run.len() as u64);
                            if client.queue(run).await.is_err() {
                                return End::ClientLeft;
                            }
                        }
                    }
                    Some(_) => {}
                }
            }
            // With masks, a run of rows of the result being streamed is masked into one
            // block; a row limit or a record still keeping rows needs each row on its own.
            let rows_only_counted = relay.recording.as_ref().is_none_or(|r| r.only_counting());
            if relay.row_limit.is_none() && rows_only_counted {
                if let Some(masking) = &mut relay.masking {
                    match masking.mask_rows(server) {
                        Err(end) => return end,
                        Ok(None) => {}
                        Ok(Some(rows)) => {
                            if let Some(recording) = &mut relay.recording {
                                recording.count_rows(count_frames(&rows), rows.len() as u64);
                            }
                            if client.queue(rows).await.is_err() {
                                return End::ClientLeft;
                            }
                        }
                    }
                }
            }
            match server.try_next() {
                Some(next) => frame = next,
                None => break,
            }
        }
        if client.flush().await.is_err() {
            return End::ClientLeft;
        }
    }
}

/// How many whole frames a block of them holds.
fn count_frames(block: &[u8]) -> u64 {
    let mut at = 0;
    let mut frames = 0;
    while block.len() >= at + 5 {
        let len = i32::from_be_bytes([block[at + 1], block[at + 2], block[at + 3], block[at + 4]]);
        at += len.max(4) as usize + 1;
        frames += 1;
    }
    frames
}

/// The per-message state of the resource-to-client half.
struct ServerRelay<'a> {
    shared: &'a Mutex<Shared>,
    /// Whether the other half tracks requests (masking or recording).
    tracking: bool,
    recording: Option<ResultRecording>,
    row_limit: Option<RowLimit>,
    counter: RowCounter,
    /// ReadyForQuery messages seen: the sync points that have passed.
    ready_seen: u64,
    /// Tells the other half how far the resource has answered.
    ready: Arc<ReadyCount>,
    masking: Option<ResultMasking>,
}

/// The resource-to-client half's masking state.
struct ResultMasking {
    setup: Masking,
    /// The simple query result being streamed.
    current: Option<Arc<ResultMask>>,
    /// Extended-protocol portals by name, with their results' masking.
    portals: HashMap<String, Option<Arc<ResultMask>>>,
    /// The COPY TO being streamed.
    copy: Option<CopyMask>,
    /// When the last message handled was a DataRow: its result's masking. The rows
    /// after it, up to the result's end, are masked the same way (see [`Self::mask_rows`]).
    rows: Option<Option<Arc<ResultMask>>>,
    /// Where a run of rows is masked: one buffer, from which each run is split off for
    /// the client (its space comes back once written), let go when the result ends.
    masked_rows: BytesMut,
    /// Scratch space for one masked value, reused from value to value.
    replacement: String,
}

/// What masking does with one message from the resource.
enum Masked {
    Forward(Frame),
    /// The gateway's own request's answer: not for the client.
    Swallow,
}

impl ResultMasking {
    async fn on_message(
        &mut self,
        frame: Frame,
        answering: &Answering,
        copy_plan: Option<Arc<CopyOut>>,
    ) -> Result<Masked, End> {
        self.rows = None;
        if matches!(frame.tag, b'C' | b'E' | b'Z' | b's') && self.masked_rows.capacity() > 0 {
            // The result is over: an idle session keeps no buffer of masked rows.
            self.masked_rows = BytesMut::new();
        }
        match frame.tag {
            b'H' => {
                // Every COPY TO STDOUT the gateway let through has a plan; one without is
                // a COPY it did not judge as one (its picture of a prepared statement
                // differs from the resource's), and its rows cannot be masked.
                let plan = copy_plan.ok_or_else(|| {
                    End::fatal(Refusal {
                        code: "42501",
                        message: "sluice: the resource started a COPY the gateway did not judge as one; its rows cannot be masked, so the session ends".into(),
                        ..Default::default()
                    })
                })?;
                self.copy = Some(
                    CopyMask::build(&plan, &self.setup.masks, &self.setup.catalog)
                        .await
                        .map_err(unmaskable)?,
                );
                return Ok(Masked::Forward(frame));
            }
            b'd' => {
                let Some(copy) = &mut self.copy else {
                    return Ok(Masked::Forward(frame));
                };
                return match copy.rewrite(&frame.raw[5..]).map_err(unmaskable)? {
                    None => Ok(Masked::Forward(frame)),
                    Some(row) => Ok(Masked::Forward(Frame {
                        tag: b'd',
                        raw: backend::message(b'd', &row),
                    })),
                };
            }
            b'c' | b'C' | b'E' | b'Z' => self.copy = None,
            _ => {}
        }
        let result = match (answering, frame.tag) {
            (Answering::Query { .. }, b'T') => {
                self.current = self.describe(&frame).await?;
                Masked::Forward(frame)
            }
            (Answering::Query { .. }, b'D') => {
                self.rows = Some(self.current.clone());
                Masked::Forward(rewrite(self.current.as_deref(), frame)?)
            }
            (Answering::Query { .. }, b'C' | b'E' | b'Z') => {
                self.current = None;
                invalidate_on_ddl(&frame, &self.setup.catalog).await;
                Masked::Forward(frame)
            }
            (Answering::GatewayDescribe { portal }, b'T') => {
                let mask = self.describe(&frame).await?;
                self.portals.insert(portal.clone(), mask);
                Masked::Swallow
            }
            (Answering::GatewayDescribe { portal }, _) => {
                self.portals.insert(portal.clone(), None);
                Masked::Swallow
            }
            (Answering::Execute { portal, .. }, b'D') => {
                let mask = self.portals.get(portal).cloned().flatten();
                let row = rewrite(mask.as_deref(), frame)?;
                self.rows = Some(mask);
                Masked::Forward(row)
            }
            (Answering::Execute { .. }, b'C') => {
                invalidate_on_ddl(&frame, &self.setup.catalog).await;
                Masked::Forward(frame)
            }
            _ => Masked::Forward(frame),
        };
        Ok(result)
    }

    /// After a DataRow: the rows of the same result already received, masked into one
    /// block (`None` when the next message is not a whole DataRow). Every such row needs
    /// exactly what the first one got: the same mask, and no bookkeeping, since a DataRow
    /// neither ends a request nor changes what the resource is answering.
    fn mask_rows(
        &mut self,
        server: &mut FrameReader<ReadHalf<BoxIo>>,
    ) -> Result<Option<Bytes>, End> {
        let Some(mask) = self.rows.clone() else {
            return Ok(None);
        };
        let Some(run) = server.take_run(|tag| tag == b'D') else {
            return Ok(None);
        };
        let Some(mask) = mask else {
            return Ok(Some(run));
        };
        let mut at = 0;
        while at < run.len() {
            // `take_run` hands over whole frames only, each with a valid length.
            let len = i32::from_be_bytes([run[at + 1], run[at + 2], run[at + 3], run[at + 4]]);
            let end = at + len as usize + 1;
            mask.rewrite_into(&run[at..end], &mut self.masked_rows, &mut self.replacement)
                .map_err(unmaskable)?;
            at = end;
        }
        Ok(Some(self.masked_rows.split().freeze()))
    }

    async fn describe(&self, frame: &Frame) -> Result<Option<Arc<ResultMask>>, End> {
        ResultMask::build(frame.body(), &self.setup.masks, &self.setup.catalog)
            .await
            .map(|m| m.map(Arc::new))
            .map_err(unmaskable)
    }
}

/// A ParameterStatus saying the resource now reads statements differently from the gateway
/// (a function changed `standard_conforming_strings` or `client_encoding`) ends the session.
fn lexical_parameter_check(body: &[u8]) -> Result<(), End> {
    let mut parts = body.split(|b| *b == 0);
    let name = String::from_utf8_lossy(parts.next().unwrap_or_default()).to_ascii_lowercase();
    let value = String::from_utf8_lossy(parts.next().unwrap_or_default()).to_ascii_uppercase();
    let diverged = match name.as_str() {
        "standard_conforming_strings" => value != "ON",
        "client_encoding" => !matches!(value.as_str(), "UTF8" | "UNICODE" | "SQL_ASCII"),
        _ => false,
    };
    if diverged {
        tracing::warn!(parameter = %name, value = %value, "the resource changed a setting the gateway reads statements by; ending the session");
        return Err(End::fatal(Refusal {
            code: "42501",
            message: format!(
                "sluice: {name} was changed to {value} (by a function); the gateway must read statements exactly as the resource does, so the session ends"
            ),
            ..Default::default()
        }));
    }
    Ok(())
}

/// Waits until the session's requests are stored; if the store failed first, the result is
/// withheld and the session ends.
async fn await_durable(recording: &mut ResultRecording) -> Result<(), End> {
    let session = recording.session();
    if session.requests_durable() {
        return Ok(());
    }
    session.wait_durable().await.map_err(|e| {
        tracing::error!(error = %e, "result withheld: its request could not be recorded");
        End::fatal(Refusal {
            code: "58030",
            message: format!("sluice: {e}; this statement's result is withheld"),
            ..Default::default()
        })
    })
}

/// A result that cannot be masked is not delivered: the session ends.
fn unmaskable(e: crate::masking::MaskError) -> End {
    tracing::warn!(error = %e, "cannot mask a result");
    End::fatal(Refusal {
        code: "58000",
        message: format!("sluice: cannot mask this result, so it is not delivered: {e}"),
        ..Default::default()
    })
}

/// A DataRow with its masks applied.
fn rewrite(mask: Option<&ResultMask>, frame: Frame) -> Result<Frame, End> {
    let Some(mask) = mask else {
        return Ok(frame);
    };
    match mask.rewrite(&frame.raw) {
        Ok(None) => Ok(frame),
        Ok(Some(raw)) => Ok(Frame { tag: b'D', raw }),
        Err(e) => Err(End::fatal(Refusal {
            code: "58000",
            message: format!("sluice: cannot mask this result, so it is not delivered: {e}"),
            ..Default::default()
        })),
    }
}

/// After a statement that may have changed the schema, the catalog's names are stale.
async fn invalidate_on_ddl(frame: &Frame, catalog: &Catalog) {
    if frame.tag != b'C' {
        return;
    }
    let tag = frame.body();
    if [&b"CREATE"[..], b"ALTER", b"DROP", b"COMMIT"]
        .iter()
        .any(|prefix| tag.starts_with(prefix))
    {
        catalog.invalidate().await;
    }
}

/// A COPY TO whose rows the gateway cannot mask, when masks may cover what it copies:
/// `COPY (query)` (its columns have no origin to match masks against), the binary format,
/// and options that change how rows are written.
fn unmaskable_copy(statement: &StatementClass, masking: &Masking) -> Option<String> {
    use sluice_core::{Action, Object};
    if !statement
        .accesses
        .iter()
        .any(|a| a.action == Action::CopyOut)
    {
        return None;
    }
    let read: Vec<String> = statement
        .accesses
        .iter()
        .filter_map(|a| match (&a.action, &a.object) {
            (Action::CopyOut | Action::Select, Object::Table(name)) => Some(name.to_string()),
            _ => None,
        })
        .collect();
    if !masking.masks.covers_any_table(&read) {
        return None;
    }
    let why = match &statement.copy_out {
        None => "COPY to a file or program",
        Some(copy) if copy.table.is_empty() => "COPY (query) TO cannot be masked; use SELECT or COPY of the table",
        Some(copy) if copy.format == CopyOutFormat::Binary => "COPY in binary format cannot be masked; use text or CSV",
        Some(copy) if !copy.other_options.is_empty() => "COPY with DELIMITER, NULL, QUOTE or similar options cannot be masked; use the defaults of text or CSV",
        Some(_) => return None,
    };
    let what = if read.is_empty() {
        "this session".to_string()
    } else {
        read.join(", ")
    };
    Some(format!("masks apply to {what}: {why}"))
}

impl ServerRelay<'_> {
    /// The resource entered copy-in: the Syncs sent since the COPY began will get no
    /// ReadyForQuery; count them as answered.
    fn credit_ignored_syncs(&mut self) {
        let credit = {
            let mut shared = self.shared.lock();
            let copy = &mut shared.copy_in;
            copy.entered = true;
            std::mem::take(&mut copy.uncredited)
        };
        if credit > 0 {
            self.ready_seen += credit;
            self.ready.advance_to(self.ready_seen);
            let ready_seen = self.ready_seen;
            self.shared
                .lock()
                .pending
                .retain(|p| p.sync_point > ready_seen);
        }
    }

    /// Forwards one message from the resource (into the client's buffer; the caller
    /// flushes), or its replacement. An error means the client is gone.
    async fn forward(
        &mut self,
        frame: Frame,
        client: &mut GatherWriter<WriteHalf<BoxIo>>,
    ) -> Result<(), End> {
        if frame.tag == b'S' {
            lexical_parameter_check(frame.body())?;
        }
        if frame.tag == b'G' {
            self.credit_ignored_syncs();
        }
        let (answering, copy_plan) = if self.tracking {
            let mut guard = self.shared.lock();
            let answering = guard.responses.on_response(frame.tag).map_err(|e| {
                End::fatal(Refusal {
                    code: "08P01",
                    message: format!("sluice: {e}"),
                    ..Default::default()
                })
            })?;
            let plan = (frame.tag == b'H')
                .then(|| guard.responses.take_copy())
                .flatten();
            (answering, plan)
        } else {
            (Answering::Nothing, None)
        };
        let frame = match &mut self.masking {
            None => frame,
            Some(masking) => match masking.on_message(frame, &answering, copy_plan).await? {
                Masked::Forward(frame) => frame,
                Masked::Swallow => return Ok(()),
            },
        };
        self.forward_unmasked(frame, &answering, client).await
    }

    async fn forward_unmasked(
        &mut self,
        frame: Frame,
        answering: &Answering,
        client: &mut GatherWriter<WriteHalf<BoxIo>>,
    ) -> Result<(), End> {
        let gone = |_| End::ClientLeft;
        match self.counter.on_message(frame.tag, self.row_limit.as_ref()) {
            RowAction::Forward => {}
            RowAction::Drop => return Ok(()),
            RowAction::Stop(error) => {
                if let Some(recording) = &mut self.recording {
                    recording.stopped(&error).await;
                    // Completes the statement for the client: its request must be stored.
                    await_durable(recording).await?;
                }
                // The error reaches the client now, not when the cancelled statement ends.
                client.write_all(&error).await.map_err(gone)?;
                client.flush().await.map_err(gone)?;
                // The cancel is delivered before anything more of the resource's answer is
                // relayed, so the client cannot see this statement's ReadyForQuery and send
                // its next one while the cancel is still on its way (it would cancel that).
                if let Some(limit) = &self.row_limit {
                    let cancel = crate::cancel::send_cancel(limit.cancel);
                    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), cancel).await;
                }
                return Ok(());
            }
        }
        let frame = match frame.tag {
            b'E' => {
                let (_, text) = error_fields(frame.body());
                let replacement = {
                    let mut guard = self.shared.lock();
                    let found = guard.pending.iter().position(|p| text.contains(&p.marker));
                    found.and_then(|i| guard.pending.remove(i))
                };
                match replacement {
                    Some(refusal) => Frame {
                        tag: b'E',
                        raw: refusal.error,
                    },
                    None => frame,
                }
            }
            b'Z' => {
                self.ready_seen += 1;
                let ready_seen = self.ready_seen;
                self.ready.advance_to(ready_seen);
                self.shared
                    .lock()
                    .pending
                    .retain(|p| p.sync_point > ready_seen);
                frame
            }
            _ => frame,
        };
        if let Some(recording) = &mut self.recording {
            recording.on_delivered(answering, &frame).await;
            // What completes a result waits until the requests sent so far are stored:
            // no agent holds a complete result whose request the trail could lose.
            if matches!(frame.tag, b'C' | b'E' | b'Z' | b's' | b'I') {
                await_durable(recording).await?;
            }
        }
        client.queue(frame.raw).await.map_err(gone)
    }
}
