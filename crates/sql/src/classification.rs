//! What classification reports: per statement, the accesses it would make.

use serde::Serialize;
use sluice_core::{Action, QualifiedName};

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

/// One action on one object.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Access {
    pub action: Action,
    pub object: Object,
    /// Set for accesses that only a rule naming them literally may allow: dangerous
    /// functions, `SET ROLE`, `SET SESSION AUTHORIZATION`. A glob never covers them.
    pub explicit_only: bool,
}

impl Access {
    pub fn new(action: Action, object: Object) -> Self {
        Access {
            action,
            object,
            explicit_only: false,
        }
    }

    pub fn explicit(action: Action, object: Object) -> Self {
        Access {
            action,
            object,
            explicit_only: true,
        }
    }
}

/// What an access touches.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(tag = "type", content = "name", rename_all = "snake_case")]
pub enum Object {
    /// Nothing: `SELECT 1`, `BEGIN`, a `DO` block as a whole.
    None,
    /// A relation (table, view, sequence, materialized view, foreign table).
    Table(QualifiedName),
    /// A function or procedure.
    Function(QualifiedName),
    /// A run-time parameter (`SET`/`SHOW`), lower-cased.
    Setting(String),
    /// An object the classifier cannot name (a role, a database, a DDL target it does not
    /// extract). Only rules that do not restrict objects cover it; deny rules that name
    /// objects treat it as possibly theirs.
    Unknown(String),
}

impl std::fmt::Display for Object {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Object::None => f.write_str("-"),
            Object::Table(n) => write!(f, "table {n}"),
            Object::Function(n) => write!(f, "function {n}"),
            Object::Setting(s) => write!(f, "setting {s}"),
            Object::Unknown(d) => write!(f, "{d}"),
        }
    }
}

impl std::fmt::Display for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.object {
            Object::None => write!(f, "{}", self.action),
            _ => write!(f, "{} on {}", self.action, self.object),
        }
    }
}
