//! Which request each message from the resource answers.
//!
//! In the extended protocol a DataRow does not say which portal it belongs to, and an
//! Execute's rows follow no RowDescription unless the client asked for one. Masking needs
//! to know, for every row, the description of the result it belongs to, so a session that
//! masks keeps the requests it sent in order, as PostgreSQL answers them: each response
//! (or, after an error, the skip up to Sync) retires requests from the front.
//!
//! The rules are the protocol's: Parse → ParseComplete, Bind → BindComplete, Describe of a
//! statement → ParameterDescription then RowDescription or NoData, Describe of a portal →
//! RowDescription or NoData, Execute → rows (or COPY) then CommandComplete,
//! EmptyQueryResponse or PortalSuspended, Close → CloseComplete, Sync → ReadyForQuery, a
//! simple Query → anything up to ReadyForQuery. An ErrorResponse to an extended-protocol
//! request makes the resource skip everything up to the next Sync. NoticeResponse,
//! ParameterStatus and NotificationResponse can come at any time and answer nothing.
//! COPY FROM STDIN is the one exception to "every Sync gets a ReadyForQuery": the resource
//! ignores Sync while it is in copy-in mode (from its CopyInResponse until the client's
//! CopyDone or CopyFail), so such Syncs are struck from the list (see [`Request::CopyEnd`]).
//!
//! Recording needs the same picture to tie each result to its request, so the tracker runs
//! when the session masks or records; `record` is the position of the request's event in
//! the session's audit trail.
//!
//! A response that fits no request means the gateway's picture of the session is wrong;
//! the session then ends (fail closed) rather than mask by a wrong description.

use std::collections::VecDeque;
use std::sync::Arc;

use sluice_sql::CopyOut;

/// A request's place in the session's audit trail, and when it left for the resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRef {
    pub seq: u64,
    pub sent: std::time::Instant,
}

/// A request sent to the resource whose response is expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// With the `COPY ... TO STDOUT` statements of the string, in order.
    Query {
        copies: VecDeque<Arc<CopyOut>>,
        record: Option<RecordRef>,
    },
    Parse,
    Bind {
        portal: String,
        statement: String,
        /// The result formats the client asked for (Bind's codes, as sent).
        formats: Vec<i16>,
    },
    DescribeStatement {
        statement: String,
    },
    DescribePortal {
        portal: String,
    },
    /// A Describe of a portal the gateway added after the client's Bind, so it knows the
    /// result's columns; its answer is not the client's and is not forwarded.
    GatewayDescribe {
        portal: String,
    },
    Execute {
        portal: String,
        /// The portal's statement, when it is a `COPY ... TO STDOUT`.
        copy: Option<Arc<CopyOut>>,
        record: Option<RecordRef>,
    },
    Close,
    Sync,
    /// The client's CopyDone or CopyFail: answers nothing, but ends copy-in mode, during
    /// which the resource ignores Sync. Outside copy-in the resource ignores it too.
    CopyEnd,
}

/// What a client's Describe was about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Described {
    Statement(String),
    Portal(String),
}

/// What a response belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answering {
    /// Asynchronous messages, and errors outside any request (a FATAL at shutdown).
    Nothing,
    Query {
        record: Option<RecordRef>,
    },
    Execute {
        portal: String,
        record: Option<RecordRef>,
    },
    GatewayDescribe {
        portal: String,
    },
    /// A description the client asked for (ParameterDescription, RowDescription, NoData).
    Describe {
        target: Described,
    },
    /// BindComplete: `portal` now runs `statement`, with these result formats.
    Bind {
        portal: String,
        statement: String,
        formats: Vec<i16>,
    },
    /// Any other request.
    Other,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unexpected message `{}` from the resource while expecting the answer to {expected}", (*.tag as char).escape_default())]
pub struct Desync {
    pub tag: u8,
    pub expected: String,
}

/// The requests sent and not yet fully answered, oldest first.
#[derive(Debug, Default)]
pub struct ResponseTracker {
    pending: VecDeque<Request>,
    /// The resource said CopyInResponse and the client's CopyEnd has not been sent yet.
    copy_in: bool,
}

impl ResponseTracker {
    pub fn push(&mut self, request: Request) {
        if self.copy_in {
            match request {
                // Ignored by the resource in copy-in mode: no ReadyForQuery will come.
                Request::Sync => return,
                Request::CopyEnd => {
                    self.copy_in = false;
                    return;
                }
                _ => {}
            }
        }
        self.pending.push_back(request);
    }

    /// Copy-in mode began for the request at the front: the Syncs sent after it up to the
    /// client's CopyEnd are ignored by the resource.
    fn enter_copy_in(&mut self) {
        let mut at = 1;
        while at < self.pending.len() {
            match self.pending[at] {
                Request::Sync => {
                    self.pending.remove(at);
                }
                Request::CopyEnd => {
                    self.pending.remove(at);
                    return;
                }
                _ => at += 1,
            }
        }
        self.copy_in = true;
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// The plan of the COPY whose CopyOutResponse just arrived: the next COPY of the
    /// query being answered, or the executed portal's.
    pub fn take_copy(&mut self) -> Option<Arc<CopyOut>> {
        match self.pending.front_mut()? {
            Request::Query { copies, .. } => copies.pop_front(),
            Request::Execute { copy, .. } => copy.take(),
            _ => None,
        }
    }

    /// Takes one message from the resource into account and says what it answers.
    pub fn on_response(&mut self, tag: u8) -> Result<Answering, Desync> {
        if matches!(tag, b'N' | b'S' | b'A') {
            return Ok(Answering::Nothing);
        }
        // A CopyEnd outside copy-in mode answers nothing.
        while self.pending.front() == Some(&Request::CopyEnd) {
            self.pending.pop_front();
        }
        if tag == b'G'
            && matches!(
                self.pending.front(),
                Some(Request::Query { .. } | Request::Execute { .. })
            )
        {
            self.enter_copy_in();
        }
        // ReadyForQuery: any COPY has ended; a client that never sent CopyDone or CopyFail
        // (the COPY failed first) leaves no copy-in state behind.
        if tag == b'Z' {
            self.copy_in = false;
        }
        let Some(front) = self.pending.front() else {
            return if tag == b'E' {
                Ok(Answering::Nothing)
            } else {
                Err(Desync {
                    tag,
                    expected: "nothing".into(),
                })
            };
        };
        // A Sync can fail too (the implicit commit: a deferred constraint, a serialization
        // failure): its ErrorResponse comes before its ReadyForQuery and skips nothing.
        if tag == b'E' && *front == Request::Sync {
            return Ok(Answering::Other);
        }
        if tag == b'E' && !matches!(front, Request::Query { .. }) {
            // The failed request and everything after it up to Sync are skipped.
            let failed = self.pending.pop_front();
            while self.pending.front().is_some_and(|r| *r != Request::Sync) {
                self.pending.pop_front();
            }
            return Ok(match failed {
                Some(Request::Execute { portal, record, .. }) => {
                    Answering::Execute { portal, record }
                }
                _ => Answering::Other,
            });
        }
        let (answering, done) = match (front, tag) {
            (Request::Query { record, .. }, _) => {
                (Answering::Query { record: *record }, tag == b'Z')
            }
            (
                Request::Bind {
                    portal,
                    statement,
                    formats,
                },
                b'2',
            ) => (
                Answering::Bind {
                    portal: portal.clone(),
                    statement: statement.clone(),
                    formats: formats.clone(),
                },
                true,
            ),
            (Request::Parse, b'1') | (Request::Close, b'3') => (Answering::Other, true),
            (Request::DescribeStatement { statement }, b't') => (
                Answering::Describe {
                    target: Described::Statement(statement.clone()),
                },
                false,
            ),
            (Request::DescribeStatement { statement }, b'T' | b'n') => (
                Answering::Describe {
                    target: Described::Statement(statement.clone()),
                },
                true,
            ),
            (Request::DescribePortal { portal }, b'T' | b'n') => (
                Answering::Describe {
                    target: Described::Portal(portal.clone()),
                },
                true,
            ),
            (Request::GatewayDescribe { portal }, b'T' | b'n') => (
                Answering::GatewayDescribe {
                    portal: portal.clone(),
                },
                true,
            ),
            (Request::Execute { portal, record, .. }, b'D' | b'H' | b'G' | b'W' | b'd' | b'c') => (
                Answering::Execute {
                    portal: portal.clone(),
                    record: *record,
                },
                false,
            ),
            (Request::Execute { portal, record, .. }, b'C' | b's' | b'I') => (
                Answering::Execute {
                    portal: portal.clone(),
                    record: *record,
                },
                true,
            ),
            (Request::Sync, b'Z') => (Answering::Other, true),
            (other, _) => {
                return Err(Desync {
                    tag,
                    expected: format!("{other:?}"),
                })
            }
        };
        if done {
            self.pending.pop_front();
        }
        Ok(answering)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn execute(portal: &str) -> Request {
        Request::Execute {
            portal: portal.into(),
            copy: None,
            record: None,
        }
    }

    fn bind() -> Request {
        Request::Bind {
            portal: "".into(),
            statement: "".into(),
            formats: vec![],
        }
    }

    #[test]
    fn an_extended_batch_is_answered_in_order() {
        let mut t = ResponseTracker::default();
        for r in [
            Request::Parse,
            bind(),
            Request::GatewayDescribe { portal: "".into() },
            execute(""),
            Request::Sync,
        ] {
            t.push(r);
        }
        assert_eq!(t.on_response(b'1'), Ok(Answering::Other));
        assert!(matches!(t.on_response(b'2'), Ok(Answering::Bind { .. })));
        assert_eq!(
            t.on_response(b'T'),
            Ok(Answering::GatewayDescribe { portal: "".into() })
        );
        assert_eq!(t.on_response(b'N'), Ok(Answering::Nothing));
        for _ in 0..3 {
            assert_eq!(
                t.on_response(b'D'),
                Ok(Answering::Execute {
                    portal: "".into(),
                    record: None
                })
            );
        }
        assert_eq!(
            t.on_response(b'C'),
            Ok(Answering::Execute {
                portal: "".into(),
                record: None
            })
        );
        assert_eq!(t.on_response(b'Z'), Ok(Answering::Other));
        assert!(t.is_empty());
    }

    #[test]
    fn an_error_skips_to_sync() {
        let seven = RecordRef {
            seq: 7,
            sent: std::time::Instant::now(),
        };
        let mut t = ResponseTracker::default();
        for r in [
            Request::Parse,
            bind(),
            Request::GatewayDescribe { portal: "".into() },
            execute(""),
            Request::Sync,
            Request::Query {
                copies: VecDeque::new(),
                record: Some(seven),
            },
        ] {
            t.push(r);
        }
        assert_eq!(t.on_response(b'E'), Ok(Answering::Other));
        assert_eq!(t.on_response(b'Z'), Ok(Answering::Other));
        // The simple query after it: rows are the query's, errors do not skip.
        let query = Ok(Answering::Query {
            record: Some(seven),
        });
        assert_eq!(t.on_response(b'T'), query);
        assert_eq!(t.on_response(b'E'), query);
        assert_eq!(t.on_response(b'Z'), query);
        assert!(t.is_empty());
    }

    #[test]
    fn describe_of_a_statement_has_two_answers() {
        let mut t = ResponseTracker::default();
        t.push(Request::DescribeStatement {
            statement: "s1".into(),
        });
        t.push(Request::Sync);
        let described = Ok(Answering::Describe {
            target: Described::Statement("s1".into()),
        });
        assert_eq!(t.on_response(b't'), described);
        assert_eq!(t.on_response(b'n'), described);
        assert_eq!(t.on_response(b'Z'), Ok(Answering::Other));
    }

    #[test]
    fn syncs_during_copy_in_get_no_ready_for_query() {
        // tokio-postgres: Bind, Execute, Sync up front, then the data, CopyDone, Sync.
        let mut t = ResponseTracker::default();
        t.push(bind());
        t.push(execute(""));
        t.push(Request::Sync);
        assert!(matches!(t.on_response(b'2'), Ok(Answering::Bind { .. })));
        assert!(matches!(t.on_response(b'G'), Ok(Answering::Execute { .. })));
        t.push(Request::CopyEnd);
        t.push(Request::Sync);
        assert!(matches!(t.on_response(b'C'), Ok(Answering::Execute { .. })));
        assert_eq!(t.on_response(b'Z'), Ok(Answering::Other));
        assert!(t.is_empty());

        // The client's CopyDone already sent when the CopyInResponse arrives.
        let mut t = ResponseTracker::default();
        for r in [execute(""), Request::Sync, Request::CopyEnd, Request::Sync] {
            t.push(r);
        }
        assert!(matches!(t.on_response(b'G'), Ok(Answering::Execute { .. })));
        assert!(matches!(t.on_response(b'C'), Ok(Answering::Execute { .. })));
        assert_eq!(t.on_response(b'Z'), Ok(Answering::Other));
        assert!(t.is_empty());

        // A COPY that fails before copy-in: its Sync counts, the CopyEnd answers nothing.
        let mut t = ResponseTracker::default();
        for r in [execute(""), Request::Sync, Request::CopyEnd, Request::Sync] {
            t.push(r);
        }
        assert!(matches!(t.on_response(b'E'), Ok(Answering::Execute { .. })));
        assert_eq!(t.on_response(b'Z'), Ok(Answering::Other));
        assert_eq!(t.on_response(b'Z'), Ok(Answering::Other));
        assert!(t.is_empty());
    }

    #[test]
    fn a_failed_implicit_commit_answers_the_sync_and_skips_nothing() {
        let mut t = ResponseTracker::default();
        for r in [
            Request::Parse,
            bind(),
            execute(""),
            Request::Sync,
            Request::Parse,
        ] {
            t.push(r);
        }
        assert_eq!(t.on_response(b'1'), Ok(Answering::Other));
        assert!(matches!(t.on_response(b'2'), Ok(Answering::Bind { .. })));
        assert!(matches!(t.on_response(b'C'), Ok(Answering::Execute { .. })));
        // The commit at Sync fails: ErrorResponse, then ReadyForQuery for the same Sync.
        assert_eq!(t.on_response(b'E'), Ok(Answering::Other));
        assert_eq!(t.on_response(b'Z'), Ok(Answering::Other));
        assert_eq!(t.on_response(b'1'), Ok(Answering::Other));
        assert!(t.is_empty());
    }

    #[test]
    fn a_response_that_fits_nothing_is_a_desync() {
        let mut t = ResponseTracker::default();
        t.push(Request::Parse);
        assert!(t.on_response(b'D').is_err());
        let mut empty = ResponseTracker::default();
        assert!(empty.on_response(b'D').is_err());
        // A FATAL with nothing pending (shutdown) is not.
        assert_eq!(empty.on_response(b'E'), Ok(Answering::Nothing));
    }
}
