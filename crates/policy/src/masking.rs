//! Masking refusals: column masks against the value flows of a statement.
//!
//! The data path masks a result column by the origin PostgreSQL reports for it, and
//! PostgreSQL reports one only for a plain column reference (DESIGN.md §4). So a masked
//! column may leave a statement only as a result column of its own; a statement that would
//! carry it out any other way (inside an expression, as part of a whole row, through a set
//! operation, `RETURNING`, or into another table or `COPY` output) is refused here, before
//! it runs, from the flows the classifier found ([`sluice_sql::flow`]). A condition that
//! only reads a masked column is allowed, unless the policy that masks it says
//! `mask_predicates: refuse`.
//!
//! Only column masks refuse: detector masks scan values wherever they appear, and JSON
//! masks are for HTTP responses.
//!
//! The data path then masks the direct result columns; [`SessionPolicy::masked_columns`]
//! says which, for `sluice policy explain`.

use serde::Serialize;
use sluice_config::{MaskPredicates, MaskStrategy};
use sluice_sql::{ColumnFlow, StatementClass, Usage, Via};

use crate::compile::{CompiledMask, CompiledPolicy};
use crate::decision::{Decision, MaskSpec};
use crate::session::SessionPolicy;

/// A result column the data path will mask.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MaskedColumn {
    /// The base column, `schema.table.column`.
    pub column: String,
    /// The name of the result column it becomes.
    pub output: String,
    pub with: MaskStrategy,
    pub policy: String,
}

impl SessionPolicy {
    /// The refusal of a statement that would carry a masked column out other than as a
    /// result column of its own, or read one in a condition against its policy's
    /// `mask_predicates: refuse`; `None` when masking has nothing against it.
    pub fn mask_refusal(&self, statement: &StatementClass) -> Option<Decision> {
        let flows = &statement.flows;
        for flow in &flows.columns {
            for (policy, mask) in self.column_masks() {
                let refused = match flow.usage {
                    Usage::Direct => false,
                    Usage::Predicate => policy.mask_predicates == MaskPredicates::Refuse,
                    Usage::Derived(_) | Usage::WholeRow => true,
                };
                if refused && mask.covers(&flow.table, flow.column.as_deref()) {
                    return Some(Decision::Deny {
                        reason: refusal_reason(flow, mask),
                        rule: Some(mask.at.clone()),
                    });
                }
            }
        }
        if let Some(why) = &flows.unknown {
            if let Some((_, mask)) = self.column_masks().next() {
                return Some(Decision::Deny {
                    reason: format!(
                        "{why}, and this session has masked columns that it could carry out unmasked"
                    ),
                    rule: Some(mask.at.clone()),
                });
            }
        }
        None
    }

    /// The result columns of `statement` that column masks apply to, with the strategy
    /// that wins where several masks cover one column (the most concealing, DESIGN.md §1).
    pub fn masked_columns(&self, statement: &StatementClass) -> Vec<MaskedColumn> {
        let mut masked: Vec<MaskedColumn> = Vec::new();
        for flow in statement
            .flows
            .columns
            .iter()
            .filter(|f| f.usage == Usage::Direct)
        {
            for (policy, mask) in self.column_masks() {
                if !mask.covers(&flow.table, flow.column.as_deref()) {
                    continue;
                }
                let MaskSpec::Column { with, .. } = &mask.spec else {
                    continue;
                };
                let column = column_name(flow, mask);
                let output = flow
                    .output
                    .clone()
                    .unwrap_or_else(|| column.rsplit('.').next().unwrap_or_default().to_string());
                let candidate = MaskedColumn {
                    column,
                    output,
                    with: *with,
                    policy: policy.name.clone(),
                };
                match masked
                    .iter_mut()
                    .find(|m| m.column == candidate.column && m.output == candidate.output)
                {
                    Some(existing) if existing.with.concealment() < with.concealment() => {
                        *existing = candidate
                    }
                    Some(_) => {}
                    None => masked.push(candidate),
                }
            }
        }
        masked
    }

    /// Every column mask of the session, with the policy it belongs to.
    fn column_masks(&self) -> impl Iterator<Item = (&CompiledPolicy, &CompiledMask)> {
        self.policies.iter().flat_map(|policy| {
            policy
                .masks
                .iter()
                .filter(|m| matches!(m.spec, MaskSpec::Column { .. }))
                .map(move |mask| (policy.as_ref(), mask))
        })
    }
}

/// `schema.table.column` of a flow; for a flow with no column (a whole row, a `*`, a name
/// the classifier could not tie to a column), the mask's own column.
fn column_name(flow: &ColumnFlow, mask: &CompiledMask) -> String {
    let column = flow
        .column
        .as_deref()
        .or_else(|| mask.column_part())
        .unwrap_or("*");
    format!("{}.{column}", flow.table)
}

fn refusal_reason(flow: &ColumnFlow, mask: &CompiledMask) -> String {
    let column = column_name(flow, mask);
    // With no column, the classifier could not tell which column of the table it is.
    let which = if flow.column.is_none() && flow.usage != Usage::WholeRow {
        format!(
            " (the gateway cannot tell which column of {} it carries)",
            flow.table
        )
    } else {
        String::new()
    };
    match flow.usage {
        Usage::Derived(Via::Expression) => format!(
            "{column} is masked and cannot leave through an expression (function, operator, cast, aggregate, subquery){which}; select the column itself"
        ),
        Usage::Derived(Via::SetOperation) => format!(
            "{column} is masked and cannot leave through UNION, INTERSECT, EXCEPT or a recursive WITH, whose result columns have no origin to mask by{which}; select it in a query of its own"
        ),
        Usage::Derived(Via::Returning) => format!(
            "{column} is masked and cannot leave through RETURNING{which}; select it in a query of its own"
        ),
        Usage::Derived(Via::Copy) => format!(
            "{column} is masked and cannot be copied into a table or out through COPY, where the mask does not follow it{which}"
        ),
        Usage::Derived(Via::ErrorMessage) => format!(
            "{column} is masked and cannot be passed to a cast or function in a condition, whose error message could show the value{which}; compare the column itself"
        ),
        Usage::WholeRow => format!(
            "{column} is masked and cannot leave inside a whole row (`c`, `row_to_json(c)`, `c.*` in an expression); select the columns themselves"
        ),
        Usage::Predicate => format!(
            "{column} is masked and its policy refuses reading it in conditions (WHERE, JOIN, ORDER BY, GROUP BY, ...) with mask_predicates: refuse{which}"
        ),
        Usage::Direct => format!("{column} is masked"),
    }
}
