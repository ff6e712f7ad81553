//! Classification of single statements: actions, objects, nesting and scoping.

use sluice_core::Action;
use sluice_sql::{classify, Access, Object, SearchPath};

/// `action object` strings for every access of a one-statement string.
fn accesses(sql: &str) -> Vec<String> {
    let class = classify(sql, &SearchPath::default()).unwrap_or_else(|e| panic!("{sql}: {e}"));
    assert_eq!(class.statements.len(), 1, "{sql}");
    class.statements[0].accesses.iter().map(render).collect()
}

fn render(a: &Access) -> String {
    let object = match &a.object {
        Object::None => String::new(),
        Object::Table(n) | Object::Function(n) => format!(" {n}"),
        Object::Setting(s) => format!(" setting:{s}"),
        Object::Unknown(_) => " ?".to_string(),
    };
    format!(
        "{}{}{}",
        a.action,
        object,
        if a.explicit_only { "!" } else { "" }
    )
}

fn has(sql: &str, expected: &[&str]) {
    let got = accesses(sql);
    let mut want: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
    want.sort();
    let mut got_sorted = got.clone();
    got_sorted.sort();
    assert_eq!(got_sorted, want, "{sql}");
}

#[test]
fn reads_and_joins() {
    has("SELECT * FROM orders", &["select public.orders"]);
    has(
        "SELECT o.id, c.name FROM orders o JOIN customers c ON c.id = o.customer_id",
        &["select public.customers", "select public.orders"],
    );
    has("SELECT 1", &[]);
    has("VALUES (1), (2)", &[]);
    has("TABLE orders", &["select public.orders"]);
    has(
        "SELECT * FROM \"public\".\"Orders\"",
        &["select public.Orders"],
    );
    has("SELECT * FROM PUBLIC.ORDERS", &["select public.orders"]);
}

#[test]
fn unqualified_pg_names_may_resolve_to_pg_catalog() {
    has(
        "SELECT * FROM pg_authid",
        &["select pg_catalog.pg_authid", "select public.pg_authid"],
    );
}

#[test]
fn search_path_gives_one_candidate_per_schema() {
    let path = SearchPath::new(["app", "public"]);
    let class = classify("SELECT * FROM t", &path).unwrap();
    let got: Vec<String> = class.statements[0].accesses.iter().map(render).collect();
    assert_eq!(got, vec!["select app.t", "select public.t"]);
}

#[test]
fn subqueries_everywhere_are_reads() {
    has(
        "SELECT (SELECT count(*) FROM secrets)",
        &["select public.secrets"],
    );
    has(
        "SELECT * FROM orders WHERE id IN (SELECT id FROM secrets)",
        &["select public.orders", "select public.secrets"],
    );
    has(
        "SELECT * FROM orders WHERE EXISTS (SELECT 1 FROM secrets s WHERE s.id = orders.id)",
        &["select public.orders", "select public.secrets"],
    );
    has(
        "SELECT * FROM orders o, LATERAL (SELECT * FROM secrets) s",
        &["select public.orders", "select public.secrets"],
    );
    has(
        "SELECT 1 UNION SELECT id FROM secrets",
        &["select public.secrets"],
    );
    has(
        "SELECT count(*) FILTER (WHERE id IN (SELECT id FROM secrets)) FROM orders",
        &["select public.orders", "select public.secrets"],
    );
}

#[test]
fn cte_names_shadow_tables_only_in_scope() {
    has(
        "WITH x AS (SELECT * FROM orders) SELECT count(*) FROM x",
        &["select public.orders"],
    );
    // A non-recursive CTE's body reads the real table of the same name.
    has(
        "WITH secrets AS (SELECT * FROM secrets) SELECT * FROM secrets",
        &["select public.secrets"],
    );
    // A CTE in a subquery does not shadow the table outside it.
    has(
        "SELECT * FROM (WITH secrets AS (SELECT 1) SELECT * FROM secrets) x, secrets",
        &["select public.secrets"],
    );
    // Later CTEs see earlier ones.
    has(
        "WITH a AS (SELECT * FROM orders), b AS (SELECT * FROM a) SELECT * FROM b",
        &["select public.orders"],
    );
    // Recursive CTEs see themselves.
    has(
        "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t WHERE n < 5) SELECT * FROM t",
        &[],
    );
    // A schema-qualified name is never a CTE.
    has(
        "WITH secrets AS (SELECT 1) SELECT * FROM public.secrets",
        &["select public.secrets"],
    );
}

#[test]
fn dml_and_nested_dml() {
    has("DELETE FROM orders", &["delete public.orders"]);
    has(
        "UPDATE orders SET total = 0 WHERE customer_id IN (SELECT id FROM customers)",
        &["update public.orders", "select public.customers"],
    );
    has(
        "INSERT INTO orders (customer_id, total) SELECT id, 1 FROM customers",
        &["insert public.orders", "select public.customers"],
    );
    has(
        "INSERT INTO orders (id, total) VALUES (1, 1) ON CONFLICT (id) DO UPDATE SET total = 2",
        &["insert public.orders", "update public.orders"],
    );
    has(
        "INSERT INTO orders (id, total) VALUES (1, 1) ON CONFLICT DO NOTHING",
        &["insert public.orders"],
    );
    has(
        "WITH d AS (DELETE FROM orders RETURNING *) SELECT * FROM d",
        &["delete public.orders"],
    );
    has(
        "MERGE INTO orders o USING orders_archive a ON o.id = a.id WHEN MATCHED THEN DELETE",
        &["merge public.orders", "select public.orders_archive"],
    );
    has(
        "DELETE FROM orders USING secrets WHERE orders.id = secrets.id",
        &["delete public.orders", "select public.secrets"],
    );
}

#[test]
fn explain_runs_only_with_analyze() {
    has("EXPLAIN SELECT * FROM orders", &["select public.orders"]);
    has("EXPLAIN DELETE FROM orders", &["explain public.orders"]);
    has(
        "EXPLAIN ANALYZE DELETE FROM orders",
        &["delete public.orders"],
    );
    has(
        "EXPLAIN (ANALYZE) DELETE FROM orders",
        &["delete public.orders"],
    );
    has(
        "EXPLAIN (ANALYZE true, BUFFERS) DELETE FROM orders",
        &["delete public.orders"],
    );
    has(
        "EXPLAIN (ANALYZE false) DELETE FROM orders",
        &["explain public.orders"],
    );
}

#[test]
fn creating_tables_from_queries() {
    has(
        "CREATE TABLE copy_of_orders AS SELECT * FROM orders",
        &["ddl public.copy_of_orders", "select public.orders"],
    );
    has(
        "SELECT * INTO new_orders FROM orders",
        &["ddl public.new_orders", "select public.orders"],
    );
    has(
        "CREATE MATERIALIZED VIEW mv AS SELECT * FROM secrets",
        &["ddl public.mv", "select public.secrets"],
    );
}

#[test]
fn copy() {
    has("COPY orders TO STDOUT", &["copy_out public.orders"]);
    has("COPY orders FROM STDIN", &["copy_in public.orders"]);
    has(
        "COPY (SELECT * FROM secrets) TO STDOUT",
        &["copy_out", "select public.secrets"],
    );
    has(
        "COPY (DELETE FROM orders RETURNING *) TO STDOUT",
        &["copy_out", "delete public.orders"],
    );
    has(
        "COPY orders TO PROGRAM 'cat > /tmp/x'",
        &["copy_out public.orders", "copy_program ?"],
    );
    has(
        "COPY orders FROM '/etc/passwd'",
        &["copy_in public.orders", "copy_program ?"],
    );
}

#[test]
fn functions() {
    has(
        "SELECT lower(name) FROM customers",
        &["select public.customers"],
    );
    has("SELECT now()", &[]);
    has("SELECT pg_catalog.now()", &[]);
    has("SELECT bump_totals()", &["function public.bump_totals"]);
    has(
        "SELECT public.bump_totals()",
        &["function public.bump_totals"],
    );
    has(
        "SELECT pg_read_file('/etc/passwd')",
        &["function pg_catalog.pg_read_file!"],
    );
    has(
        "SELECT * FROM pg_read_file('/etc/passwd')",
        &["function pg_catalog.pg_read_file!"],
    );
    has(
        "SELECT lo_import('/etc/passwd')",
        &["function pg_catalog.lo_import!"],
    );
    has(
        "SELECT set_config('role', 'postgres', false)",
        &["function pg_catalog.set_config!"],
    );
    has(
        "SELECT nextval('orders_id_seq')",
        &["function pg_catalog.nextval!"],
    );
    // A dangerous name is dangerous in any schema (dblink lives in the extension's schema).
    has(
        "SELECT dblink('host=x', 'select 1')",
        &["function public.dblink!"],
    );
    // Built-ins outside the reviewed safe list need a rule.
    has(
        "SELECT current_setting('work_mem')",
        &["function pg_catalog.current_setting"],
    );
    has(
        "SELECT has_table_privilege('secrets', 'select')",
        &["function pg_catalog.has_table_privilege"],
    );
    // Function calls nested in arguments are found.
    has(
        "SELECT lower(bump_totals()::text)",
        &["function public.bump_totals"],
    );
    has(
        "SELECT count(*) FROM orders WHERE total > (SELECT max(total) FROM orders_archive)",
        &["select public.orders", "select public.orders_archive"],
    );
}

#[test]
fn procedural_and_session_statements() {
    has("DO $$ BEGIN DELETE FROM orders; END $$", &["procedural ?"]);
    has("CALL purge_orders()", &["call public.purge_orders"]);
    has("SET ROLE postgres", &["set setting:role!"]);
    has(
        "SET SESSION AUTHORIZATION postgres",
        &["set setting:session_authorization!"],
    );
    has("SET LOCAL ROLE postgres", &["set setting:role!"]);
    has("RESET ROLE", &["set setting:role"]);
    has(
        "SET statement_timeout = 0",
        &["set setting:statement_timeout"],
    );
    has("SHOW search_path", &["set setting:search_path"]);
    has(
        "SET client_encoding TO 'SJIS'",
        &["set setting:client_encoding!"],
    );
    has("SET NAMES 'SJIS'", &["set setting:client_encoding!"]);
    has(
        "SET standard_conforming_strings = off",
        &["set setting:standard_conforming_strings!"],
    );
    has("SET CONSTRAINTS ALL DEFERRED", &["transaction"]);
    has("BEGIN", &["transaction"]);
    has("COMMIT", &["transaction"]);
    has("SAVEPOINT a", &["transaction"]);
    has(
        "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE",
        &["transaction"],
    );
    has("COMMIT PREPARED 'x'", &["maintenance"]);
    has("DEALLOCATE ALL", &["transaction"]);
    has(
        "LOCK TABLE orders IN ACCESS EXCLUSIVE MODE",
        &["lock public.orders"],
    );
    has(
        "SELECT * FROM orders FOR UPDATE",
        &["select public.orders", "lock public.orders"],
    );
    has("VACUUM orders", &["maintenance public.orders"]);
    has("VACUUM", &["maintenance ?"]);
    has("NOTIFY ch, 'x'", &["notify ?"]);
    has("LISTEN ch", &["notify ?"]);
    has("GRANT ALL ON orders TO PUBLIC", &["grant public.orders"]);
    has("CREATE ROLE x", &["grant ?"]);
}

#[test]
fn ddl() {
    has("DROP TABLE orders", &["ddl public.orders"]);
    has(
        "DROP VIEW IF EXISTS public.v, app.w",
        &["ddl app.w", "ddl public.v"],
    );
    has("DROP SCHEMA app CASCADE", &["ddl ?"]);
    has(
        "ALTER TABLE orders ADD COLUMN x int",
        &["ddl public.orders"],
    );
    has("CREATE TABLE t (id int)", &["ddl public.t"]);
    has(
        "ALTER TEXT SEARCH DICTIONARY english_stem (StopWords = english)",
        &["ddl ?"],
    );
    has(
        "ALTER TEXT SEARCH CONFIGURATION english ALTER MAPPING FOR word WITH simple",
        &["ddl ?"],
    );
    has("CREATE LANGUAGE plsample", &["ddl ?"]);
    has("CREATE INDEX ON orders (id)", &["ddl public.orders"]);
    has(
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'DELETE FROM orders RETURNING 1'",
        &["ddl public.f", "procedural ?"],
    );
}

#[test]
fn prepare_and_execute() {
    let class = classify("PREPARE p AS DELETE FROM orders", &SearchPath::default()).unwrap();
    let stmt = &class.statements[0];
    assert_eq!(stmt.prepares.as_deref(), Some("p"));
    assert_eq!(stmt.actions(), vec![Action::Delete]);
    let class = classify("EXECUTE p(1)", &SearchPath::default()).unwrap();
    assert_eq!(class.statements[0].executes.as_deref(), Some("p"));
    assert!(class.statements[0].accesses.is_empty());
}

#[test]
fn multi_statement_strings_keep_each_text() {
    let class = classify(
        "SELECT * FROM orders /* ; */ ; DROP TABLE orders --",
        &SearchPath::default(),
    )
    .unwrap();
    assert_eq!(class.statements.len(), 2);
    assert_eq!(class.statements[0].text, "SELECT * FROM orders /* ; */");
    assert_eq!(class.statements[1].text, "DROP TABLE orders --");
    assert_eq!(class.statements[1].actions(), vec![Action::Ddl]);
}

#[test]
fn search_path_changes_are_reported() {
    use sluice_sql::SearchPathChange;
    let change = |sql: &str| {
        classify(sql, &SearchPath::default()).unwrap().statements[0]
            .search_path_change
            .clone()
    };
    let to = SearchPathChange::To(vec!["app".to_string(), "public".to_string()]);
    assert_eq!(change("SET search_path TO app, public"), Some(to.clone()));
    assert_eq!(change("SET LOCAL search_path = app, \"public\""), Some(to));
    assert_eq!(change("RESET search_path"), Some(SearchPathChange::Reset));
    assert_eq!(
        change("SET search_path TO DEFAULT"),
        Some(SearchPathChange::Reset)
    );
    assert_eq!(change("RESET ALL"), Some(SearchPathChange::Reset));
    assert_eq!(change("DISCARD ALL"), Some(SearchPathChange::Reset));
    assert_eq!(
        change("SET search_path FROM CURRENT"),
        Some(SearchPathChange::Unknown)
    );
    assert_eq!(change("SET work_mem = '64MB'"), None);
    assert_eq!(change("DISCARD PLANS"), None);
}

#[test]
fn unparseable_and_empty_input() {
    let err = classify("SELECT * FROM orders WHERE (", &SearchPath::default()).unwrap_err();
    assert!(err.to_string().contains("syntax error"), "{err}");
    assert!(classify("", &SearchPath::default())
        .unwrap()
        .statements
        .is_empty());
    assert!(classify("-- nothing", &SearchPath::default())
        .unwrap()
        .statements
        .is_empty());
}

#[test]
fn literals_and_comments_are_not_statements() {
    has("SELECT 'DELETE FROM orders' AS text", &[]);
    has("SELECT $$DELETE FROM orders$$", &[]);
    has("-- DELETE FROM orders\nSELECT 1", &[]);
    has(
        "SELECT id AS secrets FROM orders",
        &["select public.orders"],
    );
}

#[test]
fn copy_to_stdout_reports_its_row_shape() {
    use sluice_sql::CopyOutFormat;
    let path = SearchPath::default();
    let shape = |sql: &str| classify(sql, &path).unwrap().statements[0].copy_out.clone();
    let plain = shape("COPY customers TO STDOUT").unwrap();
    assert_eq!(plain.table.len(), 1);
    assert_eq!(plain.table[0].to_string(), "public.customers");
    assert!(plain.columns.is_empty());
    assert_eq!(plain.format, CopyOutFormat::Text);
    assert!(!plain.header && plain.other_options.is_empty());

    let csv =
        shape("COPY public.customers (email, id) TO STDOUT WITH (FORMAT csv, HEADER)").unwrap();
    assert_eq!(csv.columns, vec!["email", "id"]);
    assert_eq!(csv.format, CopyOutFormat::Csv);
    assert!(csv.header);

    let old_syntax = shape("COPY customers TO STDOUT CSV HEADER").unwrap();
    assert_eq!(old_syntax.format, CopyOutFormat::Csv);
    assert!(old_syntax.header);

    let custom =
        shape("COPY customers TO STDOUT WITH (FORMAT text, DELIMITER '|', HEADER false)").unwrap();
    assert_eq!(custom.other_options, vec!["delimiter"]);
    assert!(!custom.header);
    assert_eq!(
        shape("COPY customers TO STDOUT (FORMAT binary)")
            .unwrap()
            .format,
        CopyOutFormat::Binary
    );

    let query = shape("COPY (SELECT 1) TO STDOUT").unwrap();
    assert!(query.table.is_empty());
    assert!(shape("COPY customers FROM STDIN").is_none());
    assert!(shape("COPY customers TO '/tmp/x'").is_none());
}
