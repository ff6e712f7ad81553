//! Config policies compiled for matching: globs built once, rules numbered for messages.

use std::sync::Arc;
use std::time::Duration;

use globset::{Glob, GlobBuilder, GlobMatcher};
use sluice_config::{ApprovalMode, Config, MaskPredicates, Match, Rule, SecretData, Spanned};
use sluice_core::{Action, Principal, QualifiedName};

use crate::decision::{Approval, EffectiveLimits, MaskSpec, RuleRef, Section};
use crate::session::SessionPolicy;

/// Default time an `approve: { mode: hold }` statement waits for a decision.
pub const DEFAULT_APPROVAL_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// A list of name patterns (`public.*`, `pg_catalog.pg_read_file`).
#[derive(Debug, Clone)]
pub struct Patterns(Vec<Pattern>);

#[derive(Debug, Clone)]
struct Pattern {
    text: String,
    matcher: Matcher,
    literal: bool,
}

/// How a pattern is tested. Every statement is judged against every rule's patterns, and
/// most name patterns are a name, `schema.*` or `*.column`: those are string tests, and
/// only the rest go through the glob engine (whose every match builds a candidate and
/// runs an automaton).
#[derive(Debug, Clone)]
enum Matcher {
    /// No glob syntax: the pattern's text itself.
    Exact,
    /// `prefix*`. Without `literal_separator`, `*` matches any characters, `.` included.
    Prefix(String),
    /// `*suffix`.
    Suffix(String),
    Glob(GlobMatcher),
}

/// Characters with a meaning in a glob (`\` escapes one).
const GLOB_SYNTAX: [char; 7] = ['*', '?', '[', ']', '{', '}', '\\'];

impl Matcher {
    /// The fastest test that agrees with `glob` (a name glob: default options) on every
    /// name.
    fn of(text: &str, glob: &Glob) -> Matcher {
        let plain = |part: &str| !part.contains(GLOB_SYNTAX);
        if plain(text) {
            return Matcher::Exact;
        }
        if let Some(prefix) = text.strip_suffix('*').filter(|p| plain(p)) {
            return Matcher::Prefix(prefix.to_string());
        }
        if let Some(suffix) = text.strip_prefix('*').filter(|s| plain(s)) {
            return Matcher::Suffix(suffix.to_string());
        }
        Matcher::Glob(glob.compile_matcher())
    }

    fn is_match(&self, text: &str, name: &str) -> bool {
        match self {
            Matcher::Exact => text == name,
            Matcher::Prefix(prefix) => name.starts_with(prefix.as_str()),
            Matcher::Suffix(suffix) => name.ends_with(suffix.as_str()),
            Matcher::Glob(glob) => glob.is_match(name),
        }
    }
}

impl Patterns {
    fn compile(texts: &[String]) -> Result<Self, String> {
        texts
            .iter()
            .map(|text| {
                let glob = Glob::new(text).map_err(|e| format!("invalid pattern `{text}`: {e}"))?;
                Ok(Pattern {
                    text: text.clone(),
                    matcher: Matcher::of(text, &glob),
                    literal: !text.contains(['*', '?', '[', '{']),
                })
            })
            .collect::<Result<_, String>>()
            .map(Patterns)
    }

    /// HTTP path globs: `*` stays within one segment, `**` spans any number of them
    /// (`/v1/invoices/*` matches `/v1/invoices/7`, not `/v1/invoices/7/lines`).
    fn compile_paths(texts: &[String]) -> Result<Self, String> {
        texts
            .iter()
            .map(|text| {
                let glob = GlobBuilder::new(text)
                    .literal_separator(true)
                    .backslash_escape(true)
                    .build()
                    .map_err(|e| format!("invalid path pattern `{text}`: {e}"))?;
                Ok(Pattern {
                    text: text.clone(),
                    // `*` stops at `/` here: always the glob engine.
                    matcher: Matcher::Glob(glob.compile_matcher()),
                    literal: !text.contains(['*', '?', '[', '{']),
                })
            })
            .collect::<Result<_, String>>()
            .map(Patterns)
    }

    /// Whether `name` matches. With `literal_only`, only a pattern spelling the name
    /// exactly counts: dangerous objects are never covered by a glob.
    pub fn matches(&self, name: &str, literal_only: bool) -> bool {
        self.0.iter().any(|p| {
            if literal_only {
                p.literal && p.text == name
            } else {
                p.matcher.is_match(&p.text, name)
            }
        })
    }
}

/// One rule ready for matching.
#[derive(Debug, Clone)]
pub struct CompiledRule {
    pub at: RuleRef,
    pub actions: Option<Vec<Action>>,
    pub tables: Option<Patterns>,
    pub functions: Option<Patterns>,
    pub settings: Option<Patterns>,
    /// For approve rules: who approves and how.
    pub approval: Option<Approval>,
    /// HTTP/Kubernetes rules are kept for their protocol crates; SQL judging skips them.
    pub is_sql: bool,
    /// HTTP: methods (upper case) and path globs; `None` matches any.
    pub methods: Option<Vec<String>>,
    pub paths: Option<Patterns>,
    pub is_http: bool,
    /// Kubernetes: the rule's attributes; `None` for other rules.
    pub kubernetes: Option<KubeRule>,
    /// Kubernetes: what Secrets this rule lets through keep of their values.
    pub secret_data: SecretData,
}

/// A Kubernetes rule's attributes; a field left out matches any value.
#[derive(Debug, Clone)]
pub struct KubeRule {
    /// Lower case; `*` any.
    pub verbs: Option<Vec<String>>,
    /// `""` is the core group; `*` any.
    pub api_groups: Option<Vec<String>>,
    /// `pods`, `pods/log`, `pods/*`: `*` stays within one segment, so `*` alone names no
    /// subresource.
    pub resources: Option<Patterns>,
    pub namespaces: Option<Patterns>,
    pub names: Option<Patterns>,
    pub non_resource_urls: Option<Patterns>,
}

impl CompiledRule {
    fn compile(
        policy: &str,
        section: Section,
        index: usize,
        rule: &Spanned<Rule>,
    ) -> Result<Self, String> {
        let r = &rule.value;
        let at = RuleRef {
            policy: policy.to_string(),
            section,
            index,
            line: rule.referenced.line() as u32,
        };
        let compile =
            |list: &Option<Vec<String>>| list.as_deref().map(Patterns::compile).transpose();
        let approval = (section == Section::Approve).then(|| Approval {
            rule: at.clone(),
            approvers: r.approvers.clone().unwrap_or_default(),
            mode: r.mode.unwrap_or(ApprovalMode::Hold),
            timeout: r.timeout.map(|t| t.0).unwrap_or(DEFAULT_APPROVAL_TIMEOUT),
            min_approvals: r.min_approvals.unwrap_or(1),
        });
        Ok(CompiledRule {
            at,
            actions: r.actions.clone(),
            tables: compile(&r.tables)?,
            functions: compile(&r.functions)?,
            settings: compile(&r.settings)?,
            approval,
            is_sql: r.has_sql_fields(),
            methods: r
                .methods
                .as_ref()
                .map(|m| m.iter().map(|m| m.to_ascii_uppercase()).collect()),
            paths: r
                .paths
                .as_deref()
                .map(Patterns::compile_paths)
                .transpose()?,
            is_http: r.has_http_fields(),
            kubernetes: r
                .has_kubernetes_fields()
                .then(|| -> Result<KubeRule, String> {
                    let paths = |list: &Option<Vec<String>>| {
                        list.as_deref().map(Patterns::compile_paths).transpose()
                    };
                    let lower = |list: &Option<Vec<String>>| {
                        list.as_ref()
                            .map(|l| l.iter().map(|v| v.to_ascii_lowercase()).collect())
                    };
                    Ok(KubeRule {
                        verbs: lower(&r.verbs),
                        api_groups: r.api_groups.clone(),
                        resources: paths(&r.resources)?,
                        namespaces: compile(&r.namespaces)?,
                        names: compile(&r.names)?,
                        non_resource_urls: paths(&r.non_resource_urls)?,
                    })
                })
                .transpose()?,
            secret_data: r.secret_data.unwrap_or_default(),
        })
    }

    /// Whether the rule restricts which objects it applies to.
    pub fn has_object_constraints(&self) -> bool {
        self.tables.is_some() || self.functions.is_some() || self.settings.is_some()
    }
}

/// A mask with its patterns compiled: for a column mask `schema.table.column`, the matcher
/// of the whole pattern and of its `schema.table` part, so deciding which masks a statement
/// needs compiles nothing.
#[derive(Debug, Clone)]
pub struct CompiledMask {
    pub spec: MaskSpec,
    /// The mask rule, for refusals made in its name.
    pub at: RuleRef,
    table: Option<GlobMatcher>,
    column: Option<GlobMatcher>,
}

impl CompiledMask {
    fn new(spec: MaskSpec, at: RuleRef) -> Self {
        // Validated at load; a pattern that still fails to compile masks everything.
        let compile = |pattern: &str| {
            Glob::new(pattern)
                .unwrap_or_else(|_| Glob::new("*").expect("valid"))
                .compile_matcher()
        };
        let (table, column) = match &spec {
            MaskSpec::Column { column, .. } => {
                let table_part = column.rsplit_once('.').map_or(column.as_str(), |(t, _)| t);
                (Some(compile(table_part)), Some(compile(column)))
            }
            _ => (None, None),
        };
        CompiledMask {
            spec,
            at,
            table,
            column,
        }
    }

    /// Whether the mask can apply to rows read from `tables` (`schema.table` names).
    pub fn applies_to(&self, tables: &[String]) -> bool {
        match (&self.spec, &self.table) {
            (MaskSpec::Column { .. }, Some(glob)) => tables.iter().any(|t| glob.is_match(t)),
            (MaskSpec::Detect { .. }, _) => true,
            _ => false,
        }
    }

    /// For a column mask: whether it masks `column` of `table`, or, with no column (a whole
    /// row, or a column the classifier cannot name), any column of `table`. Detector and
    /// JSON masks cover no column.
    pub fn covers(&self, table: &QualifiedName, column: Option<&str>) -> bool {
        match (column, &self.table, &self.column) {
            (Some(column), _, Some(glob)) => glob.is_match(format!("{table}.{column}")),
            (None, Some(glob), _) => glob.is_match(table.to_string()),
            _ => false,
        }
    }

    /// The column part of a column mask's pattern (`email` of `public.customers.email`).
    pub fn column_part(&self) -> Option<&str> {
        match &self.spec {
            MaskSpec::Column { column, .. } => {
                Some(column.rsplit_once('.').map_or(column.as_str(), |(_, c)| c))
            }
            _ => None,
        }
    }
}

/// One policy ready for matching.
#[derive(Debug, Clone)]
pub struct CompiledPolicy {
    pub name: String,
    pub matcher: Match,
    pub connections: Vec<String>,
    pub allow: Vec<CompiledRule>,
    pub deny: Vec<CompiledRule>,
    pub approve: Vec<CompiledRule>,
    pub masks: Vec<CompiledMask>,
    /// Whether conditions may read this policy's masked columns.
    pub mask_predicates: MaskPredicates,
    pub limits: EffectiveLimits,
}

impl CompiledPolicy {
    /// DESIGN.md §1: the provider, if named, must be the principal's; then any listed
    /// subject, role or group suffices.
    pub fn matches_principal(&self, principal: &Principal) -> bool {
        let m = &self.matcher;
        if m.provider
            .as_ref()
            .is_some_and(|p| *p != principal.provider)
        {
            return false;
        }
        m.subjects.contains(&principal.subject)
            || m.roles.iter().any(|r| principal.has_role(r))
            || m.groups.iter().any(|g| principal.in_group(g))
    }
}

/// Every policy of a config.
#[derive(Debug, Clone, Default)]
pub struct PolicySet {
    pub policies: Vec<Arc<CompiledPolicy>>,
}

impl PolicySet {
    /// Compiles the policies of a validated config.
    pub fn compile(config: &Config) -> Result<Self, String> {
        let mut policies = Vec::with_capacity(config.policies.len());
        for policy in &config.policies {
            let p = &policy.value;
            let rules = |section: Section, list: &[Spanned<Rule>]| {
                list.iter()
                    .enumerate()
                    .map(|(i, r)| CompiledRule::compile(&p.name, section, i + 1, r))
                    .collect::<Result<Vec<_>, String>>()
            };
            let mut masks = Vec::new();
            for (index, rule) in p.mask.iter().enumerate() {
                let m = &rule.value;
                let at = RuleRef {
                    policy: p.name.clone(),
                    section: Section::Mask,
                    index: index + 1,
                    line: rule.referenced.line() as u32,
                };
                let mut specs = Vec::new();
                for column in m.columns.iter().flatten() {
                    specs.push(MaskSpec::Column {
                        column: column.clone(),
                        with: m.with,
                        policy: p.name.clone(),
                    });
                }
                if let Some(detectors) = &m.detect {
                    specs.push(MaskSpec::Detect {
                        detectors: detectors.clone(),
                        with: m.with,
                        policy: p.name.clone(),
                    });
                }
                if let Some(path) = &m.json {
                    specs.push(MaskSpec::Json {
                        path: path.clone(),
                        with: m.with,
                        policy: p.name.clone(),
                    });
                }
                masks.extend(
                    specs
                        .into_iter()
                        .map(|spec| CompiledMask::new(spec, at.clone())),
                );
            }
            let limits = p
                .limits
                .as_ref()
                .map(|l| EffectiveLimits {
                    max_rows: l.max_rows,
                    statement_timeout: l.statement_timeout.map(|d| d.0),
                })
                .unwrap_or_default();
            policies.push(Arc::new(CompiledPolicy {
                name: p.name.clone(),
                matcher: p.matches.value.clone(),
                connections: p.connections.iter().map(|c| c.value.clone()).collect(),
                allow: rules(Section::Allow, &p.allow)?,
                deny: rules(Section::Deny, &p.deny)?,
                approve: rules(Section::Approve, &p.approve)?,
                masks,
                mask_predicates: p.mask_predicates,
                limits,
            }));
        }
        Ok(PolicySet { policies })
    }

    /// The policies that apply to `principal` on `connection`, for the whole session.
    pub fn for_session(&self, principal: &Principal, connection: &str) -> SessionPolicy {
        let applicable = self
            .policies
            .iter()
            .filter(|p| {
                p.connections.iter().any(|c| c == connection) && p.matches_principal(principal)
            })
            .cloned()
            .collect();
        SessionPolicy::new(applicable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every shape a string test takes agrees with the glob engine, on names that match,
    /// nearly match, and hold the characters globs treat specially.
    #[test]
    fn string_tests_agree_with_the_glob_engine() {
        let patterns = [
            "public.orders",
            "public.*",
            "*.email",
            "*",
            "*orders*",
            "public.ord?rs",
            "public.[o]rders",
            "{public,sales}.orders",
            "public.\\*",
            "",
            "pg_catalog.pg_read_file",
            "*.",
            "public.*.x",
        ];
        let names = [
            "public.orders",
            "public.",
            "public",
            "public.orders.email",
            "sales.orders",
            "x.email",
            ".email",
            "email",
            "PUBLIC.ORDERS",
            "public.*",
            "",
            "pg_catalog.pg_read_file",
            "public.a.x",
            "a/b.email",
            "ünïcode.email",
        ];
        let mut shapes = std::collections::HashSet::new();
        for pattern in patterns {
            let glob = Glob::new(pattern).unwrap();
            let engine = glob.compile_matcher();
            let matcher = Matcher::of(pattern, &glob);
            shapes.insert(std::mem::discriminant(&matcher));
            for name in names {
                assert_eq!(
                    matcher.is_match(pattern, name),
                    engine.is_match(name),
                    "{pattern:?} against {name:?} ({matcher:?})"
                );
            }
        }
        assert_eq!(shapes.len(), 4, "every shape is exercised");
    }
}
