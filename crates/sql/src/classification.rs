//! What classification reports: per statement, the accesses it would make.
//!
//! [`Access`] and [`Object`](sluice_core::Object) live in `sluice-core`, because policy
//! judges accesses whatever protocol they came from.

use serde::Serialize;
use sluice_core::{Access, Action};

/// The result of classifying one SQL string (possibly several statements).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Classification {
    pub statements: Vec<StatementClass>,
}

/// One statement of the string.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatementClass {
    /// The statement's own text, cut from the string by the parser's offsets.
    pub text: String,
    /// The parse node type (`SelectStmt`, `DeleteStmt`, ...), for logs and explain.
    pub kind: String,
    /// Every access the statement would make, deduplicated, in a stable order.
    pub accesses: Vec<Access>,
    /// `PREPARE name AS ...`: the name, so the session can remember what `EXECUTE name`
    /// would run. The accesses are those of the prepared statement.
    pub prepares: Option<String>,
    /// `EXECUTE name`: cannot be judged alone; the session must substitute the accesses of
    /// the statement it prepared under that name.
    pub executes: Option<String>,
    /// `SET search_path`: the new path, so the session resolves later names with it.
    /// `None` also for `SET search_path` forms the classifier cannot follow (then the
    /// access to the `search_path` setting is still reported).
    pub sets_search_path: Option<Vec<String>>,
}

impl StatementClass {
    /// Transaction control and session housekeeping only: always allowed (DESIGN.md §1).
    pub fn is_transaction_control(&self) -> bool {
        !self.accesses.is_empty()
            && self
                .accesses
                .iter()
                .all(|a| a.action == Action::Transaction)
    }

    pub fn actions(&self) -> Vec<Action> {
        let mut actions: Vec<Action> = self.accesses.iter().map(|a| a.action).collect();
        actions.sort();
        actions.dedup();
        actions
    }
}
