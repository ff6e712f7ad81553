//! Schema-qualified object names, as PostgreSQL resolves them.

use serde::{Deserialize, Serialize};

/// `schema.name` of a table, view, sequence, function or other object.
///
/// Both parts are stored exactly as PostgreSQL would store them: unquoted identifiers
/// folded to lower case by the parser, quoted ones kept verbatim. Policy globs are matched
/// against [`QualifiedName::to_string`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct QualifiedName {
    pub schema: String,
    pub name: String,
}

impl QualifiedName {
    pub fn new(schema: impl Into<String>, name: impl Into<String>) -> Self {
        QualifiedName {
            schema: schema.into(),
            name: name.into(),
        }
    }
}

impl std::fmt::Display for QualifiedName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.schema, self.name)
    }
}
