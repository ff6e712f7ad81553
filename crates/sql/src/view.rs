//! Which base column each column of a view shows, read from the view's definition.
//!
//! PostgreSQL reports a view's own OID and attribute number as the origin of the columns a
//! query reads from it, so a column mask on `public.customers.email` would not match
//! `public.customer_contacts.email`. The data path therefore asks the resource for the
//! view's definition (`pg_get_viewdef`, printed with only `pg_catalog` on the search path
//! so every other relation is schema-qualified) and this module maps each output column,
//! by position, to the base column it passes through unchanged. Anything else (an
//! expression, a set operation, a subquery in `FROM`) is [`ViewColumn::Derived`]: the data
//! path then considers every base column the view depends on, failing closed.

use pg_query::protobuf::node::Node as NodeEnum;
use pg_query::protobuf::{Node, SetOperation};
use sluice_core::QualifiedName;

use crate::error::ClassifyError;

/// What one output column of a view shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ViewColumn {
    /// Passes `relation.column` through unchanged.
    Direct {
        relation: QualifiedName,
        column: String,
    },
    /// Computed, or from a source this module cannot follow.
    Derived,
}

/// The view's output columns in order (attribute number = position + 1). A definition
/// whose output this module cannot follow at all (a set operation, `VALUES`) gives every
/// column as [`ViewColumn::Derived`] by returning an empty list.
pub fn view_columns(definition: &str) -> Result<Vec<ViewColumn>, ClassifyError> {
    let parsed = pg_query::parse(definition, 0).map_err(|e| ClassifyError::Parse(e.to_string()))?;
    let Some(NodeEnum::SelectStmt(select)) = parsed
        .protobuf
        .stmts
        .first()
        .and_then(|s| s.stmt.as_ref())
        .and_then(|n| n.node.as_ref())
    else {
        return Ok(Vec::new());
    };
    if select.op != SetOperation::SetopNone as i32
        || select.target_list.is_empty()
        || select.with_clause.is_some()
    {
        return Ok(Vec::new());
    }
    let mut sources = Vec::new();
    for item in &select.from_clause {
        collect_sources(item, &mut sources);
    }
    Ok(select
        .target_list
        .iter()
        .map(|target| match target.node.as_ref() {
            Some(NodeEnum::ResTarget(rt)) => rt
                .val
                .as_deref()
                .and_then(|val| direct_reference(val, &sources))
                .unwrap_or(ViewColumn::Derived),
            _ => ViewColumn::Derived,
        })
        .collect())
}

/// A `FROM` item's name as column references qualify it, and the relation it reads
/// (`None` for a subquery or function, whose columns are not followed).
type Source = (String, Option<QualifiedName>);

fn collect_sources(node: &Node, sources: &mut Vec<Source>) {
    match node.node.as_ref() {
        Some(NodeEnum::RangeVar(rv)) => {
            let relation = QualifiedName::new(
                if rv.schemaname.is_empty() {
                    // Unqualified with only pg_catalog searched: a catalog relation.
                    "pg_catalog"
                } else {
                    rv.schemaname.as_str()
                },
                rv.relname.as_str(),
            );
            let alias = rv
                .alias
                .as_ref()
                .map(|a| a.aliasname.clone())
                .unwrap_or_else(|| rv.relname.clone());
            sources.push((alias, Some(relation)));
        }
        Some(NodeEnum::JoinExpr(join)) => {
            // A join alias hides its inputs' names behind its own: not followed.
            if let Some(alias) = &join.alias {
                sources.push((alias.aliasname.clone(), None));
                return;
            }
            for side in [&join.larg, &join.rarg].into_iter().flatten() {
                collect_sources(side, sources);
            }
        }
        Some(NodeEnum::RangeSubselect(sub)) => {
            if let Some(alias) = &sub.alias {
                sources.push((alias.aliasname.clone(), None));
            }
        }
        Some(NodeEnum::RangeFunction(func)) => {
            if let Some(alias) = &func.alias {
                sources.push((alias.aliasname.clone(), None));
            }
        }
        _ => {}
    }
}

fn direct_reference(val: &Node, sources: &[Source]) -> Option<ViewColumn> {
    let Some(NodeEnum::ColumnRef(column_ref)) = val.node.as_ref() else {
        return None;
    };
    let names: Option<Vec<&str>> = column_ref
        .fields
        .iter()
        .map(|f| match f.node.as_ref() {
            Some(NodeEnum::String(s)) => Some(s.sval.as_str()),
            _ => None,
        })
        .collect();
    let (qualifier, column) = match names?.as_slice() {
        [qualifier, column] => (Some(*qualifier), *column),
        [column] => (None, *column),
        _ => return None,
    };
    let relation = match qualifier {
        Some(q) => {
            let mut matching = sources.iter().filter(|(alias, _)| alias == q);
            let (_, relation) = matching.next()?;
            if matching.next().is_some() {
                return None;
            }
            relation.clone()?
        }
        // Unqualified: only when the view reads exactly one relation.
        None => match sources {
            [(_, Some(relation))] => relation.clone(),
            _ => return None,
        },
    };
    Some(ViewColumn::Direct {
        relation,
        column: column.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn direct(schema: &str, table: &str, column: &str) -> ViewColumn {
        ViewColumn::Direct {
            relation: QualifiedName::new(schema, table),
            column: column.into(),
        }
    }

    #[test]
    fn columns_passed_through_map_to_their_base_column() {
        // As pg_get_viewdef prints it with search_path = pg_catalog.
        let def = " SELECT customers.id,\n    customers.name,\n    customers.email AS contact\n   FROM public.customers;";
        assert_eq!(
            view_columns(def).unwrap(),
            vec![
                direct("public", "customers", "id"),
                direct("public", "customers", "name"),
                direct("public", "customers", "email"),
            ]
        );
    }

    #[test]
    fn joins_follow_aliases_and_expressions_are_derived() {
        let def = " SELECT c.email,\n    o.total,\n    upper(c.name) AS name,\n    (c.email || 'x'::text) AS e\n   FROM (public.customers c\n     JOIN public.orders o ON ((o.customer_id = c.id)));";
        assert_eq!(
            view_columns(def).unwrap(),
            vec![
                direct("public", "customers", "email"),
                direct("public", "orders", "total"),
                ViewColumn::Derived,
                ViewColumn::Derived,
            ]
        );
    }

    #[test]
    fn what_cannot_be_followed_is_derived() {
        assert_eq!(
            view_columns(" SELECT s.email FROM ( SELECT customers.email FROM public.customers) s;")
                .unwrap(),
            vec![ViewColumn::Derived]
        );
        assert!(view_columns(
            " SELECT customers.email FROM public.customers UNION SELECT 'x'::text AS text;"
        )
        .unwrap()
        .is_empty());
        assert_eq!(
            view_columns(" SELECT email FROM public.customers c, public.orders o;").unwrap(),
            vec![ViewColumn::Derived]
        );
    }
}
