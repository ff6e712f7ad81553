//! What classification reports: per statement, the accesses it would make.
//!
//! [`Access`] and [`Object`](sluice_core::Object) live in `sluice-core`, because policy
//! judges accesses whatever protocol they came from.

use serde::Serialize;
use sluice_core::{Access, Action, QualifiedName};

use crate::flow::ValueFlows;

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
    /// `DEALLOCATE name` (`Some(name)`) or `DEALLOCATE ALL` / `DISCARD ALL` (`Some("")`):
    /// prepared statements the session must forget, SQL- and protocol-level alike (they
    /// share one namespace).
    pub deallocates: Option<String>,
    /// `DECLARE name`, `FETCH`/`MOVE ... name`, `CLOSE name`: the cursor (portal) named.
    /// SQL reaches protocol-level portals by name too, so the session keeps its own
    /// portals out of reach with it.
    pub portal: Option<String>,
    /// Whether the statement changes `search_path`, and to what, so the session resolves
    /// later names as the resource will.
    pub search_path_change: Option<SearchPathChange>,
    /// `COPY ... TO STDOUT`: what the rows will hold, so the data path can mask them.
    pub copy_out: Option<CopyOut>,
    /// Where the values of the columns it references go (result columns, expressions,
    /// conditions, other tables), for masking: see [`crate::flow`].
    pub flows: ValueFlows,
}

/// The shape of a `COPY ... TO STDOUT`'s rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CopyOut {
    /// `COPY table`: the table's candidate names (several when unqualified, as the search
    /// path may find it in any of its schemas); empty for `COPY (query)`.
    pub table: Vec<QualifiedName>,
    /// The column list, when one is given; otherwise every column in table order.
    pub columns: Vec<String>,
    pub format: CopyOutFormat,
    /// `HEADER`: the first row holds column names.
    pub header: bool,
    /// Options beyond `FORMAT` and `HEADER` (`DELIMITER`, `NULL`, `QUOTE`, ...), which
    /// change how rows are written.
    pub other_options: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CopyOutFormat {
    Text,
    Csv,
    Binary,
}

/// A change of `search_path` a statement makes.
///
/// A session cannot always know which path is in force afterwards: `SET LOCAL` ends with
/// its transaction, a plain `SET` inside a transaction is undone by a rollback. Sessions
/// therefore keep every schema a path may hold (see `SearchPath::union`), and refuse a
/// change they cannot follow at all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SearchPathChange {
    /// `SET [LOCAL] search_path TO a, b`.
    To(Vec<String>),
    /// `RESET search_path`, `SET search_path TO DEFAULT`, `RESET ALL`, `DISCARD ALL`: back
    /// to the connection's default.
    Reset,
    /// A form whose new value the classifier cannot read.
    Unknown,
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
