//! What a statement does, in the words policy rules use (`actions: [select, insert]`).
//!
//! The list is the contract of DESIGN.md §3, extended where PostgreSQL has statements that
//! fit none of its words; docs/actions.md explains each one.

use serde::{Deserialize, Serialize};

/// One kind of access a statement makes. A statement usually makes several (a join reads
/// two tables; a CTE may delete from one and read another).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Reads rows: SELECT, VALUES, TABLE, and every table a statement reads from.
    Select,
    Insert,
    Update,
    Delete,
    Merge,
    Truncate,
    /// `COPY table|query TO STDOUT`.
    CopyOut,
    /// `COPY table FROM STDIN`.
    CopyIn,
    /// `COPY ... TO/FROM PROGRAM` or a server-side file: runs a program or reads/writes a
    /// file on the database host. Always needs a rule that names it.
    CopyProgram,
    /// CREATE, ALTER, DROP, COMMENT, ... of any object, including `SELECT INTO`.
    Ddl,
    /// GRANT, REVOKE, role management.
    Grant,
    /// `DO` blocks, function and procedure bodies, `LOAD`: code the gateway cannot see into.
    Procedural,
    /// `CALL procedure(...)`.
    Call,
    /// SET, RESET and SHOW of run-time parameters (`SET ROLE` and `SET SESSION
    /// AUTHORIZATION` need a rule that names them).
    Set,
    /// `EXPLAIN` of a statement that would write (without ANALYZE, nothing runs). `EXPLAIN`
    /// of a read needs only the read; `EXPLAIN ANALYZE` needs whatever its statement needs.
    Explain,
    /// A call to a function outside the built-in read-only list.
    Function,
    /// `LOCK TABLE`, and `SELECT ... FOR UPDATE/SHARE` row locks.
    Lock,
    /// VACUUM, ANALYZE, CLUSTER, REINDEX, CHECKPOINT, REFRESH MATERIALIZED VIEW and
    /// two-phase-commit control.
    Maintenance,
    /// LISTEN, NOTIFY, UNLISTEN.
    Notify,
    /// Transaction and session housekeeping: BEGIN, COMMIT, ROLLBACK, SAVEPOINT, RELEASE,
    /// DEALLOCATE, CLOSE, FETCH, MOVE, DISCARD. Always allowed: none of them touches data
    /// that was not judged when it was first reached.
    Transaction,
}

impl Action {
    pub const ALL: [Action; 20] = [
        Action::Select,
        Action::Insert,
        Action::Update,
        Action::Delete,
        Action::Merge,
        Action::Truncate,
        Action::CopyOut,
        Action::CopyIn,
        Action::CopyProgram,
        Action::Ddl,
        Action::Grant,
        Action::Procedural,
        Action::Call,
        Action::Set,
        Action::Explain,
        Action::Function,
        Action::Lock,
        Action::Maintenance,
        Action::Notify,
        Action::Transaction,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Select => "select",
            Action::Insert => "insert",
            Action::Update => "update",
            Action::Delete => "delete",
            Action::Merge => "merge",
            Action::Truncate => "truncate",
            Action::CopyOut => "copy_out",
            Action::CopyIn => "copy_in",
            Action::CopyProgram => "copy_program",
            Action::Ddl => "ddl",
            Action::Grant => "grant",
            Action::Procedural => "procedural",
            Action::Call => "call",
            Action::Set => "set",
            Action::Explain => "explain",
            Action::Function => "function",
            Action::Lock => "lock",
            Action::Maintenance => "maintenance",
            Action::Notify => "notify",
            Action::Transaction => "transaction",
        }
    }

    /// Whether the action changes data or schema (used to degrade `EXPLAIN` of a write to
    /// [`Action::Explain`]).
    pub fn writes(self) -> bool {
        !matches!(
            self,
            Action::Select | Action::Explain | Action::Transaction | Action::CopyOut
        )
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown action `{0}`; expected one of: select insert update delete merge truncate copy_out copy_in copy_program ddl grant procedural call set explain function lock maintenance notify transaction")]
pub struct UnknownAction(pub String);

impl std::str::FromStr for Action {
    type Err = UnknownAction;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Action::ALL
            .iter()
            .copied()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| UnknownAction(s.to_string()))
    }
}
