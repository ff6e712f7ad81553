//! An access: one action on one object, the unit every policy decision is made of.
//!
//! Protocol crates translate what a client asks for into accesses (SQL classification
//! yields them per statement); the policy engine judges accesses and never sees a wire
//! format.

use serde::Serialize;

use crate::{Action, QualifiedName};

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
        match (&self.action, &self.object) {
            (_, Object::None) => write!(f, "{}", self.action),
            (crate::Action::Function, Object::Function(name)) => {
                write!(f, "calling function {name}")
            }
            (crate::Action::Call, Object::Function(name)) => write!(f, "CALL of procedure {name}"),
            _ => write!(f, "{} on {}", self.action, self.object),
        }
    }
}
