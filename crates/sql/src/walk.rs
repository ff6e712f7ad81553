//! The walker for queries and DML: which relations a statement reads and writes, which
//! functions it calls, and which statements hide inside it.
//!
//! It walks the parse tree in the JSON form libpg_query's protobuf types serialize to.
//! Recognising nodes by shape rather than by a list of node types is deliberate: a relation
//! reference (`relname`) or a function call (`funcname` with call fields) is found wherever
//! the grammar puts it, including in node types this file never names. What it does name
//! are the places whose meaning differs: the write target of INSERT/UPDATE/DELETE/MERGE,
//! the `INTO` of `SELECT INTO`, and the `WITH` clauses whose names shadow tables.
//!
//! CTE scoping follows PostgreSQL: a CTE name is visible in the statement that carries the
//! `WITH` (and its subqueries), in the bodies of later CTEs of the same list, and in its own
//! body only when the list is `RECURSIVE`. A `WITH secrets AS (SELECT * FROM secrets)` thus
//! still reads the real `secrets` inside its body.

use serde_json::{Map, Value};
use sluice_core::{Access, Action, Object, QualifiedName};

use crate::error::ClassifyError;
use crate::functions::{self, Builtin};
use crate::search_path::SearchPath;

/// Collects the accesses of one statement.
pub struct Walker<'a> {
    search_path: &'a SearchPath,
    /// CTE names visible at the current point, innermost last.
    scope: Vec<String>,
    pub accesses: Vec<Access>,
    /// Relations read, kept apart so row locks (`FOR UPDATE`) can be added to them.
    reads: Vec<QualifiedName>,
    row_locks: bool,
}

impl<'a> Walker<'a> {
    pub fn new(search_path: &'a SearchPath) -> Self {
        Walker {
            search_path,
            scope: Vec::new(),
            accesses: Vec::new(),
            reads: Vec::new(),
            row_locks: false,
        }
    }

    /// Finishes the walk: adds the row-lock accesses and returns all accesses.
    pub fn finish(mut self) -> Vec<Access> {
        if self.row_locks {
            for name in std::mem::take(&mut self.reads) {
                self.accesses
                    .push(Access::new(Action::Lock, Object::Table(name)));
            }
        }
        self.accesses
    }

    /// Walks any node: a wrapped `{"NodeType": {...}}`, a bare struct, a list or a scalar.
    pub fn walk(&mut self, value: &Value) -> Result<(), ClassifyError> {
        match value {
            Value::Array(items) => items.iter().try_for_each(|v| self.walk(v)),
            Value::Object(map) => self.walk_object(map),
            _ => Ok(()),
        }
    }

    fn walk_object(&mut self, map: &Map<String, Value>) -> Result<(), ClassifyError> {
        // Wrapped nodes whose meaning depends on their type.
        if map.len() == 1 {
            let (key, inner) = map.iter().next().expect("one entry");
            if let Value::Object(fields) = inner {
                match key.as_str() {
                    "SelectStmt" => return self.select(fields),
                    "InsertStmt" => return self.dml(fields, Action::Insert),
                    "UpdateStmt" => return self.dml(fields, Action::Update),
                    "DeleteStmt" => return self.dml(fields, Action::Delete),
                    "MergeStmt" => return self.dml(fields, Action::Merge),
                    "ColumnRef" => return Ok(()),
                    _ => {}
                }
            }
        }
        if is_range_var(map) {
            return self.read_relation(map);
        }
        if is_func_call(map) {
            self.function_call(map)?;
            // Arguments, FILTER, OVER and ORDER BY may hold subqueries and more calls.
            for (key, value) in map {
                if key != "funcname" {
                    self.walk(value)?;
                }
            }
            return Ok(());
        }
        if map.contains_key("with_clause") {
            // A statement with a WITH that reached here unrecognised: refuse, because its
            // CTE names cannot be scoped.
            return Err(ClassifyError::Malformed(
                "a WITH clause in an unexpected place".into(),
            ));
        }
        map.values().try_for_each(|v| self.walk(v))
    }

    /// SELECT, VALUES, TABLE and set operations.
    pub fn select(&mut self, fields: &Map<String, Value>) -> Result<(), ClassifyError> {
        self.with_scope(fields, |walker| {
            if let Some(into) = fields.get("into_clause").filter(|v| !v.is_null()) {
                // SELECT ... INTO creates a table.
                let rel = into
                    .get("rel")
                    .ok_or_else(|| malformed("INTO without a relation"))?;
                let name = walker.relation_name(rel)?;
                for candidate in name {
                    walker
                        .accesses
                        .push(Access::new(Action::Ddl, Object::Table(candidate)));
                }
            }
            if fields
                .get("locking_clause")
                .and_then(Value::as_array)
                .is_some_and(|l| !l.is_empty())
            {
                walker.row_locks = true;
            }
            for (key, value) in fields {
                match key.as_str() {
                    "with_clause" | "into_clause" => {}
                    // Set operations: the branches are bare SelectStmt structs.
                    "larg" | "rarg" => {
                        if let Value::Object(branch) = value {
                            walker.select(branch)?;
                        }
                    }
                    _ => walker.walk(value)?,
                }
            }
            Ok(())
        })
    }

    /// INSERT, UPDATE, DELETE, MERGE: the target is written, everything else is walked.
    pub fn dml(
        &mut self,
        fields: &Map<String, Value>,
        action: Action,
    ) -> Result<(), ClassifyError> {
        self.with_scope(fields, |walker| {
            let relation = fields
                .get("relation")
                .ok_or_else(|| malformed("DML without a target"))?;
            for name in walker.relation_name(relation)? {
                walker
                    .accesses
                    .push(Access::new(action, Object::Table(name.clone())));
                if action == Action::Insert && upserts(fields) {
                    walker
                        .accesses
                        .push(Access::new(Action::Update, Object::Table(name)));
                }
            }
            for (key, value) in fields {
                match key.as_str() {
                    "with_clause" | "relation" => {}
                    _ => walker.walk(value)?,
                }
            }
            Ok(())
        })
    }

    /// Runs `body` with the CTE names of `fields.with_clause` in scope, after walking the
    /// CTE bodies with the scoping rules described in the module docs.
    fn with_scope(
        &mut self,
        fields: &Map<String, Value>,
        body: impl FnOnce(&mut Self) -> Result<(), ClassifyError>,
    ) -> Result<(), ClassifyError> {
        let depth = self.scope.len();
        if let Some(with) = fields.get("with_clause").filter(|v| !v.is_null()) {
            let recursive = with
                .get("recursive")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let ctes = with
                .get("ctes")
                .and_then(Value::as_array)
                .ok_or_else(|| malformed("WITH without CTEs"))?;
            let mut bodies = Vec::with_capacity(ctes.len());
            for cte in ctes {
                let cte = cte
                    .get("node")
                    .unwrap_or(cte)
                    .get("CommonTableExpr")
                    .ok_or_else(|| malformed("WITH item is not a CTE"))?;
                let name = cte
                    .get("ctename")
                    .and_then(Value::as_str)
                    .ok_or_else(|| malformed("CTE without a name"))?;
                let query = cte
                    .get("ctequery")
                    .ok_or_else(|| malformed("CTE without a query"))?;
                bodies.push((name.to_string(), query));
            }
            if recursive {
                self.scope.extend(bodies.iter().map(|(n, _)| n.clone()));
                for (_, query) in &bodies {
                    self.walk(query)?;
                }
            } else {
                for (name, query) in &bodies {
                    self.walk(query)?;
                    self.scope.push(name.clone());
                }
            }
        }
        let result = body(self);
        self.scope.truncate(depth);
        result
    }

    fn read_relation(&mut self, range_var: &Map<String, Value>) -> Result<(), ClassifyError> {
        let schema = str_field(range_var, "schemaname");
        let name = str_field(range_var, "relname");
        if schema.is_empty() && self.scope.iter().any(|cte| cte == name) {
            return Ok(()); // a CTE reference, not a table
        }
        for candidate in self.resolve_relation(schema, name)? {
            self.reads.push(candidate.clone());
            self.accesses
                .push(Access::new(Action::Select, Object::Table(candidate)));
        }
        Ok(())
    }

    /// The candidate names of a relation node (`RangeVar`, bare or wrapped).
    pub fn relation_name(&self, node: &Value) -> Result<Vec<QualifiedName>, ClassifyError> {
        let map = match node {
            Value::Object(m) if is_range_var(m) => m,
            Value::Object(m) => match m.get("RangeVar") {
                Some(Value::Object(inner)) => inner,
                _ => return Err(malformed("expected a relation")),
            },
            _ => return Err(malformed("expected a relation")),
        };
        self.resolve_relation(str_field(map, "schemaname"), str_field(map, "relname"))
    }

    /// Candidate schema-qualified names for a relation reference, as the module docs of
    /// [`crate::search_path`] describe.
    pub fn resolve_relation(
        &self,
        schema: &str,
        name: &str,
    ) -> Result<Vec<QualifiedName>, ClassifyError> {
        if name.is_empty() {
            return Err(malformed("relation without a name"));
        }
        if !schema.is_empty() {
            return Ok(vec![QualifiedName::new(schema, name)]);
        }
        let mut candidates = Vec::new();
        // Every relation of pg_catalog is named pg_*, and pg_catalog is searched first.
        if name.starts_with("pg_") {
            candidates.push(QualifiedName::new("pg_catalog", name));
        }
        candidates.extend(
            self.search_path
                .schemas()
                .iter()
                .map(|s| QualifiedName::new(s.as_str(), name)),
        );
        if candidates.is_empty() {
            // An empty search path: PostgreSQL would fail with "no schema has been selected".
            return Err(ClassifyError::Parse(format!(
                "relation \"{name}\" is unqualified and the search path is empty"
            )));
        }
        Ok(candidates)
    }

    fn function_call(&mut self, call: &Map<String, Value>) -> Result<(), ClassifyError> {
        let parts = name_list(call.get("funcname"))?;
        for access in self.function_accesses(&parts, Action::Function)? {
            self.accesses.push(access);
        }
        Ok(())
    }

    /// The accesses a call of the function named by `parts` needs, for `action`
    /// ([`Action::Function`] for calls in expressions, [`Action::Call`] for `CALL`).
    pub fn function_accesses(
        &self,
        parts: &[String],
        action: Action,
    ) -> Result<Vec<Access>, ClassifyError> {
        let (schema, name) = match parts {
            [name] => (None, name.as_str()),
            [schema, name] => (Some(schema.as_str()), name.as_str()),
            [_catalog, schema, name] => (Some(schema.as_str()), name.as_str()),
            _ => return Err(malformed("function name with too many parts")),
        };
        let dangerous = functions::dangerous::reason(name).is_some();
        let builtin = match schema {
            Some("pg_catalog") => true,
            Some(_) => false,
            None => functions::is_pg_catalog_function(name),
        };
        if builtin && action == Action::Function && functions::builtin(name) == Builtin::Safe {
            return Ok(Vec::new());
        }
        let candidates: Vec<QualifiedName> = match (schema, builtin) {
            (Some(s), _) => vec![QualifiedName::new(s, name)],
            (None, true) => vec![QualifiedName::new("pg_catalog", name)],
            (None, false) => self
                .search_path
                .schemas()
                .iter()
                .map(|s| QualifiedName::new(s.as_str(), name))
                .collect(),
        };
        if candidates.is_empty() {
            return Err(ClassifyError::Parse(format!(
                "function \"{name}\" is unqualified and the search path is empty"
            )));
        }
        Ok(candidates
            .into_iter()
            .map(|n| {
                if dangerous {
                    Access::explicit(action, Object::Function(n))
                } else {
                    Access::new(action, Object::Function(n))
                }
            })
            .collect())
    }
}

fn upserts(insert: &Map<String, Value>) -> bool {
    // OnConflictAction::OnconflictUpdate
    insert
        .get("on_conflict_clause")
        .and_then(|c| c.get("action"))
        .and_then(Value::as_i64)
        .is_some_and(|a| a == pg_query::protobuf::OnConflictAction::OnconflictUpdate as i64)
}

pub(crate) fn is_range_var(map: &Map<String, Value>) -> bool {
    map.contains_key("relname") && map.contains_key("schemaname") && map.contains_key("inh")
}

fn is_func_call(map: &Map<String, Value>) -> bool {
    map.contains_key("funcname")
        && map.contains_key("agg_star")
        && map.contains_key("func_variadic")
}

pub(crate) fn str_field<'v>(map: &'v Map<String, Value>, key: &str) -> &'v str {
    map.get(key).and_then(Value::as_str).unwrap_or("")
}

/// A list of `String` nodes (`["pg_catalog", "now"]`), as names are spelled in the tree.
pub(crate) fn name_list(value: Option<&Value>) -> Result<Vec<String>, ClassifyError> {
    let items = value
        .and_then(Value::as_array)
        .ok_or_else(|| malformed("expected a name list"))?;
    items
        .iter()
        .map(|item| {
            item.get("node")
                .unwrap_or(item)
                .get("String")
                .and_then(|s| s.get("sval"))
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| malformed("expected a name"))
        })
        .collect()
}

pub(crate) fn malformed(what: &str) -> ClassifyError {
    ClassifyError::Malformed(what.to_string())
}
