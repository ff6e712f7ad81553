//! Why a SQL string could not be classified. Every such string is refused by the gateway.

/// A classification failure. The gateway refuses the whole string: what cannot be
/// understood cannot be judged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClassifyError {
    /// The PostgreSQL parser rejected the text; the message is PostgreSQL's own.
    #[error("cannot parse statement: {0}")]
    Parse(String),
    /// The statement parsed, but it is of a type the classifier does not know how to judge.
    #[error("statement type {0} is not supported by the gateway")]
    Unsupported(String),
    /// The parse tree had a shape the classifier did not expect (a libpg_query upgrade may
    /// have changed it). Refused rather than guessed.
    #[error("unexpected parse tree: {0}")]
    Malformed(String),
}
