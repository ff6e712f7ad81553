//! PostgreSQL statement classification: what a SQL string would do, before it runs.
//!
//! The gateway judges every statement by its grammar, never by keywords: the text is parsed
//! by the PostgreSQL parser itself (libpg_query through the `pg_query` crate), and the parse
//! tree is walked to find, for each statement of the string, the [`Access`]es it makes:
//! an [`Action`](sluice_core::Action) on an object (a table, a function, a setting).
//!
//! Layout:
//! - [`classify`](mod@classify): the entry point, one parse per string, one
//!   [`StatementClass`] per statement, dispatching on the statement type;
//! - [`walk`]: the walker for queries and DML (CTE scoping, nested statements, functions);
//! - [`flow`]: value flow, for masking: for every column reference, whether its value
//!   leaves as a result column of its own, inside an expression, as part of a whole row,
//!   or is only read by a condition;
//! - [`functions`]: the reviewed lists of built-in functions that a read rule covers and of
//!   dangerous ones that need a rule naming them;
//! - [`normalize`]: a statement's normalized text (parse tree printed back), what approval
//!   tickets are matched on;
//! - [`position`]: where a syntax error is, for refusals that point at it;
//! - [`search_path`]: how unqualified names are resolved;
//! - [`view`]: which base column each column of a view shows, for masking;
//! - [`cache`]: the classification cache for the hot path, keyed by the exact text and,
//!   for plain queries and DML, by the text with its constants replaced by parameters;
//! - [`literals`]: that shape found in one pass over the bytes for the common constants,
//!   used by the cache only once the parser has confirmed it for an earlier text.
//!
//! The crate does no I/O and knows nothing of policy: it reports, policy decides.

pub mod cache;
pub mod classification;
pub mod classify;
pub mod error;
pub mod flow;
pub mod functions;
pub mod literals;
pub mod normalize;
pub mod position;
pub mod search_path;
pub mod view;
pub mod walk;

pub use cache::{CacheStats, Classifier};
pub use classification::{
    Classification, CopyOut, CopyOutFormat, SearchPathChange, StatementClass,
};
pub use classify::classify;
pub use error::ClassifyError;
pub use flow::{ColumnFlow, Usage, ValueFlows, Via};
pub use normalize::normalized_text;
pub use position::syntax_error_position;
pub use search_path::SearchPath;
pub use sluice_core::{Access, Object};
pub use view::{view_columns, ViewColumn};
