//! Value flow: for every column a statement references, how its value is used.

use sluice_sql::{classify, SearchPath, Usage, ValueFlows, Via};

fn flows_of(sql: &str) -> ValueFlows {
    let class = classify(sql, &SearchPath::default()).unwrap_or_else(|e| panic!("{sql}: {e}"));
    assert_eq!(class.statements.len(), 1, "{sql}");
    class.statements[0].flows.clone()
}

/// `table.column usage` (`*` for any column; `direct->name` for a renamed result column).
fn flows(sql: &str) -> Vec<String> {
    flows_of(sql)
        .columns
        .iter()
        .map(|f| {
            let usage = match f.usage {
                Usage::Direct => "direct".to_string(),
                Usage::Derived(via) => format!("derived:{}", via_name(via)),
                Usage::WholeRow => "whole_row".to_string(),
                Usage::Predicate => "predicate".to_string(),
            };
            let output = f
                .output
                .as_deref()
                .map(|o| format!("->{o}"))
                .unwrap_or_default();
            format!(
                "{}.{} {usage}{output}",
                f.table,
                f.column.as_deref().unwrap_or("*")
            )
        })
        .collect()
}

fn via_name(via: Via) -> &'static str {
    match via {
        Via::Expression => "expression",
        Via::SetOperation => "set_operation",
        Via::Returning => "returning",
        Via::Copy => "copy",
        Via::ErrorMessage => "error_message",
    }
}

fn has(sql: &str, expected: &[&str]) {
    let mut want: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
    want.sort();
    let mut got = flows(sql);
    got.sort();
    assert_eq!(got, want, "{sql}");
}

#[test]
fn plain_columns_stars_and_aliases_are_direct() {
    has(
        "SELECT email FROM customers",
        &["public.customers.email direct"],
    );
    has(
        "SELECT c.email AS contact FROM customers c",
        &["public.customers.email direct->contact"],
    );
    has(
        "SELECT (email) FROM customers",
        &["public.customers.email direct"],
    );
    has("SELECT * FROM customers", &["public.customers.* direct"]);
    has(
        "SELECT c.* FROM customers c",
        &["public.customers.* direct"],
    );
    has("TABLE customers", &["public.customers.* direct"]);
    has(
        "SELECT public.customers.email FROM customers",
        &["public.customers.email direct"],
    );
    has(
        "SELECT customers.email FROM public.customers",
        &["public.customers.email direct"],
    );
    has("SELECT count(*) FROM customers", &[]);
    has("SELECT 1", &[]);
}

#[test]
fn conditions_are_predicates() {
    has(
        "SELECT email FROM customers WHERE email LIKE '%x'",
        &[
            "public.customers.email direct",
            "public.customers.email predicate",
        ],
    );
    has(
        "SELECT name, card_number FROM customers ORDER BY id",
        &[
            "public.customers.card_number direct",
            "public.customers.id predicate",
            "public.customers.name direct",
        ],
    );
    has(
        "SELECT o.total FROM orders o JOIN customers c ON c.id = o.customer_id AND c.ssn = 'x'",
        &[
            "public.customers.id predicate",
            "public.customers.ssn predicate",
            "public.orders.customer_id predicate",
            "public.orders.total direct",
        ],
    );
    has(
        "SELECT name FROM customers GROUP BY name, email HAVING max(ssn) > 'a'",
        &[
            "public.customers.email predicate",
            "public.customers.name direct",
            "public.customers.name predicate",
            "public.customers.ssn predicate",
        ],
    );
    has(
        "SELECT DISTINCT ON (ssn) name FROM customers",
        &[
            "public.customers.name direct",
            "public.customers.ssn predicate",
        ],
    );
    has(
        "SELECT count(*) FROM customers c WHERE EXISTS (SELECT c.email)",
        &["public.customers.email predicate"],
    );
    // A position (its value is not read) may name any output column.
    has(
        "SELECT name, email FROM customers ORDER BY 2",
        &[
            "public.customers.email direct",
            "public.customers.email predicate",
            "public.customers.name direct",
            "public.customers.name predicate",
        ],
    );
    // An output name in ORDER BY stands for what the output is made of.
    has(
        "SELECT upper(name) AS n FROM customers ORDER BY n",
        &[
            "public.customers.name derived:expression",
            "public.customers.name predicate",
        ],
    );
}

#[test]
fn expressions_functions_operators_and_casts_are_derived() {
    for sql in [
        "SELECT upper(email) FROM customers",
        "SELECT email || '' FROM customers",
        "SELECT email::text FROM customers",
        "SELECT CAST(email AS varchar(20)) FROM customers",
        "SELECT email COLLATE \"C\" FROM customers",
        "SELECT max(email) FROM customers",
        "SELECT count(email) FROM customers",
        "SELECT coalesce(email, '') FROM customers",
        "SELECT CASE WHEN email = 'x' THEN 1 END FROM customers",
        "SELECT ARRAY[email] FROM customers",
        "SELECT (SELECT email FROM customers LIMIT 1)",
        "SELECT ARRAY(SELECT email FROM customers)",
        "SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY email) FROM customers",
    ] {
        has(sql, &["public.customers.email derived:expression"]);
    }
    has(
        "SELECT ssn::varchar(20) FROM customers",
        &["public.customers.ssn derived:expression"],
    );
}

#[test]
fn window_functions_read_their_partitions_and_derive_their_arguments() {
    has(
        "SELECT email, row_number() OVER (PARTITION BY ssn ORDER BY card_number) FROM customers",
        &[
            "public.customers.card_number predicate",
            "public.customers.email direct",
            "public.customers.ssn predicate",
        ],
    );
    has(
        "SELECT lag(email) OVER w FROM customers WINDOW w AS (ORDER BY id)",
        &[
            "public.customers.email derived:expression",
            "public.customers.id predicate",
        ],
    );
    has(
        "SELECT count(*) FILTER (WHERE ssn LIKE '0%'), string_agg(name, ',' ORDER BY email) FROM customers",
        &[
            "public.customers.email predicate",
            "public.customers.name derived:expression",
            "public.customers.ssn predicate",
        ],
    );
}

#[test]
fn whole_rows_are_whole_rows() {
    // A bare name is a column if a table has one by that name, else the whole row: both.
    has(
        "SELECT c FROM customers c",
        &["public.customers.* whole_row", "public.customers.c direct"],
    );
    has(
        "SELECT row_to_json(c) FROM customers c",
        &[
            "public.customers.* whole_row",
            "public.customers.c derived:expression",
        ],
    );
    has(
        "SELECT to_jsonb(c.*) FROM customers c",
        &["public.customers.* whole_row"],
    );
    has(
        "SELECT c.*::text FROM customers c",
        &["public.customers.* whole_row"],
    );
    // A subquery's whole row carries its own columns (and it has no column `s`).
    has(
        "SELECT row_to_json(s) FROM (SELECT id, email FROM customers) s",
        &[
            "public.customers.email whole_row",
            "public.customers.id whole_row",
        ],
    );
}

#[test]
fn subqueries_and_ctes_keep_plain_references_direct() {
    has(
        "SELECT * FROM (SELECT email FROM customers) s",
        &["public.customers.email direct"],
    );
    has(
        "WITH x AS (SELECT email FROM customers) SELECT * FROM x",
        &["public.customers.email direct"],
    );
    has(
        "SELECT s.x FROM (SELECT email AS x FROM customers) s",
        &["public.customers.email direct->x"],
    );
    has(
        "WITH x(e) AS (SELECT email FROM customers) SELECT y.e FROM x AS y",
        &["public.customers.email direct->e"],
    );
    has(
        "SELECT s.email FROM (SELECT * FROM customers) s",
        &["public.customers.email direct"],
    );
    has(
        "SELECT s.x FROM customers c, LATERAL (SELECT c.email AS x) s",
        &["public.customers.email direct->x"],
    );
    // A CTE shadows the table of the same name, outside its own body.
    has(
        "WITH customers AS (SELECT note AS email FROM orders) SELECT email FROM customers",
        &["public.orders.note direct->email"],
    );
}

#[test]
fn subquery_and_cte_outputs_used_in_expressions_are_derived_at_their_source() {
    has(
        "SELECT upper(x) FROM (SELECT email AS x FROM customers) s",
        &["public.customers.email derived:expression"],
    );
    has(
        "WITH x AS (SELECT email FROM customers) SELECT length(email) FROM x",
        &["public.customers.email derived:expression"],
    );
    has(
        "SELECT s.upper FROM (SELECT upper(email) FROM customers) s",
        &["public.customers.email derived:expression"],
    );
    has(
        "SELECT s.email FROM (SELECT (SELECT email FROM customers LIMIT 1)) s",
        &["public.customers.email derived:expression"],
    );
    has(
        "SELECT upper(s.email) FROM (SELECT * FROM customers) s",
        &["public.customers.email derived:expression"],
    );
    // Column aliases over a `*`: which column `e` is cannot be told, so any column.
    has(
        "SELECT upper(s.e) FROM (SELECT * FROM customers) s(i, n, e)",
        &[
            "public.customers.* derived:expression",
            "public.customers.e derived:expression",
        ],
    );
    // An output nobody selects is still read (DISTINCT makes it count).
    has(
        "SELECT count(*) FROM (SELECT DISTINCT email FROM customers) s",
        &["public.customers.email predicate"],
    );
}

#[test]
fn unqualified_columns_with_several_tables_in_scope_name_every_candidate() {
    has(
        "SELECT email FROM customers c JOIN orders o ON o.customer_id = c.id",
        &[
            "public.customers.email direct",
            "public.customers.id predicate",
            "public.orders.customer_id predicate",
            "public.orders.email direct",
        ],
    );
    has(
        "SELECT upper(note) FROM customers, orders",
        &[
            "public.customers.note derived:expression",
            "public.orders.note derived:expression",
        ],
    );
    // An outer query's tables are candidates of a subquery's unqualified names.
    has(
        "SELECT id FROM customers WHERE id IN (SELECT customer_id FROM orders)",
        &[
            "public.customers.customer_id predicate",
            "public.customers.id direct",
            "public.customers.id predicate",
            "public.orders.customer_id predicate",
        ],
    );
    // ... but not once a subquery output certainly has the name.
    has(
        "SELECT (SELECT max(s.x) FROM (SELECT o.name AS x FROM orders o) s WHERE x > '') FROM customers",
        &[
            "public.orders.name derived:expression",
            "public.orders.name predicate",
        ],
    );
}

#[test]
fn joins_merge_using_columns() {
    // FULL JOIN USING merges with COALESCE: no origin.
    has(
        "SELECT email FROM customers a FULL JOIN customers b USING (email)",
        &[
            "public.customers.email derived:expression",
            "public.customers.email predicate",
        ],
    );
    has(
        "SELECT email FROM customers a JOIN customers b USING (email)",
        &[
            "public.customers.email direct",
            "public.customers.email predicate",
        ],
    );
    has(
        "SELECT j.email FROM (customers c JOIN orders o ON true) AS j",
        &[
            "public.customers.email direct",
            "public.orders.email direct",
        ],
    );
    has(
        "SELECT u.id FROM customers a JOIN orders b USING (id) AS u",
        &[
            "public.customers.id direct",
            "public.customers.id predicate",
            "public.orders.id direct",
            "public.orders.id predicate",
        ],
    );
}

#[test]
fn set_operations_have_no_origin() {
    has(
        "SELECT email FROM customers UNION SELECT note FROM orders",
        &[
            "public.customers.email derived:set_operation",
            "public.orders.note derived:set_operation",
        ],
    );
    has(
        "SELECT * FROM customers INTERSECT SELECT * FROM customers",
        &["public.customers.* derived:set_operation"],
    );
    has(
        "SELECT * FROM (SELECT email FROM customers EXCEPT SELECT note FROM orders) s",
        &[
            "public.customers.email derived:set_operation",
            "public.orders.note derived:set_operation",
        ],
    );
    assert!(
        flows_of("SELECT email FROM customers UNION ALL SELECT email FROM customers").set_operation
    );
    has(
        "WITH RECURSIVE r(n, e) AS (SELECT 1, email FROM customers UNION ALL SELECT n + 1, e FROM r WHERE n < 3) SELECT e FROM r",
        &[
            "public.customers.email derived:set_operation",
            "public.customers.email predicate",
        ],
    );
    // VALUES has no origin either.
    has(
        "SELECT v.b FROM customers c, LATERAL (VALUES (c.email)) v(b)",
        &["public.customers.email derived:expression"],
    );
}

#[test]
fn dml_returning_and_copies_are_derived() {
    has(
        "UPDATE customers SET name = email WHERE id = 1 RETURNING email",
        &[
            "public.customers.email derived:copy",
            "public.customers.email derived:returning",
            "public.customers.id predicate",
        ],
    );
    has(
        "DELETE FROM customers RETURNING *",
        &["public.customers.* derived:returning"],
    );
    has(
        "WITH d AS (DELETE FROM customers RETURNING email) SELECT * FROM d",
        &["public.customers.email derived:returning"],
    );
    has(
        "INSERT INTO orders (note) SELECT email FROM customers",
        &["public.customers.email derived:copy"],
    );
    has(
        "INSERT INTO orders (id, note) SELECT id, note FROM orders_archive ON CONFLICT (id) DO UPDATE SET note = excluded.note",
        &[
            "public.orders_archive.id derived:copy",
            "public.orders_archive.note derived:copy",
        ],
    );
    has(
        "MERGE INTO orders o USING customers c ON o.customer_id = c.id WHEN MATCHED THEN UPDATE SET note = c.email",
        &[
            "public.customers.email derived:copy",
            "public.customers.id predicate",
            "public.orders.customer_id predicate",
        ],
    );
    has(
        "CREATE TABLE t AS SELECT email FROM customers",
        &["public.customers.email derived:copy"],
    );
    has(
        "SELECT email INTO t FROM customers",
        &["public.customers.email derived:copy"],
    );
    has(
        "COPY (SELECT email FROM customers) TO STDOUT",
        &["public.customers.email derived:copy"],
    );
    // The data path masks a table's COPY to the client in text or CSV with default options.
    has("COPY customers TO STDOUT", &["public.customers.* direct"]);
    has(
        "COPY customers (email) TO STDOUT (FORMAT csv, HEADER)",
        &["public.customers.email direct"],
    );
    for sql in [
        "COPY customers TO STDOUT (FORMAT binary)",
        "COPY customers TO STDOUT (DELIMITER ';')",
        "COPY customers TO '/tmp/customers.txt'",
        "COPY customers TO PROGRAM 'cat'",
    ] {
        has(sql, &["public.customers.* derived:copy"]);
        assert!(flows_of(sql).copies, "{sql}");
    }
    has("COPY customers FROM STDIN", &[]);
    let f = flows_of("INSERT INTO orders (note) SELECT email FROM customers RETURNING note");
    assert!(f.copies && f.returning);
}

#[test]
fn casts_and_functions_in_conditions_may_show_the_value_in_an_error() {
    // `invalid input syntax for type integer: "078-05-1120"`.
    has(
        "SELECT id FROM customers WHERE ssn::int = 0",
        &[
            "public.customers.id direct",
            "public.customers.ssn derived:error_message",
        ],
    );
    has(
        "SELECT id FROM customers WHERE int4(upper(ssn)) = 0",
        &[
            "public.customers.id direct",
            "public.customers.ssn derived:error_message",
        ],
    );
    has(
        "SELECT 1 WHERE 0 = (SELECT ssn::int FROM customers LIMIT 1)",
        &["public.customers.ssn derived:error_message"],
    );
    // `relation "078-05-1120" does not exist`.
    has(
        "SELECT id FROM customers WHERE has_table_privilege(ssn, 'select')",
        &[
            "public.customers.id direct",
            "public.customers.ssn derived:error_message",
        ],
    );
    // Comparing, and functions that accept any value, show nothing.
    has(
        "SELECT id FROM customers WHERE lower(ssn) LIKE 'a%' AND ssn IN ('a', 'b') ORDER BY length(ssn)",
        &["public.customers.id direct", "public.customers.ssn predicate"],
    );
    has(
        "SELECT max(id) FROM customers HAVING count(DISTINCT ssn) > 1",
        &[
            "public.customers.id derived:expression",
            "public.customers.ssn predicate",
        ],
    );
}

#[test]
fn nested_statements() {
    has(
        "PREPARE p AS SELECT upper(email) FROM customers",
        &["public.customers.email derived:expression"],
    );
    has(
        "DECLARE c CURSOR FOR SELECT email FROM customers",
        &["public.customers.email direct"],
    );
    // EXPLAIN returns a plan, not rows; with ANALYZE the statement runs.
    has("EXPLAIN SELECT upper(email) FROM customers", &[]);
    has(
        "EXPLAIN ANALYZE SELECT upper(email) FROM customers",
        &["public.customers.email predicate"],
    );
    has(
        "EXPLAIN ANALYZE INSERT INTO orders (note) SELECT email FROM customers",
        &["public.customers.email derived:copy"],
    );
    assert!(flows_of("CREATE TABLE t AS EXECUTE p").unknown.is_some());
}

#[test]
fn flows_do_not_depend_on_constants() {
    // The shape cache gives texts that differ only in constants one classification.
    for (a, b) in [
        (
            "SELECT email FROM customers ORDER BY 1",
            "SELECT email FROM customers ORDER BY 2",
        ),
        (
            "SELECT ssn::varchar(20) FROM customers",
            "SELECT ssn::varchar(9) FROM customers",
        ),
        (
            "SELECT email FROM customers WHERE id = 1 LIMIT 5",
            "SELECT email FROM customers WHERE id = 'x' LIMIT 50",
        ),
    ] {
        assert_eq!(flows_of(a), flows_of(b), "{a} / {b}");
    }
}

#[test]
fn mutually_recursive_ctes_are_refused_as_postgresql_does() {
    let err = classify(
        "WITH RECURSIVE a AS (SELECT * FROM b), b AS (SELECT * FROM a) SELECT * FROM a",
        &SearchPath::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("mutual recursion"), "{err}");
    // A forward reference in a RECURSIVE list is fine: PostgreSQL orders them.
    has(
        "WITH RECURSIVE a AS (SELECT * FROM b), b AS (SELECT email FROM customers) SELECT * FROM a",
        &["public.customers.email direct"],
    );
}
