//! Value flow: where the value of every column a statement references can go.
//!
//! Column masks (DESIGN.md §4) are applied by the data path to result columns, by the origin
//! PostgreSQL reports for each of them in `RowDescription` (table OID and attribute number).
//! PostgreSQL traces that origin through plain column references, aliases, subqueries in
//! `FROM`, joins and non-recursive CTEs, and reports none for anything computed. A masked
//! value therefore reaches the client masked only when it leaves as a *direct* column
//! reference; every other way out must be refused before the statement runs. This module
//! reports, per statement, what a mask check needs for that; the policy crate decides.
//!
//! Every column reference yields one [`ColumnFlow`] per table it can come from, with a
//! [`Usage`]:
//!
//! - [`Usage::Direct`]: a result column that is exactly the column (through aliases,
//!   subqueries, joins and CTEs that keep it a plain reference): PostgreSQL reports its
//!   origin, so the data path masks it. `SELECT *` and `SELECT c.*` as result columns expand
//!   to direct columns.
//! - [`Usage::Derived`]: the value reaches the result, or leaves the statement, changed or
//!   without an origin: inside an expression, function, cast, aggregate or window function,
//!   through a set operation, a recursive CTE, `VALUES` or a function in `FROM`, through
//!   `RETURNING`, or copied into a table, a server file or a `COPY` the data path cannot
//!   mask ([`Via`] says which). (`COPY table TO STDOUT` in text or CSV is masked row by row
//!   like a result, so its columns are direct.)
//! - [`Usage::WholeRow`]: a whole row as a value (`SELECT c FROM customers c`,
//!   `row_to_json(c)`, `c.*` inside an expression).
//! - [`Usage::Predicate`]: read without being delivered: `WHERE`, `JOIN ... ON`/`USING`,
//!   `HAVING`, `ORDER BY`, `GROUP BY`, `DISTINCT ON`, window `PARTITION BY`/`ORDER BY`,
//!   `FILTER`, `LIMIT`; also an output of a subquery or CTE that the statement never uses
//!   (it can still change the result, through `DISTINCT` or a set operation's duplicate
//!   removal). A column passed to a cast or a function inside a condition is
//!   [`Via::ErrorMessage`] instead: many of them fail with the value in their error message
//!   (`WHERE ssn::int = 0`: `invalid input syntax for type integer: "078-05-1120"`), so a
//!   condition may compare a masked column, not transform it (a short list of functions that
//!   cannot fail that way excepted).
//!
//! Names are resolved as PostgreSQL resolves them, without the catalog: a qualified
//! reference through the `FROM` clause's aliases and relation names (tables through the
//! search path, like the walker), an unqualified one to every table in scope that may have
//! the column, outward through the enclosing queries until a subquery or CTE output
//! certainly has it. Subquery and CTE outputs are tracked by name and position, each carrying
//! the base columns it is made of and whether it is still a plain reference; a `*` over a
//! table is kept as "that table's columns under their own names". Where the analysis cannot
//! tell which base column a name stands for (a `*` merged by a set operation, column aliases
//! over a `*`), it names the table with no column, meaning any column of it.
//!
//! Fail closed: whatever the analysis is unsure of counts as `Derived` from every candidate,
//! never as `Direct`. An unresolvable reference is PostgreSQL's error to report; here it gets
//! every table in scope.
//!
//! Like the walker, this analysis reads identifiers and structure only, never the value of a
//! constant (`A_Const` nodes are skipped unread; `ORDER BY 1` counts as ordering by every
//! output column). The classification cache shares one classification among texts of the same
//! shape (see [`cache`](crate::cache)) and relies on this.

use std::cell::Cell;
use std::rc::Rc;

use pg_query::protobuf::{
    AExprKind, JoinType, MinMaxOp, ReturningOptionKind, SetOperation, SubLinkType,
};
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};
use sluice_core::QualifiedName;

use crate::classification::{CopyOut, CopyOutFormat};
use crate::error::ClassifyError;
use crate::search_path::SearchPath;
use crate::walk::{is_range_var, malformed, name_list, str_field, Walker};

/// What one statement does with the columns it references.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ValueFlows {
    /// One entry per (candidate table, column, usage, result name), sorted, no duplicates.
    pub columns: Vec<ColumnFlow>,
    /// Values reaching the result pass through `UNION`, `INTERSECT` or `EXCEPT`, whose result
    /// columns have no origin.
    pub set_operation: bool,
    /// The statement, or a data-modifying CTE in it, has `RETURNING`.
    pub returning: bool,
    /// The statement writes what it reads somewhere the masks do not follow: into a table
    /// (`INSERT ... SELECT`, `UPDATE ... SET`, `CREATE TABLE AS`, `SELECT INTO`), a server
    /// file or program, or a `COPY ... TO STDOUT` the data path cannot mask (a query, the
    /// binary format, custom options).
    pub copies: bool,
    /// Why the gateway cannot tell where the statement's values go, when it cannot
    /// (`CREATE TABLE AS EXECUTE`): a mask check must then assume the worst.
    pub unknown: Option<String>,
}

/// One column reference, for one table it can come from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ColumnFlow {
    #[serde(serialize_with = "as_text")]
    pub table: QualifiedName,
    /// `None`: any column of the table (a whole row, a `*`, or a name the analysis cannot
    /// tie to one column).
    pub column: Option<String>,
    pub usage: Usage,
    /// For [`Usage::Direct`]: the name of the result column, when it has its own (an alias,
    /// or a subquery's name for it); `None` when it keeps the column's name.
    pub output: Option<String>,
}

/// How a column's value is used; see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Usage {
    Direct,
    Derived(Via),
    WholeRow,
    Predicate,
}

/// Why a value that leaves the statement is not a direct result column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    /// An expression: operator, function, cast, aggregate, window function, `CASE`,
    /// subquery used as a value, `VALUES`, a function in `FROM`.
    Expression,
    /// A branch of `UNION`, `INTERSECT` or `EXCEPT`, or of a recursive CTE.
    SetOperation,
    /// `RETURNING` of `INSERT`, `UPDATE`, `DELETE` or `MERGE`.
    Returning,
    /// Written into a table or a server file, or sent by a `COPY` the data path cannot mask.
    Copy,
    /// Passed to a cast or a function inside a condition, whose error message can show the
    /// value.
    ErrorMessage,
}

fn as_text<S: Serializer>(name: &QualifiedName, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(name)
}

/// Where the result of the statement's top-level query goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sink {
    /// The client, with a `RowDescription` naming each column's origin.
    Client,
    /// A table, a file, or `COPY` output the data path cannot mask: no masks there.
    Copy,
    /// Nowhere (`EXPLAIN ANALYZE` runs the statement and discards its rows).
    Discard,
}

/// The value flows of one statement of type `kind` (the parse node's name) with `fields`,
/// when its result goes to `sink`. Statement types that reference no column of a table
/// yield no flows.
pub(crate) fn statement_flows(
    kind: &str,
    fields: &Map<String, Value>,
    search_path: &SearchPath,
    sink: Sink,
) -> Result<ValueFlows, ClassifyError> {
    let mut a = Analyzer::new(search_path);
    match kind {
        "SelectStmt" => {
            let into = fields.get("into_clause").is_some_and(|v| !v.is_null());
            let outputs = a.select(fields)?;
            a.set_operation |= is_set_operation(fields);
            a.deliver(&outputs, if into { Sink::Copy } else { sink });
        }
        "InsertStmt" | "UpdateStmt" | "DeleteStmt" | "MergeStmt" => {
            let outputs = a.dml(kind, fields)?;
            a.deliver(&outputs, sink);
        }
        "CreateTableAsStmt" => {
            let query = fields
                .get("query")
                .ok_or_else(|| malformed("CREATE TABLE AS without a query"))?;
            match a.query_node(query)? {
                Some(outputs) => a.deliver(&outputs, Sink::Copy),
                None => {
                    a.unknown = Some(
                        "CREATE TABLE AS EXECUTE copies what a prepared statement returns, which the gateway cannot see here".into(),
                    )
                }
            }
        }
        "DeclareCursorStmt" => {
            let query = fields
                .get("query")
                .ok_or_else(|| malformed("DECLARE without a query"))?;
            if let Some(outputs) = a.query_node(query)? {
                a.deliver(&outputs, sink);
            }
        }
        // Values passed to a procedure or a prepared statement can come out of it as
        // anything: they are expressions of the result at best.
        "CallStmt" => {
            let args = fields.get("funccall").and_then(|c| c.get("args"));
            a.passed_on(args)?;
        }
        "ExecuteStmt" => a.passed_on(fields.get("params"))?,
        _ => {}
    }
    Ok(a.finish())
}

/// The value flows of `COPY ... TO`. The data path masks the rows of a table copied to the
/// client in text or CSV with default options (`copy_out`, see [`CopyOut`]), column by
/// column as it masks result columns: those columns leave directly. Everything else copies
/// where no mask follows: a query (its columns have no origin), the binary format or other
/// options, a file or a program on the server.
pub(crate) fn copy_flows(
    fields: &Map<String, Value>,
    search_path: &SearchPath,
    copy_out: Option<&CopyOut>,
) -> Result<ValueFlows, ClassifyError> {
    let maskable = copy_out.is_some_and(|c| {
        !c.table.is_empty() && c.format != CopyOutFormat::Binary && c.other_options.is_empty()
    });
    let mut a = Analyzer::new(search_path);
    a.copy(fields, if maskable { Sink::Client } else { Sink::Copy })?;
    Ok(a.finish())
}

/// How a part of a value stands with respect to PostgreSQL's origin tracking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Carry {
    /// Still a plain column reference: PostgreSQL reports its origin.
    Direct,
    Derived(Via),
    WholeRow,
}

/// One base column a value may carry.
#[derive(Debug, Clone)]
struct Part {
    table: QualifiedName,
    /// `None`: any column (or, in [`Shape::TableColumns`], the column looked up by name).
    column: Option<String>,
    carry: Carry,
    /// Passed through a cast or a function that can fail with the value in its error
    /// message (see [`Via::ErrorMessage`]).
    error_may_show: bool,
}

impl Part {
    fn direct(table: QualifiedName, column: Option<String>) -> Self {
        Part {
            table,
            column,
            carry: Carry::Direct,
            error_may_show: false,
        }
    }

    /// The part once it has gone through something with no origin: a plain reference
    /// becomes derived; what was derived or a whole row stays what it was.
    fn demoted(mut self, via: Via) -> Self {
        if self.carry == Carry::Direct {
            self.carry = Carry::Derived(via);
        }
        self
    }

    fn whole_row(mut self) -> Self {
        if self.carry == Carry::Direct {
            self.carry = Carry::WholeRow;
        }
        self
    }
}

fn demote(parts: Vec<Part>, via: Via) -> Vec<Part> {
    parts.into_iter().map(|p| p.demoted(via)).collect()
}

/// One output column of a query, or a group of them, as an enclosing query sees it.
#[derive(Debug, Clone)]
enum Shape {
    /// One column. `name` is `None` when the analysis cannot tell the name PostgreSQL gives
    /// it: every name may then refer to it.
    Column {
        name: Option<String>,
        parts: Vec<Part>,
    },
    /// The columns of tables (a `*`), under the tables' own column names: a reference to
    /// name `n` carries column `n` of each table.
    TableColumns { parts: Vec<Part> },
    /// Any number of columns whose names and positions are unknown; any of them may carry
    /// any of the parts.
    Unknown { parts: Vec<Part> },
}

/// An output with a flag shared by its copies: whether anything referenced it.
#[derive(Debug, Clone)]
struct Output {
    shape: Shape,
    used: Rc<Cell<bool>>,
}

impl Output {
    fn new(shape: Shape) -> Self {
        Output {
            shape,
            used: Rc::new(Cell::new(false)),
        }
    }

    fn column(name: Option<String>, parts: Vec<Part>) -> Self {
        Output::new(Shape::Column { name, parts })
    }

    /// Every part, with table columns standing for any column of their table.
    fn parts(&self) -> Vec<Part> {
        match &self.shape {
            Shape::Column { parts, .. }
            | Shape::TableColumns { parts }
            | Shape::Unknown { parts } => parts.clone(),
        }
    }

    /// The same output for another query level: a new flag, since using it there is a use
    /// of the new output, not of this one.
    fn fresh(&self) -> Self {
        Output::new(self.shape.clone())
    }

    fn map_parts(&self, f: impl Fn(Part) -> Part) -> Self {
        let map = |parts: &Vec<Part>| parts.iter().cloned().map(&f).collect();
        Output {
            shape: match &self.shape {
                Shape::Column { name, parts } => Shape::Column {
                    name: name.clone(),
                    parts: map(parts),
                },
                Shape::TableColumns { parts } => Shape::TableColumns { parts: map(parts) },
                Shape::Unknown { parts } => Shape::Unknown { parts: map(parts) },
            },
            used: self.used.clone(),
        }
    }
}

/// What a reference to column `name` of `outputs` may carry, and whether one of them
/// certainly has that name. Every output that may match is marked used.
fn lookup(outputs: &[Output], name: &str) -> (Vec<Part>, bool) {
    let mut found = Vec::new();
    let mut certain = false;
    for output in outputs {
        match &output.shape {
            Shape::Column {
                name: Some(n),
                parts,
            } => {
                if n == name {
                    certain = true;
                    output.used.set(true);
                    found.extend(parts.iter().cloned());
                }
            }
            Shape::Column { name: None, parts } | Shape::Unknown { parts } => {
                output.used.set(true);
                found.extend(parts.iter().cloned());
            }
            Shape::TableColumns { parts } => {
                output.used.set(true);
                found.extend(parts.iter().map(|p| Part {
                    column: Some(name.to_string()),
                    ..p.clone()
                }));
            }
        }
    }
    (found, certain)
}

fn all_parts(outputs: &[Output]) -> Vec<Part> {
    outputs
        .iter()
        .flat_map(|o| {
            o.used.set(true);
            o.parts()
        })
        .collect()
}

/// Renames outputs by position (`AS s(a, b)`, `WITH x(a, b)`). Past a group of unknown
/// size the positions are lost: each remaining alias may then be any column of the rest,
/// and the rest keeps its own names too (the columns beyond the alias list do).
fn rename(outputs: Vec<Output>, aliases: &[String]) -> Vec<Output> {
    if aliases.is_empty() {
        return outputs;
    }
    let mut renamed = Vec::with_capacity(outputs.len().max(aliases.len()));
    let mut aliases = aliases.iter();
    let mut rest = outputs.into_iter();
    while let Some(output) = rest.next() {
        match output.shape {
            Shape::Column { parts, .. } => match aliases.next() {
                Some(alias) => renamed.push(Output {
                    shape: Shape::Column {
                        name: Some(alias.clone()),
                        parts,
                    },
                    used: output.used,
                }),
                None => renamed.push(Output {
                    shape: Shape::Column { name: None, parts },
                    used: output.used,
                }),
            },
            _ => {
                let remaining: Vec<Output> = std::iter::once(output).chain(rest).collect();
                let parts = all_parts_unmarked(&remaining);
                for alias in aliases {
                    renamed.push(Output::column(Some(alias.clone()), parts.clone()));
                }
                renamed.extend(remaining);
                return renamed;
            }
        }
    }
    renamed
}

fn all_parts_unmarked(outputs: &[Output]) -> Vec<Part> {
    outputs.iter().flat_map(Output::parts).collect()
}

/// Names a `FROM` item answers to: an alias, or a relation's name with and without its
/// schema.
#[derive(Debug, Clone)]
struct Qualifier {
    schema: Option<String>,
    name: String,
}

/// One item of a `FROM` clause (or a DML target) as its query sees it.
#[derive(Debug, Clone)]
struct Entry {
    /// Empty when hidden by a join alias: its columns are then reachable unqualified only.
    qualifiers: Vec<Qualifier>,
    outputs: Vec<Output>,
}

impl Entry {
    fn answers_to(&self, schema: Option<&str>, name: &str) -> bool {
        self.qualifiers
            .iter()
            .any(|q| q.name == name && q.schema.as_deref() == schema)
    }
}

/// The `FROM` items of one query level.
#[derive(Debug, Default)]
struct Level {
    entries: Vec<Entry>,
    /// Columns merged by `FULL JOIN ... USING`: unqualified, they are `COALESCE(a.x, b.x)`.
    coalesced: Vec<String>,
    /// A `NATURAL FULL JOIN` merges columns the gateway cannot name: every unqualified
    /// reference at this level may be such a merge.
    natural_full: bool,
}

/// A CTE name visible at the current point and what its outputs carry.
struct Binding {
    name: String,
    outputs: Vec<Output>,
}

struct Analyzer<'a> {
    /// For resolving relation names exactly as the access walker does.
    walker: Walker<'a>,
    /// Query levels, innermost last.
    levels: Vec<Level>,
    /// Visible CTEs, innermost last.
    ctes: Vec<Binding>,
    flows: Vec<ColumnFlow>,
    /// Outputs of subqueries, CTEs and functions in `FROM`: those never used are recorded as
    /// read at the end.
    pending: Vec<Output>,
    set_operation: bool,
    returning: bool,
    copies: bool,
    unknown: Option<String>,
}

impl<'a> Analyzer<'a> {
    fn new(search_path: &'a SearchPath) -> Self {
        Analyzer {
            walker: Walker::new(search_path),
            levels: Vec::new(),
            ctes: Vec::new(),
            flows: Vec::new(),
            pending: Vec::new(),
            set_operation: false,
            returning: false,
            copies: false,
            unknown: None,
        }
    }

    fn finish(mut self) -> ValueFlows {
        for output in std::mem::take(&mut self.pending) {
            if !output.used.get() {
                self.predicate_parts(output.parts());
            }
        }
        let mut columns = std::mem::take(&mut self.flows);
        columns.sort();
        columns.dedup();
        let set_operation = self.set_operation
            || columns
                .iter()
                .any(|f| f.usage == Usage::Derived(Via::SetOperation));
        ValueFlows {
            columns,
            set_operation,
            returning: self.returning,
            copies: self.copies,
            unknown: self.unknown,
        }
    }

    fn record(&mut self, part: Part, usage: Usage, output: Option<&str>) {
        self.flows.push(ColumnFlow {
            table: part.table,
            column: part.column,
            usage,
            output: match usage {
                Usage::Direct => output.map(str::to_string),
                _ => None,
            },
        });
    }

    /// A query's result reaching `sink`.
    fn deliver(&mut self, outputs: &[Output], sink: Sink) {
        if sink == Sink::Copy {
            self.copies = true;
        }
        for output in outputs {
            let name = match &output.shape {
                Shape::Column { name, .. } => name.clone(),
                _ => None,
            };
            for part in output.parts() {
                match sink {
                    Sink::Discard => self.predicate_parts(vec![part]),
                    Sink::Client | Sink::Copy => {
                        let part = if sink == Sink::Copy {
                            part.demoted(Via::Copy)
                        } else {
                            part
                        };
                        let usage = usage_of(part.carry);
                        // A result column keeps the base column's name unless renamed.
                        let renamed = name
                            .as_deref()
                            .filter(|n| Some(*n) != part.column.as_deref());
                        self.record(part, usage, renamed);
                    }
                }
            }
        }
    }

    /// Values written into a table (`UPDATE ... SET`, `ON CONFLICT DO UPDATE`, `MERGE`).
    fn copy_parts(&mut self, parts: Vec<Part>) {
        if !parts.is_empty() {
            self.copies = true;
        }
        for part in parts {
            let part = part.demoted(Via::Copy);
            let usage = usage_of(part.carry);
            self.record(part, usage, None);
        }
    }

    /// Parts read by a condition.
    fn predicate_parts(&mut self, parts: Vec<Part>) {
        for part in parts {
            let usage = match (part.error_may_show, part.carry) {
                (false, _) => Usage::Predicate,
                (true, Carry::WholeRow) => Usage::WholeRow,
                (true, _) => Usage::Derived(Via::ErrorMessage),
            };
            self.record(part, usage, None);
        }
    }

    fn predicate(&mut self, node: Option<&Value>) -> Result<(), ClassifyError> {
        if let Some(node) = node {
            let parts = self.value(node)?;
            self.predicate_parts(parts);
        }
        Ok(())
    }

    /// Arguments handed to something whose result the gateway cannot see.
    fn passed_on(&mut self, args: Option<&Value>) -> Result<(), ClassifyError> {
        if let Some(args) = args {
            let parts = self.value(args)?;
            for part in demote(parts, Via::Expression) {
                let usage = usage_of(part.carry);
                self.record(part, usage, None);
            }
        }
        Ok(())
    }

    // ----- queries -----

    /// A query node (`{"node": {"SelectStmt": ...}}` or a DML with RETURNING): its outputs,
    /// or `None` for a statement whose result the gateway cannot see (`EXECUTE`).
    fn query_node(&mut self, query: &Value) -> Result<Option<Vec<Output>>, ClassifyError> {
        match node(query) {
            Some(("SelectStmt", fields)) => Ok(Some(self.select(fields)?)),
            Some((kind @ ("InsertStmt" | "UpdateStmt" | "DeleteStmt" | "MergeStmt"), fields)) => {
                Ok(Some(self.dml(kind, fields)?))
            }
            Some(("ExecuteStmt", _)) => Ok(None),
            _ => Err(malformed("unexpected query node")),
        }
    }

    /// SELECT, VALUES and set operations: the outputs, with everything read on the way
    /// recorded.
    fn select(&mut self, fields: &Map<String, Value>) -> Result<Vec<Output>, ClassifyError> {
        let depth = self.ctes.len();
        let result = self
            .with_clause(fields.get("with_clause"))
            .and_then(|()| self.select_body(fields));
        self.ctes.truncate(depth);
        result
    }

    fn select_body(&mut self, fields: &Map<String, Value>) -> Result<Vec<Output>, ClassifyError> {
        if is_set_operation(fields) {
            let branch = |key: &str| {
                fields
                    .get(key)
                    .and_then(Value::as_object)
                    .ok_or_else(|| malformed("set operation without its branches"))
            };
            let left = self.select(branch("larg")?)?;
            let right = self.select(branch("rarg")?)?;
            let merged = merge_set_operation(left, right);
            // ORDER BY and LIMIT of the whole set operation name its output columns.
            self.levels.push(Level::default());
            let result = self.ordering_and_limits(fields, &merged);
            self.levels.pop();
            result?;
            return Ok(merged);
        }
        if let Some(rows) = fields
            .get("values_lists")
            .and_then(Value::as_array)
            .filter(|r| !r.is_empty())
        {
            let outputs = self.values(rows)?;
            self.levels.push(Level::default());
            let result = self.ordering_and_limits(fields, &outputs);
            self.levels.pop();
            result?;
            return Ok(outputs);
        }
        self.levels.push(Level::default());
        let result = self.simple_select(fields);
        self.levels.pop();
        result
    }

    fn simple_select(&mut self, fields: &Map<String, Value>) -> Result<Vec<Output>, ClassifyError> {
        for item in list(fields.get("from_clause")) {
            self.add_from_item(item)?;
        }
        let outputs = self.target_list(list(fields.get("target_list")))?;
        self.predicate(fields.get("where_clause"))?;
        for item in list(fields.get("group_clause")) {
            self.grouping(item, &outputs)?;
        }
        self.predicate(fields.get("having_clause"))?;
        // Named windows: PARTITION BY, ORDER BY and frame offsets are conditions.
        self.predicate(fields.get("window_clause"))?;
        for item in list(fields.get("distinct_clause")) {
            if node(item).is_some() {
                self.ordering_item(item, &outputs)?;
            }
        }
        self.ordering_and_limits(fields, &outputs)?;
        Ok(outputs)
    }

    /// `ORDER BY`, `LIMIT`, `OFFSET` of a query whose outputs are `outputs`.
    fn ordering_and_limits(
        &mut self,
        fields: &Map<String, Value>,
        outputs: &[Output],
    ) -> Result<(), ClassifyError> {
        for item in list(fields.get("sort_clause")) {
            let expr = match node(item) {
                Some(("SortBy", sort)) => sort.get("node").unwrap_or(&Value::Null),
                _ => item,
            };
            self.ordering_item(expr, outputs)?;
        }
        self.predicate(fields.get("limit_offset"))?;
        self.predicate(fields.get("limit_count"))
    }

    /// An `ORDER BY` or `DISTINCT ON` item: a bare name is an output column if one has it,
    /// else an input column; a bare constant may be an output's position (its value is not
    /// read, so every output counts); anything else is an expression of input columns.
    fn ordering_item(&mut self, item: &Value, outputs: &[Output]) -> Result<(), ClassifyError> {
        match node(item) {
            Some(("AConst", _)) => self.predicate_parts(all_parts_unmarked(outputs)),
            Some(("ColumnRef", colref)) => {
                let reference = ColumnName::parse(colref)?;
                if let (false, [name]) = (reference.star, reference.names.as_slice()) {
                    let (parts, certain) = lookup(outputs, name);
                    self.predicate_parts(parts);
                    if certain {
                        return Ok(());
                    }
                }
                self.predicate(Some(item))?;
            }
            _ => self.predicate(Some(item))?,
        }
        Ok(())
    }

    /// A `GROUP BY` item: PostgreSQL tries input columns before output names, so both
    /// count; grouping sets are lists of items.
    fn grouping(&mut self, item: &Value, outputs: &[Output]) -> Result<(), ClassifyError> {
        match node(item) {
            Some(("GroupingSet", set)) => {
                for inner in list(set.get("content")) {
                    self.grouping(inner, outputs)?;
                }
                Ok(())
            }
            Some(("AConst", _)) => {
                self.predicate_parts(all_parts_unmarked(outputs));
                Ok(())
            }
            Some(("ColumnRef", colref)) => {
                let reference = ColumnName::parse(colref)?;
                if let (false, [name]) = (reference.star, reference.names.as_slice()) {
                    let (parts, _) = lookup(outputs, name);
                    self.predicate_parts(parts);
                }
                self.predicate(Some(item))
            }
            _ => self.predicate(Some(item)),
        }
    }

    /// `VALUES (...), (...)`: column `i` may carry anything of any row's `i`th expression,
    /// and PostgreSQL reports no origin for it.
    fn values(&mut self, rows: &[Value]) -> Result<Vec<Output>, ClassifyError> {
        let mut columns: Vec<Vec<Part>> = Vec::new();
        for row in rows {
            let items = match node(row) {
                Some(("List", l)) => list(l.get("items")),
                _ => return Err(malformed("VALUES row is not a list")),
            };
            for (i, item) in items.iter().enumerate() {
                let parts = demote(self.value(item)?, Via::Expression);
                match columns.get_mut(i) {
                    Some(column) => column.extend(parts),
                    None => columns.push(parts),
                }
            }
        }
        Ok(columns
            .into_iter()
            .enumerate()
            .map(|(i, parts)| Output::column(Some(format!("column{}", i + 1)), parts))
            .collect())
    }

    /// The result columns of a target list (or a RETURNING list).
    fn target_list(&mut self, targets: &[Value]) -> Result<Vec<Output>, ClassifyError> {
        let mut outputs = Vec::with_capacity(targets.len());
        for target in targets {
            let Some(("ResTarget", target)) = node(target) else {
                return Err(malformed("target list item is not a ResTarget"));
            };
            let alias = Some(str_field(target, "name"))
                .filter(|n| !n.is_empty())
                .map(str::to_string);
            let value = target.get("val").unwrap_or(&Value::Null);
            match node(value) {
                Some(("ColumnRef", colref)) => {
                    let reference = ColumnName::parse(colref)?;
                    if reference.star {
                        // `*` and `c.*` as result columns expand to the columns themselves.
                        outputs.extend(self.star(&reference.names).iter().map(Output::fresh));
                    } else {
                        let parts = self.column(&reference.names)?;
                        let name = alias.or_else(|| reference.names.last().cloned());
                        outputs.push(Output::column(name, parts));
                    }
                }
                _ => {
                    let parts = demote(self.value(value)?, Via::Expression);
                    let name = alias.or_else(|| column_name(value));
                    outputs.push(Output::column(name, parts));
                }
            }
        }
        Ok(outputs)
    }

    /// Makes the CTEs of a `WITH` visible, following PostgreSQL's scoping (see the walker).
    fn with_clause(&mut self, with: Option<&Value>) -> Result<(), ClassifyError> {
        let Some(with) = with.filter(|w| !w.is_null()) else {
            return Ok(());
        };
        let recursive = with
            .get("recursive")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let mut ctes = Vec::new();
        for cte in list(with.get("ctes")) {
            let Some(("CommonTableExpr", cte)) = node(cte) else {
                return Err(malformed("WITH item is not a CTE"));
            };
            let name = str_field(cte, "ctename").to_string();
            let query = cte
                .get("ctequery")
                .ok_or_else(|| malformed("CTE without a query"))?;
            let aliases = name_list(cte.get("aliascolnames"))?;
            ctes.push((name, query, aliases));
        }
        if !recursive {
            for (name, query, aliases) in ctes {
                let outputs = self.cte_body(query)?;
                self.bind(name, rename(outputs, &aliases));
            }
            return Ok(());
        }
        // RECURSIVE: every name of the list is visible in every body. PostgreSQL evaluates
        // them in dependency order and refuses mutual recursion; a CTE that names itself is
        // recursive, and PostgreSQL reports no origin for its columns.
        let names: Vec<&str> = ctes.iter().map(|(n, _, _)| n.as_str()).collect();
        let references: Vec<Vec<String>> = ctes
            .iter()
            .map(|(_, query, _)| {
                let mut found = Vec::new();
                relation_names(query, &names, &mut found);
                found
            })
            .collect();
        let mut done = vec![false; ctes.len()];
        for _ in 0..ctes.len() {
            let ready = |i: usize| {
                !done[i]
                    && references[i].iter().all(|r| {
                        *r == ctes[i].0
                            || names.iter().position(|n| n == r).is_some_and(|j| done[j])
                    })
            };
            let Some(i) = (0..ctes.len()).find(|&i| ready(i)) else {
                // PostgreSQL's own answer to such a statement.
                return Err(ClassifyError::Parse(
                    "mutual recursion between WITH items is not implemented".into(),
                ));
            };
            done[i] = true;
            let (name, query, aliases) = &ctes[i];
            if !references[i].contains(name) {
                let outputs = self.cte_body(query)?;
                self.bind(name.clone(), rename(outputs, aliases));
                continue;
            }
            // First pass, thrown away: what the body carries without its own rows. Each
            // column of the CTE may then carry any of it (the recursion moves values between
            // columns), never directly.
            let mark = (self.flows.len(), self.pending.len(), self.ctes.len());
            let facts = (self.set_operation, self.returning, self.copies);
            self.bind(
                name.clone(),
                vec![Output::new(Shape::Unknown { parts: Vec::new() })],
            );
            let first = self.cte_body(query);
            self.flows.truncate(mark.0);
            self.pending.truncate(mark.1);
            self.ctes.truncate(mark.2);
            (self.set_operation, self.returning, self.copies) = facts;
            let carried = demote(all_parts_unmarked(&first?), Via::SetOperation);
            self.bind(
                name.clone(),
                vec![Output::new(Shape::Unknown {
                    parts: carried.clone(),
                })],
            );
            let outputs = self.cte_body(query)?;
            self.ctes.pop();
            let outputs = rename(outputs, aliases)
                .into_iter()
                .map(|o| o.map_parts(|p| p.demoted(Via::SetOperation)))
                .collect();
            self.bind(name.clone(), outputs);
        }
        Ok(())
    }

    fn bind(&mut self, name: String, outputs: Vec<Output>) {
        self.pending.extend(outputs.iter().cloned());
        self.ctes.push(Binding { name, outputs });
    }

    /// A CTE body: a query, or a DML whose RETURNING is its output.
    fn cte_body(&mut self, query: &Value) -> Result<Vec<Output>, ClassifyError> {
        match self.query_node(query)? {
            Some(outputs) => Ok(outputs),
            None => Err(malformed("CTE body is not a query")),
        }
    }

    // ----- FROM -----

    /// Adds the entries of one `FROM` item to the current level.
    fn add_from_item(&mut self, item: &Value) -> Result<(), ClassifyError> {
        let Some((kind, fields)) = node(item) else {
            return Err(malformed("FROM item is not a node"));
        };
        let entry = match kind {
            "RangeVar" => self.relation_entry(fields)?,
            "JoinExpr" => return self.join(fields),
            "RangeSubselect" => {
                let query = fields
                    .get("subquery")
                    .ok_or_else(|| malformed("subquery in FROM without a query"))?;
                let outputs = match node(query) {
                    Some(("SelectStmt", select)) => self.select(select)?,
                    _ => return Err(malformed("subquery in FROM is not a SELECT")),
                };
                self.pending.extend(outputs.iter().cloned());
                let (qualifiers, aliases) = alias(fields.get("alias"))?;
                Entry {
                    qualifiers,
                    outputs: rename(outputs, &aliases),
                }
            }
            "RangeTableSample" => {
                let relation = fields
                    .get("relation")
                    .ok_or_else(|| malformed("TABLESAMPLE without a relation"))?;
                self.add_from_item(relation)?;
                self.predicate(fields.get("args"))?;
                return self.predicate(fields.get("repeatable"));
            }
            // A function in FROM (ROWS FROM, XMLTABLE, JSON_TABLE included): its columns
            // are computed from its arguments, with no origin.
            _ => {
                let mut parts = Vec::new();
                for (key, value) in fields {
                    if key != "alias" {
                        parts.extend(self.value(value)?);
                    }
                }
                let output = Output::new(Shape::Unknown {
                    parts: demote(parts, Via::Expression),
                });
                self.pending.push(output.clone());
                let (mut qualifiers, _) = alias(fields.get("alias"))?;
                if qualifiers.is_empty() {
                    // Without an alias, a function in FROM is known by its name.
                    if let Some(name) = first_function_name(fields) {
                        qualifiers.push(Qualifier { schema: None, name });
                    }
                }
                Entry {
                    qualifiers,
                    outputs: vec![output],
                }
            }
        };
        self.current().entries.push(entry);
        Ok(())
    }

    /// A relation in FROM: a CTE in scope, or a table (every search-path candidate).
    fn relation_entry(&mut self, fields: &Map<String, Value>) -> Result<Entry, ClassifyError> {
        let schema = str_field(fields, "schemaname");
        let name = str_field(fields, "relname");
        let (qualifiers, aliases) = alias(fields.get("alias"))?;
        if schema.is_empty() {
            if let Some(binding) = self.ctes.iter().rev().find(|b| b.name == name) {
                let qualifiers = if qualifiers.is_empty() {
                    vec![Qualifier {
                        schema: None,
                        name: name.to_string(),
                    }]
                } else {
                    qualifiers
                };
                return Ok(Entry {
                    qualifiers,
                    outputs: rename(binding.outputs.clone(), &aliases),
                });
            }
        }
        let tables = self.walker.resolve_relation(schema, name)?;
        Ok(table_entry(tables, qualifiers, &aliases))
    }

    fn join(&mut self, fields: &Map<String, Value>) -> Result<(), ClassifyError> {
        let start = self.current().entries.len();
        self.add_from_item(fields.get("larg").unwrap_or(&Value::Null))?;
        let middle = self.current().entries.len();
        self.add_from_item(fields.get("rarg").unwrap_or(&Value::Null))?;
        let end = self.current().entries.len();
        let full =
            fields.get("jointype").and_then(Value::as_i64) == Some(JoinType::JoinFull as i64);
        let using = name_list(fields.get("using_clause"))?;
        let mut merged = Vec::new();
        for name in &using {
            // `USING (x)` compares the two sides' x; the merged column is the left's (or
            // the right's for RIGHT JOIN), or COALESCE of both for FULL JOIN.
            let mut parts = Vec::new();
            for range in [start..middle, middle..end] {
                for entry in &self.current().entries[range] {
                    parts.extend(lookup(&entry.outputs, name).0);
                }
            }
            self.predicate_parts(parts.clone());
            if full {
                self.current().coalesced.push(name.clone());
                parts = demote(parts, Via::Expression);
            }
            merged.push(Output::column(Some(name.clone()), parts));
        }
        if fields.get("is_natural").and_then(Value::as_bool) == Some(true) {
            // The compared columns are those both sides have, unknown here: any column.
            let parts = self.current().entries[start..end]
                .iter()
                .flat_map(|e| all_parts_unmarked(&e.outputs))
                .collect();
            self.predicate_parts(parts);
            if full {
                self.current().natural_full = true;
            }
        }
        self.predicate(fields.get("quals"))?;
        let (using_alias, _) = alias(fields.get("join_using_alias"))?;
        if !using_alias.is_empty() {
            self.current().entries.push(Entry {
                qualifiers: using_alias,
                outputs: merged.clone(),
            });
        }
        let (join_alias, aliases) = alias(fields.get("alias"))?;
        if !join_alias.is_empty() {
            // A join alias hides the names inside it; their columns stay reachable
            // unqualified, and through the alias.
            let level = self.current();
            let mut outputs = if full { merged } else { Vec::new() };
            for entry in &mut level.entries[start..end] {
                entry.qualifiers.clear();
                outputs.extend(entry.outputs.iter().cloned());
            }
            level.entries.push(Entry {
                qualifiers: join_alias,
                outputs: rename(outputs, &aliases),
            });
        }
        Ok(())
    }

    /// The innermost query level (made if there is none yet, so that an unexpected tree
    /// cannot panic the gateway).
    fn current(&mut self) -> &mut Level {
        if self.levels.is_empty() {
            self.levels.push(Level::default());
        }
        self.levels.last_mut().expect("a level")
    }

    // ----- DML -----

    /// INSERT, UPDATE, DELETE, MERGE: what they copy into the table is recorded; the
    /// RETURNING list is the output.
    fn dml(
        &mut self,
        kind: &str,
        fields: &Map<String, Value>,
    ) -> Result<Vec<Output>, ClassifyError> {
        let depth = self.ctes.len();
        let result = self.with_clause(fields.get("with_clause")).and_then(|()| {
            self.levels.push(Level::default());
            let result = self.dml_body(kind, fields);
            self.levels.pop();
            result
        });
        self.ctes.truncate(depth);
        result
    }

    fn dml_body(
        &mut self,
        kind: &str,
        fields: &Map<String, Value>,
    ) -> Result<Vec<Output>, ClassifyError> {
        let relation = fields
            .get("relation")
            .and_then(Value::as_object)
            .filter(|r| is_range_var(r))
            .ok_or_else(|| malformed("DML without a target"))?;
        let tables = self.walker.resolve_relation(
            str_field(relation, "schemaname"),
            str_field(relation, "relname"),
        )?;
        let (qualifiers, _) = alias(relation.get("alias"))?;
        let target = table_entry(tables.clone(), qualifiers, &[]);
        match kind {
            "InsertStmt" => {
                // The source query cannot see the target; what it returns is copied in.
                let mut proposed = Vec::new();
                if let Some(source) = fields.get("select_stmt").filter(|s| !s.is_null()) {
                    if let Some(outputs) = self.query_node(source)? {
                        self.deliver(&outputs, Sink::Copy);
                        proposed = all_parts_unmarked(&outputs);
                    }
                }
                self.current().entries.push(target);
                if let Some(conflict) = fields.get("on_conflict_clause").filter(|c| !c.is_null()) {
                    // `excluded` is the row proposed for insertion: what the source query
                    // returned, in columns the gateway cannot line up without the catalog.
                    self.current().entries.push(Entry {
                        qualifiers: vec![Qualifier {
                            schema: None,
                            name: "excluded".into(),
                        }],
                        outputs: vec![Output::new(Shape::Unknown { parts: proposed })],
                    });
                    self.predicate(conflict.get("infer"))?;
                    self.assignments(conflict.get("target_list"))?;
                    self.predicate(conflict.get("where_clause"))?;
                }
            }
            "UpdateStmt" => {
                self.current().entries.push(target);
                for item in list(fields.get("from_clause")) {
                    self.add_from_item(item)?;
                }
                self.assignments(fields.get("target_list"))?;
                self.predicate(fields.get("where_clause"))?;
            }
            "DeleteStmt" => {
                self.current().entries.push(target);
                for item in list(fields.get("using_clause")) {
                    self.add_from_item(item)?;
                }
                self.predicate(fields.get("where_clause"))?;
            }
            "MergeStmt" => {
                self.current().entries.push(target);
                self.add_from_item(fields.get("source_relation").unwrap_or(&Value::Null))?;
                self.predicate(fields.get("join_condition"))?;
                for clause in list(fields.get("merge_when_clauses")) {
                    let Some(("MergeWhenClause", clause)) = node(clause) else {
                        return Err(malformed("MERGE WHEN item"));
                    };
                    self.predicate(clause.get("condition"))?;
                    self.assignments(clause.get("target_list"))?;
                    let values = self.value(clause.get("values").unwrap_or(&Value::Null))?;
                    self.copy_parts(values);
                }
            }
            _ => return Err(malformed("unexpected DML")),
        }
        self.returning_list(fields.get("returning_clause"), &tables)
    }

    /// `SET col = value` lists: the values are written into the table.
    fn assignments(&mut self, targets: Option<&Value>) -> Result<(), ClassifyError> {
        for target in list(targets) {
            let value = match node(target) {
                Some(("ResTarget", t)) => t.get("val").unwrap_or(&Value::Null),
                _ => target,
            };
            let parts = self.value(value)?;
            self.copy_parts(parts);
        }
        Ok(())
    }

    /// RETURNING: computed from the target row, with no origin reported for it.
    fn returning_list(
        &mut self,
        clause: Option<&Value>,
        tables: &[QualifiedName],
    ) -> Result<Vec<Output>, ClassifyError> {
        let Some(clause) = clause.filter(|c| !c.is_null()) else {
            return Ok(Vec::new());
        };
        let exprs = list(clause.get("exprs"));
        if exprs.is_empty() {
            return Ok(Vec::new());
        }
        self.returning = true;
        // `old` and `new` (or the names RETURNING WITH (OLD AS o, NEW AS n) gives them)
        // are the target row before and after.
        let mut names = vec!["old".to_string(), "new".to_string()];
        for option in list(clause.get("options")) {
            if let Some(("ReturningOption", option)) = node(option) {
                let kind = option.get("option").and_then(Value::as_i64);
                let index =
                    usize::from(kind != Some(ReturningOptionKind::ReturningOptionOld as i64));
                names[index] = str_field(option, "value").to_string();
            }
        }
        for name in names {
            let entry = table_entry(tables.to_vec(), vec![Qualifier { schema: None, name }], &[]);
            self.current().entries.push(entry);
        }
        let outputs = self.target_list(exprs)?;
        Ok(outputs
            .into_iter()
            .map(|o| o.map_parts(|p| p.demoted(Via::Returning)))
            .collect())
    }

    // ----- COPY -----

    /// `COPY`: a table's columns (or a query's result) reaching `sink`.
    fn copy(&mut self, fields: &Map<String, Value>, sink: Sink) -> Result<(), ClassifyError> {
        if fields.get("is_from").and_then(Value::as_bool) == Some(true) {
            return Ok(()); // data comes in; nothing of the database leaves
        }
        if let Some(query) = fields.get("query").filter(|q| !q.is_null()) {
            // The rows of `COPY (query)` carry no column origins, whatever the sink.
            if let Some(outputs) = self.query_node(query)? {
                self.deliver(&outputs, Sink::Copy);
            }
            return Ok(());
        }
        let relation = fields
            .get("relation")
            .and_then(Value::as_object)
            .ok_or_else(|| malformed("COPY without a table or a query"))?;
        let tables = self.walker.resolve_relation(
            str_field(relation, "schemaname"),
            str_field(relation, "relname"),
        )?;
        let columns = name_list(fields.get("attlist"))?;
        let mut parts = Vec::new();
        for table in tables {
            if columns.is_empty() {
                parts.push(Part::direct(table, None));
            } else {
                parts.extend(
                    columns
                        .iter()
                        .map(|c| Part::direct(table.clone(), Some(c.clone()))),
                );
            }
        }
        self.deliver(&[Output::column(None, parts)], sink);
        Ok(())
    }

    // ----- names -----

    /// `*` or `q.*`: the outputs it expands to (marked used).
    fn star(&mut self, names: &[String]) -> Vec<Output> {
        let Some(qualifier) = QualifierRef::from_names(names) else {
            // `*`: every item of the innermost level.
            let Some(level) = self.levels.last() else {
                return Vec::new();
            };
            let mut outputs: Vec<Output> = Vec::new();
            for entry in &level.entries {
                for output in &entry.outputs {
                    output.used.set(true);
                    outputs.push(output.clone());
                }
            }
            if level.natural_full {
                return outputs
                    .iter()
                    .map(|o| o.map_parts(|p| p.demoted(Via::Expression)))
                    .collect();
            }
            // FULL JOIN USING columns come first in `*`, as COALESCE of both sides.
            let coalesced: Vec<Output> = level
                .coalesced
                .iter()
                .map(|name| {
                    let parts = level
                        .entries
                        .iter()
                        .flat_map(|e| lookup(&e.outputs, name).0)
                        .collect();
                    Output::column(Some(name.clone()), demote(parts, Via::Expression))
                })
                .collect();
            return coalesced.into_iter().chain(outputs).collect();
        };
        match self.qualified(&qualifier) {
            Some(entries) => entries
                .into_iter()
                .flat_map(|e| {
                    e.outputs.iter().for_each(|o| o.used.set(true));
                    e.outputs
                })
                .collect(),
            // Not a FROM item PostgreSQL would accept; assume the worst.
            None => vec![Output::new(Shape::Unknown {
                parts: demote(self.everything(), Via::Expression),
            })],
        }
    }

    /// A column reference that is not a `*`: the parts it may carry.
    fn column(&mut self, names: &[String]) -> Result<Vec<Part>, ClassifyError> {
        match names {
            [name] => {
                // A column of some item in scope, or (PostgreSQL's second choice) a whole
                // row of an item of that name: both, since the gateway cannot tell.
                let mut parts = self.unqualified(name);
                if let Some(entries) = self.qualified(&QualifierRef { schema: None, name }) {
                    for entry in entries {
                        parts.extend(all_parts(&entry.outputs).into_iter().map(Part::whole_row));
                    }
                }
                Ok(parts)
            }
            [qualifier, name] => Ok(self.qualified_column(None, qualifier, name, &[])),
            [schema, qualifier, name] => {
                Ok(self.qualified_column(Some(schema), qualifier, name, &[schema, qualifier]))
            }
            [_catalog, schema, qualifier, name] => {
                Ok(self.qualified_column(Some(schema), qualifier, name, &[]))
            }
            _ => Err(malformed("column reference with too many parts")),
        }
    }

    /// `q.name` (or `s.q.name`). When no item answers to the qualifier, PostgreSQL reads
    /// it as a field of a composite column (`(q).name`): a derived value of that column.
    fn qualified_column(
        &mut self,
        schema: Option<&str>,
        qualifier: &str,
        name: &str,
        composite: &[&String],
    ) -> Vec<Part> {
        if let Some(entries) = self.qualified(&QualifierRef {
            schema,
            name: qualifier,
        }) {
            return entries
                .iter()
                .flat_map(|e| lookup(&e.outputs, name).0)
                .collect();
        }
        let mut parts = Vec::new();
        if let [table, column] = composite {
            // `t.c.field`: column c of item t, a field of it.
            if let Some(entries) = self.qualified(&QualifierRef {
                schema: None,
                name: table,
            }) {
                for entry in entries {
                    parts.extend(lookup(&entry.outputs, column).0);
                }
                return demote(parts, Via::Expression);
            }
        }
        let column = schema.unwrap_or(qualifier);
        demote(self.unqualified(column), Via::Expression)
    }

    /// The items of the innermost level that has one answering to `qualifier`.
    fn qualified(&self, qualifier: &QualifierRef<'_>) -> Option<Vec<Entry>> {
        self.levels.iter().rev().find_map(|level| {
            let found: Vec<Entry> = level
                .entries
                .iter()
                .filter(|e| e.answers_to(qualifier.schema, qualifier.name))
                .cloned()
                .collect();
            (!found.is_empty()).then_some(found)
        })
    }

    /// An unqualified column: every item that may have it, level by level outward, up to
    /// the first level where a subquery or CTE output certainly has it.
    fn unqualified(&self, name: &str) -> Vec<Part> {
        let mut parts = Vec::new();
        for level in self.levels.iter().rev() {
            let mut found = Vec::new();
            let mut certain = false;
            for entry in &level.entries {
                let (p, c) = lookup(&entry.outputs, name);
                found.extend(p);
                certain |= c;
            }
            if level.natural_full || level.coalesced.iter().any(|c| c == name) {
                found = demote(found, Via::Expression);
            }
            parts.extend(found);
            if certain {
                break;
            }
        }
        parts
    }

    /// Every column of everything in scope.
    fn everything(&self) -> Vec<Part> {
        self.levels
            .iter()
            .flat_map(|l| l.entries.iter())
            .flat_map(|e| all_parts(&e.outputs))
            .collect()
    }

    // ----- expressions -----

    /// The parts an expression's value may carry, as they are (the caller decides what the
    /// expression does to them). Conditions nested in it (FILTER, window PARTITION BY and
    /// ORDER BY) are recorded as read; subqueries are analysed.
    fn value(&mut self, value: &Value) -> Result<Vec<Part>, ClassifyError> {
        match value {
            Value::Array(items) => {
                let mut parts = Vec::new();
                for item in items {
                    parts.extend(self.value(item)?);
                }
                Ok(parts)
            }
            Value::Object(map) => {
                if let Some((key, inner)) = map.iter().next().filter(|_| map.len() == 1) {
                    if key == "node" {
                        return self.value(inner);
                    }
                    if let Value::Object(fields) = inner {
                        if let Some(parts) = self.value_node(key, fields)? {
                            return Ok(parts);
                        }
                    }
                }
                let mut parts = Vec::new();
                for v in map.values() {
                    parts.extend(self.value(v)?);
                }
                Ok(parts)
            }
            _ => Ok(Vec::new()),
        }
    }

    /// The node types with a meaning of their own; `None` for the rest, which are walked
    /// field by field.
    fn value_node(
        &mut self,
        kind: &str,
        fields: &Map<String, Value>,
    ) -> Result<Option<Vec<Part>>, ClassifyError> {
        let parts = match kind {
            // Never read: classification does not depend on constants' values.
            "AConst" | "ParamRef" => Vec::new(),
            "ColumnRef" => {
                let reference = ColumnName::parse(fields)?;
                if reference.star {
                    // `c.*` inside an expression is the whole row.
                    all_parts(&self.star(&reference.names))
                        .into_iter()
                        .map(Part::whole_row)
                        .collect()
                } else {
                    self.column(&reference.names)?
                }
            }
            "TypeCast" => error_may_show(self.value(fields.get("arg").unwrap_or(&Value::Null))?),
            // SQL/XML and SQL/JSON parse their input and quote it when it does not parse.
            "XmlExpr" | "XmlSerialize" | "JsonParseExpr" | "JsonScalarExpr"
            | "JsonSerializeExpr" | "JsonValueExpr" | "JsonFuncExpr" => {
                let mut parts = Vec::new();
                for value in fields.values() {
                    parts.extend(self.value(value)?);
                }
                error_may_show(parts)
            }
            "FuncCall" => {
                let name = name_list(fields.get("funcname"))?;
                let mut parts = self.value(fields.get("args").unwrap_or(&Value::Null))?;
                if fields.get("agg_within_group").and_then(Value::as_bool) == Some(true) {
                    // `percentile_disc(0.5) WITHIN GROUP (ORDER BY x)`, `mode() WITHIN GROUP
                    // (...)`: the ordered values are what the aggregate returns.
                    parts.extend(self.value(fields.get("agg_order").unwrap_or(&Value::Null))?);
                } else {
                    self.predicate(fields.get("agg_order"))?;
                }
                if !cannot_show_its_arguments(&name) {
                    parts = error_may_show(parts);
                }
                self.predicate(fields.get("agg_filter"))?;
                self.predicate(fields.get("over"))?;
                parts
            }
            "SubLink" => {
                let mut parts = self.value(fields.get("testexpr").unwrap_or(&Value::Null))?;
                let query = fields
                    .get("subselect")
                    .ok_or_else(|| malformed("subquery without a query"))?;
                let outputs = match node(query) {
                    Some(("SelectStmt", select)) => self.select(select)?,
                    _ => return Err(malformed("subquery is not a SELECT")),
                };
                let carried = all_parts(&outputs);
                let exists = fields.get("sub_link_type").and_then(Value::as_i64)
                    == Some(SubLinkType::ExistsSublink as i64);
                if exists {
                    // EXISTS returns whether there is a row, never a value of it.
                    self.predicate_parts(carried);
                } else {
                    parts.extend(carried);
                }
                parts
            }
            "SelectStmt" => all_parts(&self.select(fields)?),
            _ => return Ok(None),
        };
        Ok(Some(parts))
    }
}

fn usage_of(carry: Carry) -> Usage {
    match carry {
        Carry::Direct => Usage::Direct,
        Carry::Derived(via) => Usage::Derived(via),
        Carry::WholeRow => Usage::WholeRow,
    }
}

fn error_may_show(parts: Vec<Part>) -> Vec<Part> {
    parts
        .into_iter()
        .map(|p| Part {
            error_may_show: true,
            ..p
        })
        .collect()
}

/// Built-in functions that cannot fail with their argument's value in the error message,
/// whatever the value: they accept any input of their type (`count`, `min`, `max`, string
/// length, case and trimming, substrings; a regular-expression pattern that does not compile
/// is reported without its text). A condition may pass a masked column to these. Every other
/// function may: casts spelt as calls (`int4(ssn)`), parsers (`to_date`, `to_number`),
/// functions taking a name as text (`has_table_privilege`, `nextval`, `current_setting`),
/// `format`, and every user-defined function.
fn cannot_show_its_arguments(name: &[String]) -> bool {
    const QUIET: &[&str] = &[
        "count",
        "min",
        "max",
        "bool_and",
        "bool_or",
        "every",
        "array_agg",
        "string_agg",
        "lower",
        "upper",
        "initcap",
        "length",
        "char_length",
        "character_length",
        "octet_length",
        "bit_length",
        "btrim",
        "ltrim",
        "rtrim",
        "left",
        "right",
        "substr",
        "substring",
        "strpos",
        "position",
        "starts_with",
        "replace",
        "reverse",
        "md5",
        "concat",
        "concat_ws",
    ];
    match name {
        [name] => QUIET.contains(&name.as_str()),
        [schema, name] => schema == "pg_catalog" && QUIET.contains(&name.as_str()),
        _ => false,
    }
}

fn is_set_operation(fields: &Map<String, Value>) -> bool {
    let op = fields.get("op").and_then(Value::as_i64).unwrap_or(0);
    op != SetOperation::SetopNone as i64 && op != SetOperation::Undefined as i64
}

/// The outputs of `left UNION/INTERSECT/EXCEPT right`: named by the left branch, each
/// carrying both branches' values at its position, with no origin. When either branch has
/// a group of unknown width, positions are lost and every output may carry anything.
fn merge_set_operation(left: Vec<Output>, right: Vec<Output>) -> Vec<Output> {
    let named = |outputs: &[Output]| {
        outputs
            .iter()
            .all(|o| matches!(o.shape, Shape::Column { .. }))
    };
    if named(&left) && named(&right) && left.len() == right.len() {
        return left
            .into_iter()
            .zip(right)
            .map(|(l, r)| {
                let name = match l.shape {
                    Shape::Column { ref name, .. } => name.clone(),
                    _ => None,
                };
                let parts = l.parts().into_iter().chain(r.parts()).collect();
                Output::column(name, demote(parts, Via::SetOperation))
            })
            .collect();
    }
    let parts = all_parts_unmarked(&left)
        .into_iter()
        .chain(all_parts_unmarked(&right))
        .collect();
    vec![Output::new(Shape::Unknown {
        parts: demote(parts, Via::SetOperation),
    })]
}

/// A qualifier as written in a column reference.
struct QualifierRef<'n> {
    schema: Option<&'n str>,
    name: &'n str,
}

impl<'n> QualifierRef<'n> {
    /// The qualifier of a `*` reference's names (`q`, `s.q`, `c.s.q`), or `None` for `*`.
    fn from_names(names: &'n [String]) -> Option<Self> {
        match names {
            [] => None,
            [name] => Some(QualifierRef { schema: None, name }),
            [.., schema, name] => Some(QualifierRef {
                schema: Some(schema),
                name,
            }),
        }
    }
}

/// A `ColumnRef`'s names, and whether it ends in `*`.
struct ColumnName {
    names: Vec<String>,
    star: bool,
}

impl ColumnName {
    fn parse(colref: &Map<String, Value>) -> Result<Self, ClassifyError> {
        let mut names = Vec::new();
        let mut star = false;
        for field in list(colref.get("fields")) {
            match node(field) {
                Some(("String", s)) => names.push(str_field(s, "sval").to_string()),
                Some(("AStar", _)) => star = true,
                _ => return Err(malformed("unexpected column reference")),
            }
        }
        if names.is_empty() && !star {
            return Err(malformed("empty column reference"));
        }
        Ok(ColumnName { names, star })
    }
}

/// The qualifier and column aliases an `Alias` gives.
fn alias(value: Option<&Value>) -> Result<(Vec<Qualifier>, Vec<String>), ClassifyError> {
    let Some(alias) = value.and_then(Value::as_object) else {
        return Ok((Vec::new(), Vec::new()));
    };
    let name = str_field(alias, "aliasname");
    let qualifiers = if name.is_empty() {
        Vec::new()
    } else {
        vec![Qualifier {
            schema: None,
            name: name.to_string(),
        }]
    };
    Ok((qualifiers, name_list(alias.get("colnames"))?))
}

/// A base table (every search-path candidate) as a FROM item: its columns under their own
/// names, answering to its alias, or to its name with and without the schema.
fn table_entry(
    tables: Vec<QualifiedName>,
    qualifiers: Vec<Qualifier>,
    aliases: &[String],
) -> Entry {
    let qualifiers = if qualifiers.is_empty() {
        let mut names = vec![Qualifier {
            schema: None,
            name: tables.first().map(|t| t.name.clone()).unwrap_or_default(),
        }];
        names.extend(tables.iter().map(|t| Qualifier {
            schema: Some(t.schema.clone()),
            name: t.name.clone(),
        }));
        names
    } else {
        qualifiers
    };
    let parts = tables.into_iter().map(|t| Part::direct(t, None)).collect();
    Entry {
        qualifiers,
        outputs: rename(vec![Output::new(Shape::TableColumns { parts })], aliases),
    }
}

/// The name of the first function of a `RangeFunction`.
fn first_function_name(fields: &Map<String, Value>) -> Option<String> {
    let first = list(fields.get("functions")).first()?;
    let items = match node(first) {
        Some(("List", l)) => list(l.get("items")),
        _ => return None,
    };
    match node(items.first()?) {
        Some(("FuncCall", call)) => name_list(call.get("funcname")).ok()?.pop(),
        _ => None,
    }
}

/// The names of `names` that `value` mentions as unqualified relations, anywhere.
fn relation_names(value: &Value, names: &[&str], found: &mut Vec<String>) {
    match value {
        Value::Array(items) => items.iter().for_each(|v| relation_names(v, names, found)),
        Value::Object(map) => {
            if is_range_var(map) && str_field(map, "schemaname").is_empty() {
                let name = str_field(map, "relname");
                if names.contains(&name) && !found.iter().any(|f| f == name) {
                    found.push(name.to_string());
                }
            }
            map.values().for_each(|v| relation_names(v, names, found));
        }
        _ => {}
    }
}

/// The name PostgreSQL gives a result column without an alias (its `FigureColname`), for
/// the forms modelled here; `None` when not modelled, which lets any name refer to it.
fn column_name(value: &Value) -> Option<String> {
    match figure(value)? {
        (Some(name), _) => Some(name),
        (None, _) => Some("?column?".to_string()),
    }
}

/// PostgreSQL's `FigureColnameInternal`: a name and its strength (2 a real name, 1 a type
/// name, 0 none), or `None` for a node this does not model.
fn figure(value: &Value) -> Option<(Option<String>, u8)> {
    let (kind, fields) = node(value)?;
    let named = |name: &str| Some((Some(name.to_string()), 2));
    match kind {
        "ColumnRef" => {
            let reference = ColumnName::parse(fields).ok()?;
            if reference.star {
                return None;
            }
            named(reference.names.last()?)
        }
        "AIndirection" => {
            // The last field name, ignoring subscripts and `*`.
            let field = list(fields.get("indirection"))
                .iter()
                .filter_map(|i| match node(i) {
                    Some(("String", s)) => Some(str_field(s, "sval")),
                    _ => None,
                })
                .next_back();
            match field {
                Some(field) => named(field),
                None => figure(fields.get("arg")?),
            }
        }
        "FuncCall" => named(name_list(fields.get("funcname")).ok()?.last()?),
        "AExpr" => {
            if fields.get("kind").and_then(Value::as_i64) == Some(AExprKind::AexprNullif as i64) {
                named("nullif")
            } else {
                Some((None, 0))
            }
        }
        "CollateClause" => figure(fields.get("arg")?),
        "TypeCast" => {
            let inner = figure(fields.get("arg")?)?;
            if inner.1 > 1 {
                return Some(inner);
            }
            let type_name = fields.get("type_name")?.as_object()?;
            let names = name_list(type_name.get("names")).ok()?;
            Some((Some(names.last()?.clone()), 1))
        }
        "GroupingFunc" => named("grouping"),
        "MergeSupportFunc" => named("merge_action"),
        "SubLink" => {
            let kind = fields.get("sub_link_type").and_then(Value::as_i64)?;
            if kind == SubLinkType::ExistsSublink as i64 {
                named("exists")
            } else if kind == SubLinkType::ArraySublink as i64 {
                named("array")
            } else if kind == SubLinkType::ExprSublink as i64 {
                // The name of the subquery's single result column, as PostgreSQL has
                // already worked it out by then.
                let (_, select) = node(fields.get("subselect")?)?;
                let first = list(select.get("target_list")).first()?;
                let (_, target) = node(first)?;
                let alias = str_field(target, "name");
                if !alias.is_empty() {
                    return named(alias);
                }
                let value = target.get("val")?;
                if matches!(node(value), Some(("ColumnRef", c)) if ColumnName::parse(c).is_ok_and(|r| r.star))
                {
                    return None;
                }
                Some((Some(column_name(value)?), 2))
            } else {
                Some((None, 0))
            }
        }
        "CaseExpr" => {
            let inner = match fields.get("defresult").filter(|d| !d.is_null()) {
                Some(d) => figure(d)?,
                None => (None, 0),
            };
            if inner.1 > 1 {
                Some(inner)
            } else {
                Some((Some("case".into()), 1))
            }
        }
        "AArrayExpr" => named("array"),
        "RowExpr" => named("row"),
        "CoalesceExpr" => named("coalesce"),
        "MinMaxExpr" => {
            let op = fields.get("op").and_then(Value::as_i64)?;
            if op == MinMaxOp::IsGreatest as i64 {
                named("greatest")
            } else {
                named("least")
            }
        }
        "AConst" | "ParamRef" | "BoolExpr" | "NullTest" | "BooleanTest" => Some((None, 0)),
        _ => None,
    }
}

/// The wrapped node in `value` (`{"node": {"Kind": {...}}}` or `{"Kind": {...}}`).
fn node(value: &Value) -> Option<(&str, &Map<String, Value>)> {
    let value = value.get("node").unwrap_or(value);
    let map = value.as_object()?;
    if map.len() != 1 {
        return None;
    }
    let (kind, fields) = map.iter().next()?;
    Some((kind.as_str(), fields.as_object()?))
}

/// The items of a list field (empty when absent or null).
fn list(value: Option<&Value>) -> &[Value] {
    value
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}
