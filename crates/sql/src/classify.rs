//! The entry point: one parse per string, one [`StatementClass`] per statement.
//!
//! Queries and DML go to the [`walk`](crate::walk) walker. Utility statements are matched by
//! node type, each to the action DESIGN.md names for it. A node type this file does not
//! list is refused ([`ClassifyError::Unsupported`]): a new PostgreSQL statement is judged
//! only once someone has decided what it does.

use serde_json::{Map, Value};
use sluice_core::{Access, Action, Object, QualifiedName};

use crate::classification::{
    Classification, CopyOut, CopyOutFormat, SearchPathChange, StatementClass,
};
use crate::error::ClassifyError;
use crate::flow::{copy_flows, statement_flows, Sink, ValueFlows};
use crate::search_path::SearchPath;
use crate::walk::{malformed, name_list, str_field, Walker};

use pg_query::protobuf::{TransactionStmtKind, VariableSetKind};

/// Classifies every statement of `sql`, resolving unqualified names through `search_path`.
///
/// An empty string (or one holding only comments) yields no statements, as PostgreSQL
/// answers it with `EmptyQueryResponse`.
pub fn classify(sql: &str, search_path: &SearchPath) -> Result<Classification, ClassifyError> {
    let parsed = pg_query::parse(sql, 0).map_err(|e| match e {
        pg_query::Error::Parse(message) => ClassifyError::Parse(message),
        other => ClassifyError::Parse(other.to_string()),
    })?;
    let mut statements = Vec::with_capacity(parsed.protobuf.stmts.len());
    for raw in &parsed.protobuf.stmts {
        let text = statement_text(sql, raw.stmt_location, raw.stmt_len);
        let node = raw
            .stmt
            .as_ref()
            .ok_or_else(|| malformed("empty statement node"))?;
        let tree =
            serde_json::to_value(node).map_err(|e| ClassifyError::Malformed(e.to_string()))?;
        statements.push(classify_statement(text, &tree, search_path)?);
    }
    Ok(Classification { statements })
}

/// Cuts one statement out of the string by the parser's byte offsets (a length of 0 means
/// "to the end"), trimmed of surrounding whitespace.
fn statement_text(sql: &str, location: i32, len: i32) -> String {
    let start = usize::try_from(location).unwrap_or(0).min(sql.len());
    let end = if len <= 0 {
        sql.len()
    } else {
        (start + len as usize).min(sql.len())
    };
    sql.get(start..end).unwrap_or(sql).trim().to_string()
}

fn classify_statement(
    text: String,
    tree: &Value,
    search_path: &SearchPath,
) -> Result<StatementClass, ClassifyError> {
    let wrapped = tree
        .get("node")
        .and_then(Value::as_object)
        .ok_or_else(|| malformed("statement is not a node"))?;
    let (kind, fields) = wrapped
        .iter()
        .next()
        .ok_or_else(|| malformed("statement node is empty"))?;
    let fields = fields
        .as_object()
        .ok_or_else(|| malformed("statement fields"))?;
    let mut class = StatementClass {
        text,
        kind: kind.clone(),
        accesses: Vec::new(),
        prepares: None,
        executes: None,
        deallocates: None,
        portal: None,
        search_path_change: None,
        copy_out: None,
        flows: ValueFlows::default(),
    };
    let mut walker = Walker::new(search_path);
    let mut extra: Vec<Access> = Vec::new();
    match kind.as_str() {
        "SelectStmt" => walker.select(fields)?,
        "InsertStmt" => walker.dml(fields, Action::Insert)?,
        "UpdateStmt" => walker.dml(fields, Action::Update)?,
        "DeleteStmt" => walker.dml(fields, Action::Delete)?,
        "MergeStmt" => walker.dml(fields, Action::Merge)?,
        "ExplainStmt" => {
            let query = fields
                .get("query")
                .ok_or_else(|| malformed("EXPLAIN without a statement"))?;
            let inner = classify_statement(String::new(), query, search_path)?;
            if explain_analyzes(fields) {
                // The statement runs and its rows are discarded: what it writes elsewhere
                // still leaves, what it would return does not.
                class.flows = explained_flows(query, search_path)?;
                extra.extend(inner.accesses);
            } else {
                // Nothing runs: a write is only planned, which needs `explain`.
                extra.extend(inner.accesses.into_iter().map(|mut a| {
                    if a.action.writes() {
                        a.action = Action::Explain;
                    }
                    a
                }));
            }
        }
        "CreateTableAsStmt" => {
            let into = fields
                .get("into")
                .and_then(|i| i.get("rel"))
                .ok_or_else(|| malformed("CREATE TABLE AS without a target"))?;
            for name in walker.relation_name(into)? {
                extra.push(Access::new(Action::Ddl, Object::Table(name)));
            }
            let query = fields
                .get("query")
                .ok_or_else(|| malformed("CREATE TABLE AS without a query"))?;
            walker.walk(query)?;
        }
        "CopyStmt" => {
            let is_from = fields
                .get("is_from")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let action = if is_from {
                Action::CopyIn
            } else {
                Action::CopyOut
            };
            let program = fields
                .get("is_program")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let server_file = !str_field(fields, "filename").is_empty();
            let mut targets = Vec::new();
            if let Some(rel) = fields.get("relation").filter(|v| !v.is_null()) {
                targets = walker.relation_name(rel)?;
            }
            if let Some(query) = fields.get("query").filter(|v| !v.is_null()) {
                walker.walk(query)?;
            }
            if targets.is_empty() {
                extra.push(Access::new(action, Object::None));
            }
            for name in &targets {
                extra.push(Access::new(action, Object::Table(name.clone())));
            }
            if !is_from && !program && !server_file {
                class.copy_out = Some(copy_out(fields, targets.clone())?);
            }
            if program || server_file {
                let what = if program {
                    "a program on the database server"
                } else {
                    "a file on the database server"
                };
                extra.push(Access::new(
                    Action::CopyProgram,
                    Object::Unknown(what.into()),
                ));
            }
            // COPY ... WHERE reads through expressions that may call functions.
            if let Some(w) = fields.get("where_clause") {
                walker.walk(w)?;
            }
        }
        "PrepareStmt" => {
            class.prepares = Some(str_field(fields, "name").to_string());
            let query = fields
                .get("query")
                .ok_or_else(|| malformed("PREPARE without a statement"))?;
            let inner = classify_statement(String::new(), query, search_path)?;
            extra.extend(inner.accesses);
            class.flows = inner.flows;
        }
        "ExecuteStmt" => {
            class.executes = Some(str_field(fields, "name").to_string());
            walker.walk(fields.get("params").unwrap_or(&Value::Null))?;
        }
        "DeclareCursorStmt" => {
            class.portal = Some(str_field(fields, "portalname").to_string());
            let query = fields
                .get("query")
                .ok_or_else(|| malformed("DECLARE without a query"))?;
            walker.walk(query)?;
        }
        "TransactionStmt" => {
            let kind = fields.get("kind").and_then(Value::as_i64).unwrap_or(0) as i32;
            let action = match TransactionStmtKind::try_from(kind) {
                Ok(
                    TransactionStmtKind::TransStmtBegin
                    | TransactionStmtKind::TransStmtStart
                    | TransactionStmtKind::TransStmtCommit
                    | TransactionStmtKind::TransStmtRollback
                    | TransactionStmtKind::TransStmtSavepoint
                    | TransactionStmtKind::TransStmtRelease
                    | TransactionStmtKind::TransStmtRollbackTo,
                ) => Action::Transaction,
                // PREPARE TRANSACTION / COMMIT PREPARED / ROLLBACK PREPARED can finish
                // another session's transaction.
                _ => Action::Maintenance,
            };
            extra.push(Access::new(action, Object::None));
        }
        // SET CONSTRAINTS only changes when the transaction checks its own constraints.
        "ConstraintsSetStmt" => extra.push(Access::new(Action::Transaction, Object::None)),
        "DeallocateStmt" | "ClosePortalStmt" | "FetchStmt" | "DiscardStmt" => {
            // DISCARD ALL resets every setting, search_path included, and deallocates
            // every prepared statement.
            let discard_target = fields.get("target").and_then(Value::as_i64).unwrap_or(0) as i32;
            if kind == "DiscardStmt"
                && pg_query::protobuf::DiscardMode::try_from(discard_target)
                    == Ok(pg_query::protobuf::DiscardMode::DiscardAll)
            {
                class.search_path_change = Some(SearchPathChange::Reset);
                class.deallocates = Some(String::new());
            }
            if kind == "FetchStmt" || kind == "ClosePortalStmt" {
                // CLOSE ALL names none.
                class.portal = Some(str_field(fields, "portalname").to_string());
            }
            if kind == "DeallocateStmt" {
                // No name: DEALLOCATE ALL.
                class.deallocates = Some(str_field(fields, "name").to_string());
            }
            extra.push(Access::new(Action::Transaction, Object::None));
        }
        "VariableSetStmt" => {
            let name = str_field(fields, "name").to_ascii_lowercase();
            let set_kind = VariableSetKind::try_from(
                fields.get("kind").and_then(Value::as_i64).unwrap_or(0) as i32,
            );
            match name.as_str() {
                // SET TRANSACTION ... / SET SESSION CHARACTERISTICS: transaction modes.
                "transaction" | "session characteristics" => {
                    extra.push(Access::new(Action::Transaction, Object::None))
                }
                "" => {
                    // RESET ALL
                    class.search_path_change = Some(SearchPathChange::Reset);
                    extra.push(Access::new(Action::Set, Object::Setting("all".into())))
                }
                // `client_encoding` (and SET NAMES): the gateway reads SQL as UTF-8; a client
                // encoding whose multi-byte characters contain ASCII bytes would let the
                // resource read a statement differently. Sessions refuse it outright.
                "client_encoding" | "standard_conforming_strings" | "backslash_quote" => {
                    // A value the gateway already reads by (or back to the session's start,
                    // which login checked) changes nothing: an ordinary `set`, for policy.
                    let unchanged = match set_kind {
                        Ok(VariableSetKind::VarSetDefault | VariableSetKind::VarReset) => {
                            name != "backslash_quote"
                        }
                        Ok(VariableSetKind::VarSetValue) => {
                            let value = single_setting_value(fields);
                            match (name.as_str(), value.as_deref()) {
                                ("standard_conforming_strings", Some(v)) => {
                                    matches!(v, "on" | "true" | "yes" | "1")
                                }
                                ("client_encoding", Some(v)) => {
                                    matches!(v, "utf8" | "utf-8" | "unicode" | "sql_ascii")
                                }
                                _ => false,
                            }
                        }
                        _ => false,
                    };
                    if unchanged {
                        extra.push(Access::new(Action::Set, Object::Setting(name.clone())))
                    } else {
                        extra.push(Access::explicit(Action::Set, Object::Setting(name.clone())))
                    }
                }
                "role" | "session_authorization"
                    if set_kind == Ok(VariableSetKind::VarSetValue) =>
                {
                    extra.push(Access::explicit(Action::Set, Object::Setting(name.clone())))
                }
                _ => {
                    if name == "search_path" {
                        class.search_path_change = Some(match set_kind {
                            Ok(VariableSetKind::VarSetValue) => search_path_values(fields)
                                .map(SearchPathChange::To)
                                .unwrap_or(SearchPathChange::Unknown),
                            Ok(VariableSetKind::VarSetDefault | VariableSetKind::VarReset) => {
                                SearchPathChange::Reset
                            }
                            _ => SearchPathChange::Unknown,
                        });
                    }
                    extra.push(Access::new(Action::Set, Object::Setting(name.clone())));
                }
            }
        }
        "VariableShowStmt" => {
            extra.push(Access::new(
                Action::Set,
                Object::Setting(str_field(fields, "name").to_ascii_lowercase()),
            ));
        }
        "DoStmt" => extra.push(Access::new(
            Action::Procedural,
            Object::Unknown("an anonymous code block".into()),
        )),
        "LoadStmt" => extra.push(Access::new(
            Action::Procedural,
            Object::Unknown("a shared library".into()),
        )),
        "CallStmt" => {
            let call = fields
                .get("funccall")
                .and_then(Value::as_object)
                .ok_or_else(|| malformed("CALL without a call"))?;
            let parts = name_list(call.get("funcname"))?;
            extra.extend(walker.function_accesses(&parts, Action::Call)?);
            walker.walk(call.get("args").unwrap_or(&Value::Null))?;
        }
        "LockStmt" | "TruncateStmt" => {
            let action = if kind == "LockStmt" {
                Action::Lock
            } else {
                Action::Truncate
            };
            for rel in fields
                .get("relations")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                for name in walker.relation_name(rel.get("node").unwrap_or(rel))? {
                    extra.push(Access::new(action, Object::Table(name)));
                }
            }
        }
        "VacuumStmt" => {
            let mut any = false;
            for rel in fields
                .get("rels")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(relation) = rel
                    .pointer("/node/VacuumRelation/relation")
                    .filter(|v| !v.is_null())
                {
                    for name in walker.relation_name(relation)? {
                        extra.push(Access::new(Action::Maintenance, Object::Table(name)));
                        any = true;
                    }
                }
            }
            if !any {
                extra.push(Access::new(
                    Action::Maintenance,
                    Object::Unknown("every table of the database".into()),
                ));
            }
        }
        "ClusterStmt" | "ReindexStmt" | "CheckPointStmt" | "RefreshMatViewStmt" => {
            extra.extend(
                relation_or_unknown(&walker, fields, kind)?
                    .into_iter()
                    .map(|o| Access::new(Action::Maintenance, o)),
            );
        }
        "NotifyStmt" | "ListenStmt" | "UnlistenStmt" => {
            extra.push(Access::new(
                Action::Notify,
                Object::Unknown(format!("channel {}", str_field(fields, "conditionname"))),
            ));
        }
        "GrantStmt" => {
            // objtype OBJECT_TABLE with RangeVar objects names tables; anything else is
            // reported as unknown.
            let mut named = false;
            for obj in fields
                .get("objects")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let obj = obj.get("node").unwrap_or(obj);
                if obj.get("RangeVar").is_some() {
                    for name in walker.relation_name(obj)? {
                        extra.push(Access::new(Action::Grant, Object::Table(name)));
                        named = true;
                    }
                }
            }
            if !named {
                extra.push(Access::new(
                    Action::Grant,
                    Object::Unknown("privileges".into()),
                ));
            }
        }
        "GrantRoleStmt"
        | "AlterDefaultPrivilegesStmt"
        | "CreateRoleStmt"
        | "AlterRoleStmt"
        | "AlterRoleSetStmt"
        | "DropRoleStmt"
        | "ReassignOwnedStmt"
        | "DropOwnedStmt" => {
            extra.push(Access::new(
                Action::Grant,
                Object::Unknown("roles and privileges".into()),
            ));
        }
        "CreateFunctionStmt" => {
            let parts = name_list(fields.get("funcname"))?;
            let name = qualify(&walker, &parts)?;
            extra.push(Access::new(Action::Ddl, Object::Function(name)));
            extra.push(Access::new(
                Action::Procedural,
                Object::Unknown("a function body".into()),
            ));
        }
        "CreateTrigStmt" | "RuleStmt" | "CreateEventTrigStmt" => {
            extra.extend(
                relation_or_unknown(&walker, fields, kind)?
                    .into_iter()
                    .map(|o| Access::new(Action::Ddl, o)),
            );
            extra.push(Access::new(
                Action::Procedural,
                Object::Unknown("code run by the server on events".into()),
            ));
        }
        "DropStmt" => {
            use pg_query::protobuf::ObjectType;
            let remove_type = fields
                .get("remove_type")
                .and_then(Value::as_i64)
                .unwrap_or(0) as i32;
            let relation_kind = matches!(
                ObjectType::try_from(remove_type),
                Ok(ObjectType::ObjectTable
                    | ObjectType::ObjectView
                    | ObjectType::ObjectMatview
                    | ObjectType::ObjectSequence
                    | ObjectType::ObjectIndex
                    | ObjectType::ObjectForeignTable)
            );
            let objects = fields
                .get("objects")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or_default();
            if relation_kind && !objects.is_empty() {
                for obj in objects {
                    let parts = name_list(obj.pointer("/node/List/items"))?;
                    let names = match parts.as_slice() {
                        [name] => walker.resolve_relation("", name)?,
                        [schema, name] | [_, schema, name] => {
                            vec![QualifiedName::new(schema.as_str(), name.as_str())]
                        }
                        _ => return Err(malformed("DROP of an oddly qualified name")),
                    };
                    extra.extend(
                        names
                            .into_iter()
                            .map(|n| Access::new(Action::Ddl, Object::Table(n))),
                    );
                }
            } else {
                extra.push(Access::new(
                    Action::Ddl,
                    Object::Unknown("the target of DROP".into()),
                ));
            }
        }
        kind if DDL.contains(&kind) => {
            extra.extend(
                relation_or_unknown(&walker, fields, kind)?
                    .into_iter()
                    .map(|o| Access::new(Action::Ddl, o)),
            );
        }
        other => return Err(ClassifyError::Unsupported(other.to_string())),
    }
    match kind.as_str() {
        // Their flows are those of the statement inside, set above.
        "ExplainStmt" | "PrepareStmt" => {}
        "CopyStmt" => class.flows = copy_flows(fields, search_path, class.copy_out.as_ref())?,
        _ => class.flows = statement_flows(kind, fields, search_path, Sink::Client)?,
    }
    let mut accesses = walker.finish();
    accesses.extend(extra);
    accesses.sort();
    accesses.dedup();
    class.accesses = accesses;
    Ok(class)
}

/// The flows of the statement `EXPLAIN ANALYZE` runs.
fn explained_flows(query: &Value, search_path: &SearchPath) -> Result<ValueFlows, ClassifyError> {
    let (kind, fields) = query
        .get("node")
        .and_then(Value::as_object)
        .and_then(|m| m.iter().next())
        .ok_or_else(|| malformed("EXPLAIN of an empty statement"))?;
    let fields = fields
        .as_object()
        .ok_or_else(|| malformed("EXPLAIN statement fields"))?;
    statement_flows(kind, fields, search_path, Sink::Discard)
}

/// Statement types that change the schema and need nothing beyond `ddl`.
const DDL: &[&str] = &[
    "CreateStmt",
    "AlterTableStmt",
    "DropStmt",
    "IndexStmt",
    "ViewStmt",
    "CreateSeqStmt",
    "AlterSeqStmt",
    "RenameStmt",
    "CommentStmt",
    "CreateSchemaStmt",
    "CreateExtensionStmt",
    "AlterExtensionStmt",
    "AlterExtensionContentsStmt",
    "CreateDomainStmt",
    "AlterDomainStmt",
    "CompositeTypeStmt",
    "CreateEnumStmt",
    "AlterEnumStmt",
    "CreateRangeStmt",
    "DefineStmt",
    "AlterObjectSchemaStmt",
    "AlterOwnerStmt",
    "CreateTableSpaceStmt",
    "DropTableSpaceStmt",
    "AlterTableSpaceOptionsStmt",
    "CreatedbStmt",
    "DropdbStmt",
    "AlterDatabaseStmt",
    "AlterDatabaseSetStmt",
    "AlterDatabaseRefreshCollStmt",
    "CreatePolicyStmt",
    "AlterPolicyStmt",
    "CreateCastStmt",
    "CreateConversionStmt",
    "CreateOpClassStmt",
    "CreateOpFamilyStmt",
    "AlterOpFamilyStmt",
    "AlterOperatorStmt",
    "CreateForeignTableStmt",
    "CreateForeignServerStmt",
    "AlterForeignServerStmt",
    "CreateUserMappingStmt",
    "AlterUserMappingStmt",
    "DropUserMappingStmt",
    "ImportForeignSchemaStmt",
    "CreateFdwStmt",
    "AlterFdwStmt",
    "CreatePublicationStmt",
    "AlterPublicationStmt",
    "CreateSubscriptionStmt",
    "AlterSubscriptionStmt",
    "DropSubscriptionStmt",
    "AlterSystemStmt",
    "SecLabelStmt",
    "CreateStatsStmt",
    "AlterStatsStmt",
    "AlterFunctionStmt",
    "AlterTypeStmt",
    "CreatePlangStmt",
    "CreateAmStmt",
    "CreateTransformStmt",
    "AlterCollationStmt",
    "AlterTsdictionaryStmt",
    "AlterTsconfigurationStmt",
    "AlterTableMoveAllStmt",
    "DropdbStmt",
    "AlterEventTrigStmt",
    "AlterObjectDependsStmt",
];

/// The objects of a statement with a `relation` field (every candidate of an unqualified
/// name, as for reads), or an unknown object named by the statement type.
fn relation_or_unknown(
    walker: &Walker<'_>,
    fields: &Map<String, Value>,
    kind: &str,
) -> Result<Vec<Object>, ClassifyError> {
    match fields.get("relation").filter(|v| !v.is_null()) {
        Some(rel) => Ok(walker
            .relation_name(rel)?
            .into_iter()
            .map(Object::Table)
            .collect()),
        None => Ok(vec![Object::Unknown(format!("the target of {kind}"))]),
    }
}

fn qualify(walker: &Walker<'_>, parts: &[String]) -> Result<QualifiedName, ClassifyError> {
    match parts {
        [schema, name] => Ok(QualifiedName::new(schema.as_str(), name.as_str())),
        [name] => walker
            .resolve_relation("", name)?
            .into_iter()
            .find(|n| n.schema != "pg_catalog")
            .ok_or_else(|| malformed("no schema to create the function in")),
        _ => Err(malformed("qualified name with too many parts")),
    }
}

fn explain_analyzes(fields: &Map<String, Value>) -> bool {
    fields
        .get("options")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|opt| {
            let def = opt.pointer("/node/DefElem");
            let name = def.and_then(|d| d.get("defname")).and_then(Value::as_str);
            if name != Some("analyze") {
                return false;
            }
            // `ANALYZE` alone, `ANALYZE true/on/1`: runs. `ANALYZE false/off/0`: does not.
            match def.and_then(|d| d.get("arg")).and_then(|a| a.get("node")) {
                None => true,
                Some(arg) => {
                    let text = arg
                        .pointer("/String/sval")
                        .and_then(Value::as_str)
                        .map(str::to_ascii_lowercase)
                        .or_else(|| {
                            arg.pointer("/Boolean/boolval")
                                .and_then(Value::as_bool)
                                .map(|b| b.to_string())
                        })
                        .or_else(|| {
                            arg.pointer("/Integer/ival")
                                .and_then(Value::as_i64)
                                .map(|i| (i != 0).to_string())
                        });
                    !matches!(text.as_deref(), Some("false" | "off" | "0" | "no"))
                }
            }
        })
}

/// The schemas of `SET search_path TO a, b`, when every value is a plain name or string.
fn search_path_values(fields: &Map<String, Value>) -> Option<Vec<String>> {
    let args = fields.get("args")?.as_array()?;
    args.iter()
        .map(|arg| {
            arg.pointer("/node/AConst/val/Sval/sval")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .collect()
}

/// The row shape of `COPY ... TO STDOUT` from its column list and options.
fn copy_out(
    fields: &Map<String, Value>,
    table: Vec<QualifiedName>,
) -> Result<CopyOut, ClassifyError> {
    let columns = match fields.get("attlist").filter(|v| !v.is_null()) {
        Some(list) => name_list(Some(list))?,
        None => Vec::new(),
    };
    let mut copy = CopyOut {
        table,
        columns,
        format: CopyOutFormat::Text,
        header: false,
        other_options: Vec::new(),
    };
    for option in fields
        .get("options")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let def = option
            .pointer("/node/DefElem")
            .ok_or_else(|| malformed("COPY option"))?;
        let name = def.get("defname").and_then(Value::as_str).unwrap_or("");
        let arg = def
            .pointer("/arg/node/String/sval")
            .and_then(Value::as_str)
            .map(str::to_ascii_lowercase);
        match name {
            "format" => {
                copy.format = match arg.as_deref() {
                    Some("text") => CopyOutFormat::Text,
                    Some("csv") => CopyOutFormat::Csv,
                    // binary, or anything PostgreSQL would reject anyway.
                    _ => CopyOutFormat::Binary,
                }
            }
            // `HEADER` alone, or `HEADER true/on/1`; `false/off/0` keeps it off.
            "header" => {
                let off = def
                    .pointer("/arg/node/Boolean/boolval")
                    .and_then(Value::as_bool)
                    .map(|b| !b)
                    .or_else(|| {
                        def.pointer("/arg/node/Integer/ival")
                            .and_then(Value::as_i64)
                            .map(|i| i == 0)
                    })
                    .unwrap_or(matches!(arg.as_deref(), Some("false" | "off" | "0")));
                copy.header = !off;
            }
            other => copy.other_options.push(other.to_string()),
        }
    }
    Ok(copy)
}

/// The one value of `SET name TO value`, lower-cased, when it is a plain string, name or
/// integer.
fn single_setting_value(fields: &Map<String, Value>) -> Option<String> {
    let [arg] = fields.get("args")?.as_array()?.as_slice() else {
        return None;
    };
    let constant = arg.pointer("/node/AConst")?;
    constant
        .pointer("/val/Sval/sval")
        .and_then(Value::as_str)
        .map(str::to_ascii_lowercase)
        .or_else(|| {
            constant
                .pointer("/val/Ival/ival")
                .and_then(Value::as_i64)
                .map(|i| i.to_string())
        })
}
