//! What a RowDescription's column origins mean: table OID and attribute number → the
//! `schema.table.column` names column masks are written against.
//!
//! PostgreSQL reports, for each result column that is a plain column reference (through
//! aliases, joins, subqueries and CTEs), the table it comes from and its attribute number.
//! The gateway resolves those numbers with its own session to the resource (the
//! connection's credential, `search_path = pg_catalog`), opened on first need and shared by
//! every client session of the connection, and caches each relation:
//!
//! - a table's columns are also named after the tables it inherits from or is a partition
//!   of (`public.customers.email` covers `public.customers_2024.email`);
//! - a view's or materialized view's columns are also named after the base columns they
//!   show ([`sluice_sql::view_columns`]); a computed view column is named after every base
//!   column the view depends on (`pg_depend`), so it is masked if any of them is.
//!
//! Entries live [`TTL`] at most, and the whole cache is dropped when a statement that may
//! change the schema (DDL) passes through any session of the connection, so a column
//! renamed through the gateway is seen at once, and one renamed behind its back within
//! the TTL.
//!
//! Failing closed: a lookup that fails is an error for the statement whose result needed
//! it (the session refuses to deliver its rows); an OID the catalog does not know (a
//! table dropped meanwhile) resolves to no names only when no mask could match.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use postgres_protocol::message::frontend;
use sluice_core::QualifiedName;
use sluice_sql::{view_columns, ViewColumn};
use tokio::io::AsyncWriteExt;

use crate::io::BoxIo;
use crate::protocol::backend::error_fields;
use crate::protocol::codec::{BodyReader, FrameReader};
use crate::upstream;
use crate::PgConnection;

/// How long a resolved relation is trusted without a schema change seen.
pub const TTL: Duration = Duration::from_secs(30);

/// How long one catalog query (login included) may take.
const QUERY_TIMEOUT: Duration = Duration::from_secs(15);

/// How deep views over views are followed.
const MAX_VIEW_DEPTH: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("cannot reach the resource to read its catalog: {0}")]
    Connect(#[from] upstream::UpstreamError),
    #[error("reading the resource's catalog failed: {0}")]
    Query(String),
}

/// The names one result column goes by, for matching column masks: its own
/// `schema.table.column`, and those of the columns it inherits or shows.
pub type ColumnNames = Arc<[String]>;

/// One relation as the catalog describes it.
#[derive(Debug, Default)]
pub struct Relation {
    /// Index into `ordered` by attribute number.
    by_attnum: HashMap<i16, usize>,
    /// The columns in table order (as `COPY table` writes them).
    ordered: Vec<RelationColumn>,
}

/// One column of a relation.
#[derive(Debug)]
pub struct RelationColumn {
    pub name: String,
    pub type_oid: u32,
    pub names: ColumnNames,
}

impl Relation {
    pub fn column(&self, attnum: i16) -> Option<&ColumnNames> {
        self.by_attnum.get(&attnum).map(|&i| &self.ordered[i].names)
    }

    pub fn columns(&self) -> &[RelationColumn] {
        &self.ordered
    }

    pub fn column_named(&self, name: &str) -> Option<&RelationColumn> {
        self.ordered.iter().find(|c| c.name == name)
    }
}

/// The shared resolver of one connection.
pub struct Catalog {
    connection: Arc<PgConnection>,
    connect_timeout: Duration,
    state: tokio::sync::Mutex<State>,
}

#[derive(Default)]
struct State {
    client: Option<FrameReader<BoxIo>>,
    relations: HashMap<u32, (Instant, Arc<Relation>)>,
    /// Relation OIDs by name (`None`: no such relation).
    names: HashMap<QualifiedName, (Instant, Option<u32>)>,
    /// Bumped by [`Catalog::invalidate`]; lookups started before keep their result out.
    generation: u64,
}

impl Catalog {
    pub fn new(connection: Arc<PgConnection>, connect_timeout: Duration) -> Self {
        Catalog {
            connection,
            connect_timeout,
            state: tokio::sync::Mutex::new(State::default()),
        }
    }

    /// Forgets every relation: a statement that may change the schema went through.
    pub async fn invalidate(&self) {
        let mut state = self.state.lock().await;
        state.relations.clear();
        state.names.clear();
        state.generation += 1;
    }

    /// The relation a name resolves to: the first of `candidates` (schema-qualified, in
    /// search path order) that exists.
    pub async fn relation_named(
        &self,
        candidates: &[QualifiedName],
    ) -> Result<Option<Arc<Relation>>, CatalogError> {
        let mut found = None;
        {
            let mut state = self.state.lock().await;
            for candidate in candidates {
                if let Some((at, oid)) = state.names.get(candidate) {
                    if at.elapsed() < TTL {
                        if oid.is_some() {
                            found = *oid;
                            break;
                        }
                        continue;
                    }
                }
                let sql = format!(
                    "SELECT c.oid::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                     WHERE n.nspname = {} AND c.relname = {}",
                    literal(&candidate.schema),
                    literal(&candidate.name)
                );
                let result = self.query(&mut state, &sql).await;
                if result.is_err() {
                    state.client = None;
                }
                let oid = result?
                    .into_iter()
                    .next()
                    .and_then(|rows| rows.into_iter().next())
                    .and_then(|row| row.into_iter().next().flatten())
                    .and_then(|oid| oid.parse::<u32>().ok());
                state.names.insert(candidate.clone(), (Instant::now(), oid));
                if oid.is_some() {
                    found = oid;
                    break;
                }
            }
        }
        match found {
            Some(oid) => self.relation(oid).await.map(Some),
            None => Ok(None),
        }
    }

    /// The relation with this OID.
    pub async fn relation(&self, oid: u32) -> Result<Arc<Relation>, CatalogError> {
        let mut state = self.state.lock().await;
        // `load` answers from the cache when it can.
        let result = self.load(&mut state, oid, 0).await;
        if result.is_err() {
            // The catalog session may be broken: open a fresh one next time.
            state.client = None;
        }
        result
    }

    fn load<'a>(
        &'a self,
        state: &'a mut State,
        oid: u32,
        depth: usize,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Arc<Relation>, CatalogError>> + Send + 'a>,
    > {
        Box::pin(async move {
            if let Some((at, relation)) = state.relations.get(&oid) {
                if at.elapsed() < TTL {
                    return Ok(relation.clone());
                }
            }
            // `oid` is a number from the wire, formatted as one: nothing to quote.
            let results = self
                .query(
                    state,
                    &format!(
                        "SELECT n.nspname, c.relname, c.relkind::text, \
                           CASE WHEN c.relkind IN ('v', 'm') THEN pg_get_viewdef(c.oid) END \
                         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = {oid}; \
                         SELECT attnum::text, attname, atttypid::text FROM pg_attribute \
                         WHERE attrelid = {oid} AND attnum > 0 AND NOT attisdropped ORDER BY attnum; \
                         WITH RECURSIVE up(oid) AS ( \
                           SELECT inhparent FROM pg_inherits WHERE inhrelid = {oid} \
                           UNION SELECT i.inhparent FROM pg_inherits i JOIN up ON i.inhrelid = up.oid) \
                         SELECT n.nspname, c.relname FROM up JOIN pg_class c ON c.oid = up.oid \
                           JOIN pg_namespace n ON n.oid = c.relnamespace; \
                         SELECT DISTINCT d.refobjid::text, d.refobjsubid::text FROM pg_depend d \
                           JOIN pg_rewrite r ON r.oid = d.objid \
                         WHERE r.ev_class = {oid} AND d.refobjid <> {oid} AND d.refobjsubid > 0 \
                           AND d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass"
                    ),
                )
                .await?;
            let [class, attributes, ancestors, dependencies] =
                <[Vec<Vec<Option<String>>>; 4]>::try_from(results)
                    .map_err(|_| CatalogError::Query("unexpected number of results".into()))?;
            let generation = state.generation;
            let Some(class) = class.into_iter().next() else {
                // Dropped meanwhile: nothing to name.
                return Ok(Arc::new(Relation::default()));
            };
            let text = |row: &[Option<String>], i: usize| {
                row.get(i).cloned().flatten().unwrap_or_default()
            };
            let (schema, name, kind) = (text(&class, 0), text(&class, 1), text(&class, 2));
            let prefixes: Vec<String> = std::iter::once(format!("{schema}.{name}"))
                .chain(
                    ancestors
                        .iter()
                        .map(|row| format!("{}.{}", text(row, 0), text(row, 1))),
                )
                .collect();

            // For views: what each column shows.
            let (shown, dependencies) = if kind == "v" || kind == "m" {
                if depth >= MAX_VIEW_DEPTH {
                    return Err(CatalogError::Query(format!(
                        "views nested deeper than {MAX_VIEW_DEPTH}"
                    )));
                }
                let definition = text(&class, 3);
                let shown = view_columns(&definition).unwrap_or_default();
                let mut resolved: Vec<ColumnNames> = Vec::new();
                for row in &dependencies {
                    let (Ok(base), Ok(attnum)) =
                        (text(row, 0).parse::<u32>(), text(row, 1).parse::<i16>())
                    else {
                        return Err(CatalogError::Query("malformed pg_depend row".into()));
                    };
                    let base = self.load(state, base, depth + 1).await?;
                    if let Some(column) = base.column(attnum) {
                        resolved.push(column.clone());
                    }
                }
                (Some(shown), resolved)
            } else {
                (None, Vec::new())
            };
            let all_dependency_names = || dependencies.iter().flat_map(|d| d.iter().cloned());

            let mut relation = Relation::default();
            for (position, row) in attributes.iter().enumerate() {
                let attnum: i16 = text(row, 0)
                    .parse()
                    .map_err(|_| CatalogError::Query("malformed attribute number".into()))?;
                let column = text(row, 1);
                let mut names: Vec<String> =
                    prefixes.iter().map(|p| format!("{p}.{column}")).collect();
                match shown.as_ref().map(|s| s.get(position)) {
                    None => {}
                    Some(Some(ViewColumn::Direct { relation, column })) => {
                        // The base column's own names (it may inherit, or be a view's
                        // column in turn), found among the dependencies resolved above;
                        // if it is not there, every dependency's (fail closed).
                        let own = format!("{relation}.{column}");
                        let base: Vec<&ColumnNames> =
                            dependencies.iter().filter(|d| d.contains(&own)).collect();
                        names.push(own);
                        if base.is_empty() {
                            names.extend(all_dependency_names());
                        } else {
                            names.extend(base.into_iter().flat_map(|d| d.iter().cloned()));
                        }
                    }
                    Some(_) => names.extend(all_dependency_names()),
                }
                names.sort();
                names.dedup();
                relation.by_attnum.insert(attnum, relation.ordered.len());
                relation.ordered.push(RelationColumn {
                    name: column,
                    type_oid: text(row, 2).parse().unwrap_or(0),
                    names: ColumnNames::from(names),
                });
            }
            let relation = Arc::new(relation);
            if generation == state.generation {
                state
                    .relations
                    .insert(oid, (Instant::now(), relation.clone()));
            }
            Ok(relation)
        })
    }

    /// Runs `sql` (simple protocol) on the catalog session: one list of text rows per
    /// statement.
    async fn query(
        &self,
        state: &mut State,
        sql: &str,
    ) -> Result<Vec<Vec<Vec<Option<String>>>>, CatalogError> {
        // Every masked result of the connection waits on this session: a resource that
        // stops answering fails those results rather than hanging them.
        match tokio::time::timeout(QUERY_TIMEOUT, self.query_unbounded(state, sql)).await {
            Ok(result) => result,
            Err(_) => Err(CatalogError::Query(format!(
                "no answer from the resource within {} s",
                QUERY_TIMEOUT.as_secs()
            ))),
        }
    }

    async fn query_unbounded(
        &self,
        state: &mut State,
        sql: &str,
    ) -> Result<Vec<Vec<Vec<Option<String>>>>, CatalogError> {
        if state.client.is_none() {
            let password = self.connection.password.as_ref().map(|p| p.expose());
            let params = [
                ("search_path".to_string(), "pg_catalog".to_string()),
                ("application_name".to_string(), "sluice catalog".to_string()),
            ];
            let upstream = upstream::connect(
                &self.connection.target,
                password,
                &params,
                self.connect_timeout,
            )
            .await?;
            state.client = Some(upstream.stream);
        }
        let client = state.client.as_mut().expect("connected above");
        let mut out = BytesMut::new();
        frontend::query(sql, &mut out).map_err(|e| CatalogError::Query(e.to_string()))?;
        let io_error = |e: std::io::Error| CatalogError::Query(e.to_string());
        client.get_mut().write_all(&out).await.map_err(io_error)?;
        client.get_mut().flush().await.map_err(io_error)?;

        let mut results = Vec::new();
        let mut rows = Vec::new();
        let mut failure = None;
        loop {
            let frame = client
                .next()
                .await
                .map_err(|e| CatalogError::Query(e.to_string()))?;
            match frame.tag {
                b'T' => rows = Vec::new(),
                b'D' => rows.push(data_row(frame.body())?),
                b'C' => results.push(std::mem::take(&mut rows)),
                b'E' => failure = Some(error_fields(frame.body()).1),
                b'Z' => break,
                _ => {}
            }
        }
        match failure {
            Some(message) => Err(CatalogError::Query(message)),
            None => Ok(results),
        }
    }
}

fn data_row(body: &[u8]) -> Result<Vec<Option<String>>, CatalogError> {
    let malformed = |_| CatalogError::Query("malformed DataRow".into());
    let mut r = BodyReader::new(body);
    let count = r.i16("DataRow").map_err(malformed)?;
    (0..count)
        .map(|_| {
            let len = r.i32("DataRow").map_err(malformed)?;
            if len < 0 {
                return Ok(None);
            }
            let bytes = r.bytes(len as usize, "DataRow").map_err(malformed)?;
            Ok(Some(String::from_utf8_lossy(bytes).into_owned()))
        })
        .collect()
}

/// A string literal for the catalog session (which runs with standard_conforming_strings
/// on, as the gateway requires of every resource).
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}
