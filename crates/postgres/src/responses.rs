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
//!
//! A response that fits no request means the gateway's picture of the session is wrong;
//! the session then ends (fail closed) rather than mask by a wrong description.

use std::collections::VecDeque;
use std::sync::Arc;

use sluice_sql::CopyOut;

/// A request sent to the resource whose response is expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// With the `COPY ... TO STDOUT` statements of the string, in order.
    Query {
        copies: VecDeque<Arc<CopyOut>>,
    },
    Parse,
    Bind,
    DescribeStatement,
    DescribePortal,
    /// A Describe of a portal the gateway added after the client's Bind, so it knows the
    /// result's columns; its answer is not the client's and is not forwarded.
    GatewayDescribe {
        portal: String,
    },
    Execute {
        portal: String,
        /// The portal's statement, when it is a `COPY ... TO STDOUT`.
        copy: Option<Arc<CopyOut>>,
    },
    Close,
    Sync,
}

/// What a response belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answering {
    /// Asynchronous messages, and errors outside any request (a FATAL at shutdown).
    Nothing,
    Query,
    Execute {
        portal: String,
    },
    GatewayDescribe {
        portal: String,
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
}

impl ResponseTracker {
    pub fn push(&mut self, request: Request) {
        self.pending.push_back(request);
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// The plan of the COPY whose CopyOutResponse just arrived: the next COPY of the
    /// query being answered, or the executed portal's.
    pub fn take_copy(&mut self) -> Option<Arc<CopyOut>> {
        match self.pending.front_mut()? {
            Request::Query { copies } => copies.pop_front(),
            Request::Execute { copy, .. } => copy.take(),
            _ => None,
        }
    }

    /// Takes one message from the resource into account and says what it answers.
    pub fn on_response(&mut self, tag: u8) -> Result<Answering, Desync> {
        if matches!(tag, b'N' | b'S' | b'A') {
            return Ok(Answering::Nothing);
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
        if tag == b'E' && !matches!(front, Request::Query { .. }) {
            // The failed request and everything after it up to Sync are skipped.
            self.pending.pop_front();
            while self.pending.front().is_some_and(|r| *r != Request::Sync) {
                self.pending.pop_front();
            }
            return Ok(Answering::Other);
        }
        let (answering, done) = match (front, tag) {
            (Request::Query { .. }, _) => (Answering::Query, tag == b'Z'),
            (Request::Parse, b'1') | (Request::Bind, b'2') | (Request::Close, b'3') => {
                (Answering::Other, true)
            }
            (Request::DescribeStatement, b't') => (Answering::Other, false),
            (Request::DescribeStatement | Request::DescribePortal, b'T' | b'n') => {
                (Answering::Other, true)
            }
            (Request::GatewayDescribe { portal }, b'T' | b'n') => (
                Answering::GatewayDescribe {
                    portal: portal.clone(),
                },
                true,
            ),
            (Request::Execute { portal, .. }, b'D' | b'H' | b'G' | b'W' | b'd' | b'c') => (
                Answering::Execute {
                    portal: portal.clone(),
                },
                false,
            ),
            (Request::Execute { portal, .. }, b'C' | b's' | b'I') => (
                Answering::Execute {
                    portal: portal.clone(),
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
        }
    }

    #[test]
    fn an_extended_batch_is_answered_in_order() {
        let mut t = ResponseTracker::default();
        for r in [
            Request::Parse,
            Request::Bind,
            Request::GatewayDescribe { portal: "".into() },
            execute(""),
            Request::Sync,
        ] {
            t.push(r);
        }
        assert_eq!(t.on_response(b'1'), Ok(Answering::Other));
        assert_eq!(t.on_response(b'2'), Ok(Answering::Other));
        assert_eq!(
            t.on_response(b'T'),
            Ok(Answering::GatewayDescribe { portal: "".into() })
        );
        assert_eq!(t.on_response(b'N'), Ok(Answering::Nothing));
        for _ in 0..3 {
            assert_eq!(
                t.on_response(b'D'),
                Ok(Answering::Execute { portal: "".into() })
            );
        }
        assert_eq!(
            t.on_response(b'C'),
            Ok(Answering::Execute { portal: "".into() })
        );
        assert_eq!(t.on_response(b'Z'), Ok(Answering::Other));
        assert!(t.is_empty());
    }

    #[test]
    fn an_error_skips_to_sync() {
        let mut t = ResponseTracker::default();
        for r in [
            Request::Parse,
            Request::Bind,
            Request::GatewayDescribe { portal: "".into() },
            execute(""),
            Request::Sync,
            Request::Query {
                copies: VecDeque::new(),
            },
        ] {
            t.push(r);
        }
        assert_eq!(t.on_response(b'E'), Ok(Answering::Other));
        assert_eq!(t.on_response(b'Z'), Ok(Answering::Other));
        // The simple query after it: rows are the query's, errors do not skip.
        assert_eq!(t.on_response(b'T'), Ok(Answering::Query));
        assert_eq!(t.on_response(b'E'), Ok(Answering::Query));
        assert_eq!(t.on_response(b'Z'), Ok(Answering::Query));
        assert!(t.is_empty());
    }

    #[test]
    fn describe_of_a_statement_has_two_answers() {
        let mut t = ResponseTracker::default();
        t.push(Request::DescribeStatement);
        t.push(Request::Sync);
        assert_eq!(t.on_response(b't'), Ok(Answering::Other));
        assert_eq!(t.on_response(b'n'), Ok(Answering::Other));
        assert_eq!(t.on_response(b'Z'), Ok(Answering::Other));
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
