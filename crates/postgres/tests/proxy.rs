//! The PostgreSQL data path end to end: real clients through the gateway to a real
//! PostgreSQL (SCRAM auth) loaded with the policy corpus.

mod support;

use std::time::Duration;

use support::raw::{self, RawClient};
use support::{cases, Fixture, SVC_USER};
use tokio_postgres::SimpleQueryMessage;

type Rows = Vec<Vec<Option<String>>>;

fn rows(messages: Vec<SimpleQueryMessage>) -> Rows {
    messages
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(
                (0..row.len())
                    .map(|i| row.get(i).map(str::to_string))
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

fn code(err: &tokio_postgres::Error) -> String {
    err.code()
        .map(|c| c.code().to_string())
        .unwrap_or_else(|| format!("no code: {err}"))
}

#[test]
fn allowed_statements_return_what_postgres_returns() {
    let f = Fixture::start();
    let token = f.token("agent-1", &["reader"]);
    f.rt.block_on(async {
        let gateway = f.connect(&token).await.expect("login");
        let direct = f.connect_direct().await;
        for case in cases("allow.yaml") {
            let through = gateway
                .simple_query(&case.sql)
                .await
                .unwrap_or_else(|e| panic!("{}: {e}", case.sql));
            let expected = direct.simple_query(&case.sql).await.unwrap();
            let (through, expected) = (rows(through), rows(expected));
            if case.sql.contains("now()") {
                // The clock moved between the two runs: compare the shape only.
                assert_eq!(through.len(), expected.len(), "{}", case.sql);
            } else {
                assert_eq!(through, expected, "{} ({})", case.sql, case.why);
            }
            // The extended protocol: one statement per Parse.
            if !case.sql.contains(';') {
                let through = gateway
                    .query(case.sql.as_str(), &[])
                    .await
                    .unwrap_or_else(|e| panic!("{}: {e}", case.sql));
                let expected = direct.query(case.sql.as_str(), &[]).await.unwrap();
                assert_eq!(through.len(), expected.len(), "{}", case.sql);
                let names = |r: &[tokio_postgres::Row]| {
                    r.first().map(|r| {
                        r.columns()
                            .iter()
                            .map(|c| c.name().to_string())
                            .collect::<Vec<_>>()
                    })
                };
                assert_eq!(names(&through), names(&expected), "{}", case.sql);
            }
        }
    });
}

#[test]
fn refused_statements_are_refused_and_change_nothing() {
    let f = Fixture::start();
    let _ = std::fs::remove_file("/tmp/x");
    let before = f.state();
    let token = f.token("agent-1", &["reader"]);
    f.rt.block_on(async {
        let client = f.connect(&token).await.expect("login");
        for case in cases("refuse.yaml") {
            // Simple protocol.
            let err = client.simple_query(&case.sql).await.expect_err(&case.sql);
            let db = err
                .as_db_error()
                .unwrap_or_else(|| panic!("{}: {err}", case.sql));
            assert_eq!(db.code().code(), "42501", "{}: {}", case.sql, db.message());
            assert!(
                db.message().starts_with("sluice: "),
                "{}: {}",
                case.sql,
                db.message()
            );
            // Extended protocol.
            let err = client
                .query(case.sql.as_str(), &[])
                .await
                .expect_err(&case.sql);
            let code = err.as_db_error().map(|e| e.code().code().to_string());
            assert_eq!(code.as_deref(), Some("42501"), "{}: {err}", case.sql);
            // The session goes on, as the same role.
            let who = client
                .simple_query("SELECT current_user")
                .await
                .expect("session usable after refusal");
            assert_eq!(
                rows(who),
                vec![vec![Some(SVC_USER.to_string())]],
                "{}",
                case.sql
            );
        }
    });
    assert_eq!(
        f.state(),
        before,
        "a refused statement changed the database"
    );
    assert!(
        !std::path::Path::new("/tmp/x").exists(),
        "COPY TO PROGRAM ran"
    );
}

#[test]
fn psql_reads_and_sees_writes_refused() {
    let f = Fixture::start();
    let token = f.token("agent-1", &["reader"]);
    let (ok, out, err) = f.psql(&token, "SELECT count(*) FROM orders");
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "3");
    let (ok, _, err) = f.psql(&token, "DELETE FROM orders");
    assert!(!ok);
    assert!(
        err.contains("ERROR:  sluice: delete on table public.orders is not allowed"),
        "{err}"
    );
    assert_eq!(
        f.cluster
            .query_scalar(&f.db, "SELECT count(*) FROM orders")
            .unwrap(),
        "3"
    );
    // A syntax error points where PostgreSQL would: psql prints the line and a caret.
    let (ok, _, err) = f.psql(&token, "SELECT id FROM orders WHERE WHERE id = 1");
    assert!(!ok);
    assert!(err.contains("ERROR:  sluice: "), "{err}");
    assert!(
        err.contains("LINE 1: SELECT id FROM orders WHERE WHERE id = 1")
            && err.contains(&format!(
                "{}^",
                " ".repeat("LINE 1: SELECT id FROM orders WHERE ".len())
            )),
        "{err}"
    );
}

#[test]
fn a_refusal_inside_a_transaction_behaves_like_a_postgres_error() {
    let f = Fixture::start();
    let token = f.token("writer-1", &["writer"]);
    f.rt.block_on(async {
        let client = f.connect(&token).await.unwrap();
        client.simple_query("BEGIN").await.unwrap();
        client
            .simple_query("INSERT INTO orders (customer_id, total) VALUES (1, 99)")
            .await
            .unwrap();
        let err = client
            .simple_query("SELECT * FROM secrets")
            .await
            .unwrap_err();
        assert_eq!(code(&err), "42501");
        // As after any error, the transaction is aborted until it ends.
        let err = client.simple_query("SELECT 1").await.unwrap_err();
        assert_eq!(code(&err), "25P02");
        client.simple_query("COMMIT").await.unwrap();
        let count = rows(
            client
                .simple_query("SELECT count(*) FROM orders")
                .await
                .unwrap(),
        );
        assert_eq!(
            count,
            vec![vec![Some("3".to_string())]],
            "the aborted transaction's insert survived"
        );
    });
}

#[test]
fn pipelined_queries_get_their_answers_in_order() {
    let f = Fixture::start();
    let token = f.token("agent-1", &["reader"]);
    f.rt.block_on(async {
        let client = f.connect(&token).await.unwrap();
        let (a, b, c, d) = tokio::join!(
            client.query("SELECT 1::int", &[]),
            client.query("SELECT * FROM secrets", &[]),
            client.query("SELECT 2::int", &[]),
            client.query("DELETE FROM orders", &[]),
        );
        assert_eq!(a.unwrap()[0].get::<_, i32>(0), 1);
        assert_eq!(code(&b.unwrap_err()), "42501");
        assert_eq!(c.unwrap()[0].get::<_, i32>(0), 2);
        assert_eq!(code(&d.unwrap_err()), "42501");
        let prepared = client
            .prepare("SELECT id FROM orders WHERE id = $1")
            .await
            .unwrap();
        let rows = client.query(&prepared, &[&1i32]).await.unwrap();
        assert_eq!(rows.len(), 1);
    });
}

#[test]
fn extended_batches_follow_the_error_until_sync_rule() {
    let f = Fixture::start();
    let token = f.token("writer-1", &["writer"]);
    let (mut c, msgs) = RawClient::login(f.port, &token);
    assert_eq!(msgs.last().unwrap().tag, b'Z', "{:?}", raw::tags(&msgs));
    // An allowed insert, then a refused statement, in one batch: the insert's implicit
    // transaction is rolled back with the batch, and nothing after the refusal runs.
    let mut batch = Vec::new();
    batch.extend(raw::parse(
        "",
        "INSERT INTO orders (customer_id, total) VALUES (1, 5)",
    ));
    batch.extend(raw::bind("", ""));
    batch.extend(raw::execute(""));
    batch.extend(raw::parse("s2", "SELECT * FROM secrets"));
    batch.extend(raw::bind("", "s2"));
    batch.extend(raw::execute(""));
    batch.extend(raw::sync());
    c.send_raw(&batch);
    let msgs = c.read_until(b'Z');
    assert_eq!(raw::tags(&msgs), "12CEZ", "{msgs:?}");
    assert_eq!(msgs[3].code(), "42501");
    assert!(
        msgs[3]
            .message()
            .starts_with("sluice: select on table public.secrets is denied"),
        "{}",
        msgs[3].message()
    );
    assert_eq!(
        f.cluster
            .query_scalar(&f.db, "SELECT count(*) FROM orders")
            .unwrap(),
        "3"
    );

    // A refused unnamed Parse leaves no unnamed statement to bind.
    let mut batch = raw::parse("", "SELECT 1");
    batch.extend(raw::sync());
    batch.extend(raw::parse("", "DELETE FROM secrets"));
    batch.extend(raw::sync());
    batch.extend(raw::bind("", ""));
    batch.extend(raw::execute(""));
    batch.extend(raw::sync());
    c.send_raw(&batch);
    let first = c.read_until(b'Z');
    assert_eq!(raw::tags(&first), "1Z");
    let second = c.read_until(b'Z');
    assert_eq!(raw::tags(&second), "EZ");
    assert_eq!(second[0].code(), "42501");
    let third = c.read_until(b'Z');
    assert_eq!(raw::tags(&third), "EZ");
    assert_eq!(third[0].code(), "26000", "{}", third[0].message());
    assert_eq!(
        f.cluster
            .query_scalar(&f.db, "SELECT count(*) FROM secrets")
            .unwrap(),
        "1"
    );
}

#[test]
fn function_call_and_unknown_messages_are_refused() {
    let f = Fixture::start();
    let token = f.token("agent-1", &["reader"]);
    let (mut c, _) = RawClient::login(f.port, &token);
    // FunctionCall of oid 1 (whatever it is): refused, the session goes on.
    let mut body = 1i32.to_be_bytes().to_vec();
    body.extend(0i16.to_be_bytes());
    body.extend(0i16.to_be_bytes());
    body.extend(0i16.to_be_bytes());
    c.send(b'F', &body);
    let msgs = c.read_until(b'Z');
    assert_eq!(raw::tags(&msgs), "EZ");
    assert_eq!(msgs[0].code(), "42501");
    c.send(b'Q', &raw::cstr("SELECT 1"));
    assert_eq!(raw::tags(&c.read_until(b'Z')), "TDCZ");
    // A message type that has no place after startup ends the session.
    c.send(b'p', &raw::cstr("again"));
    let msgs = c.read_until(b'Z');
    assert_eq!(msgs.last().unwrap().field(b'S'), "FATAL");
    assert!(c.is_closed());
}

#[test]
fn logins_are_refused_in_postgres_terms() {
    let f = Fixture::start();
    f.rt.block_on(async {
        let err = f
            .connect("not-a-token")
            .await
            .expect_err("bad token refused");
        assert_eq!(code(&err), "28P01");
        // Expired, but within the validator's clock-skew allowance.
        let expired = f.token_with_ttl("agent-1", &["reader"], Duration::from_secs(1));
        tokio::time::sleep(Duration::from_millis(2100)).await;
        let err = f
            .connect(&expired)
            .await
            .expect_err("expired token refused");
        assert_eq!(code(&err), "28P01");
        let nobody = f.token("agent-9", &["unknown-role"]);
        let err = f.connect(&nobody).await.expect_err("no policy refused");
        assert_eq!(code(&err), "28000");
        let message = err
            .as_db_error()
            .map(|e| e.message().to_string())
            .unwrap_or_default();
        assert!(message.contains("no policy grants agent-9"), "{message}");
        let token = f.token("agent-1", &["reader"]);
        let mut config = f.client_config(&token);
        config.dbname("nope");
        let err = config
            .connect(tokio_postgres::NoTls)
            .await
            .err()
            .expect("unknown database refused");
        assert_eq!(code(&err), "3D000");
    });
    // Replication connections.
    let mut c = RawClient::connect(f.port);
    c.startup(&[
        ("user", "agent"),
        ("database", "app"),
        ("replication", "database"),
    ]);
    let m = c.read();
    assert_eq!(
        (m.tag, m.code().as_str()),
        (b'E', "28000"),
        "{}",
        m.message()
    );
    // Encodings whose multi-byte characters contain ASCII bytes could make the resource
    // read a statement differently from the gateway: only UTF-8 (and plain ASCII) pass.
    let mut c = RawClient::connect(f.port);
    c.startup(&[
        ("user", "agent"),
        ("database", "app"),
        ("client_encoding", "SJIS"),
    ]);
    let m = c.read();
    assert_eq!(
        (m.tag, m.code().as_str()),
        (b'E', "0A000"),
        "{}",
        m.message()
    );
    let token = f.token("agent-1", &["all"]);
    let (mut c, _) = RawClient::login(f.port, &token);
    c.send(b'Q', &raw::cstr("SET client_encoding TO 'SJIS'"));
    let msgs = c.read_until(b'Z');
    assert_eq!(msgs[0].code(), "42501", "{}", msgs[0].message());
    // Backslashes in literals must mean to the resource what they mean to the parser.
    c.send(b'Q', &raw::cstr("SET standard_conforming_strings = off"));
    let msgs = c.read_until(b'Z');
    assert_eq!(msgs[0].code(), "42501", "{}", msgs[0].message());
    // Values the gateway already reads by change nothing, and run (under a `set` rule).
    for unchanged in [
        "SET standard_conforming_strings = on",
        "RESET standard_conforming_strings",
        "SET client_encoding TO 'UTF8'",
        "SET NAMES 'utf8'",
        "RESET client_encoding",
    ] {
        c.send(b'Q', &raw::cstr(unchanged));
        assert_eq!(raw::tags(&c.read_until(b'Z')), "CZ", "{unchanged}");
    }
    c.send(b'Q', &raw::cstr("SELECT 'a\\b'"));
    let msgs = c.read_until(b'Z');
    assert_eq!(raw::tags(&msgs), "TDCZ");
    assert_eq!(&msgs[1].body[6..], b"a\\b", "backslashes stay literal");
    // Formatting parameters reach the resource, from the startup packet whatever their
    // case, and from `options` (libpq's PGOPTIONS).
    for (param, value, show, expected) in [
        ("datestyle", "SQL, DMY", "SHOW DateStyle", "SQL, DMY"),
        (
            "options",
            "-c intervalstyle=postgres_verbose",
            "SHOW IntervalStyle",
            "postgres_verbose",
        ),
    ] {
        let (mut c, msgs) = RawClient::login_with(f.port, &[(param, value)], &token);
        assert_eq!(msgs.last().unwrap().tag, b'Z', "{param}: {msgs:?}");
        c.send(b'Q', &raw::cstr(show));
        let msgs = c.read_until(b'Z');
        assert!(
            String::from_utf8_lossy(&msgs[1].body).contains(expected),
            "{param}: {msgs:?}"
        );
    }
    // Startup options could set the role: refused.
    let mut c = RawClient::connect(f.port);
    c.startup(&[
        ("user", "agent"),
        ("database", "app"),
        ("options", "-c role=postgres"),
    ]);
    let m = c.read();
    assert_eq!(
        (m.tag, m.code().as_str()),
        (b'E', "28000"),
        "{}",
        m.message()
    );
}

#[test]
fn cancel_reaches_the_sessions_own_query() {
    let f = Fixture::start();
    let token = f.token("writer-1", &["writer"]);
    f.rt.block_on(async {
        let client = f.connect(&token).await.unwrap();
        let cancel = client.cancel_token();
        let started = std::time::Instant::now();
        let sleeper = tokio::spawn(async move { client.simple_query("SELECT pg_sleep(30)").await });
        tokio::time::sleep(Duration::from_millis(500)).await;
        cancel.cancel_query(tokio_postgres::NoTls).await.unwrap();
        let err = sleeper.await.unwrap().unwrap_err();
        assert_eq!(code(&err), "57014");
        assert!(started.elapsed() < Duration::from_secs(20));
    });
}

#[test]
fn a_forged_cancel_key_cancels_nothing() {
    let f = Fixture::start();
    let token = f.token("writer-1", &["writer"]);
    let (mut c, msgs) = RawClient::login(f.port, &token);
    let key = msgs.iter().find(|m| m.tag == b'K').expect("BackendKeyData");
    let pid = i32::from_be_bytes(key.body[..4].try_into().unwrap());
    let secret = i32::from_be_bytes(key.body[4..8].try_into().unwrap());
    c.send(b'Q', &raw::cstr("SELECT pg_sleep(1.5)"));
    std::thread::sleep(Duration::from_millis(300));
    let mut forger = RawClient::connect(f.port);
    let mut packet = 16i32.to_be_bytes().to_vec();
    packet.extend(80877102i32.to_be_bytes());
    packet.extend(pid.to_be_bytes());
    packet.extend(secret.wrapping_add(1).to_be_bytes());
    forger.send_raw(&packet);
    let msgs = c.read_until(b'Z');
    assert!(
        !msgs.iter().any(|m| m.tag == b'E'),
        "the forged cancel reached the query: {msgs:?}"
    );
}

#[test]
fn statement_timeout_from_policy_limits_is_enforced() {
    let f = Fixture::start();
    let token = f.token("agent-1", &["limited"]);
    f.rt.block_on(async {
        let client = f.connect(&token).await.unwrap();
        let err = client
            .simple_query("SELECT count(*) FROM generate_series(1, 2000000000)")
            .await
            .unwrap_err();
        assert_eq!(code(&err), "57014", "{err}");
    });
    // The statement's result is recorded as the error the agent got; the trail verifies.
    f.wait_recorded(|body| {
        matches!(body, sluice_audit::EventBody::Result(result)
            if result.error.as_ref().is_some_and(|e| e.code == "57014"))
    });
}

#[test]
fn max_rows_fails_the_statement_instead_of_truncating_it() {
    let f = Fixture::start();
    let token = f.token("agent-1", &["limited"]);
    f.rt.block_on(async {
        let client = f.connect(&token).await.unwrap();
        let five = client
            .simple_query("SELECT * FROM generate_series(1, 5)")
            .await
            .unwrap();
        assert_eq!(rows(five).len(), 5);
        let err = client
            .simple_query("SELECT * FROM generate_series(1, 100000)")
            .await
            .unwrap_err();
        assert_eq!(code(&err), "54000", "{err}");
        // Extended protocol, and a transaction: the error aborts it as any error would.
        let err = client
            .query("SELECT * FROM generate_series(1, 100000)", &[])
            .await
            .unwrap_err();
        assert_eq!(code(&err), "54000", "{err}");
        client.simple_query("BEGIN").await.unwrap();
        let err = client
            .simple_query("SELECT * FROM generate_series(1, 1000)")
            .await
            .unwrap_err();
        assert_eq!(code(&err), "54000");
        client.simple_query("ROLLBACK").await.unwrap();
        let one = client.simple_query("SELECT 1").await.unwrap();
        assert_eq!(rows(one), vec![vec![Some("1".to_string())]]);
    });
}

#[test]
fn search_path_changes_cannot_smuggle_in_another_schema() {
    let f = Fixture::start();
    f.cluster
        .execute(&f.db, &format!("CREATE SCHEMA hidden; CREATE TABLE hidden.orders (secret text); INSERT INTO hidden.orders VALUES ('hidden-row'); GRANT ALL ON SCHEMA hidden TO {SVC_USER}; GRANT ALL ON hidden.orders TO {SVC_USER}"))
        .unwrap();
    let token = f.token("agent", &["pathfinder"]);
    f.rt.block_on(async {
        let client = f.connect(&token).await.unwrap();
        assert_eq!(
            rows(
                client
                    .simple_query("SELECT count(*) FROM orders")
                    .await
                    .unwrap()
            ),
            vec![vec![Some("3".into())]]
        );
        // A SET LOCAL that ends with its transaction: afterwards the gateway cannot rely on
        // either path, so `orders` must be allowed in both schemas.
        client
            .batch_execute("BEGIN; SET LOCAL search_path TO hidden; COMMIT")
            .await
            .unwrap();
        let err = client
            .simple_query("SELECT * FROM orders")
            .await
            .unwrap_err();
        assert_eq!(code(&err), "42501", "{err}");
        assert!(
            err.as_db_error()
                .unwrap()
                .message()
                .contains("hidden.orders"),
            "{err}"
        );
        let err = client
            .simple_query("SET search_path FROM CURRENT")
            .await
            .unwrap_err();
        assert_eq!(code(&err), "42501");
    });
    f.rt.block_on(async {
        let client = f.connect(&token).await.unwrap();
        // The same text, allowed twice (the second time as remembered)...
        for _ in 0..2 {
            let count = client.simple_query("SELECT count(*) FROM orders").await;
            assert_eq!(rows(count.unwrap()), vec![vec![Some("3".into())]]);
            let count = client.query_one("SELECT count(*) FROM orders", &[]).await;
            assert_eq!(count.unwrap().get::<_, i64>(0), 3);
        }
        // ...and a text that changes the path it is read with: the second time, `orders`
        // may be hidden.orders, so it is judged anew and refused.
        let switch = "SELECT count(*) FROM orders; SET search_path TO hidden";
        client.batch_execute(switch).await.unwrap();
        let err = client.batch_execute(switch).await.unwrap_err();
        assert_eq!(code(&err), "42501", "{err}");
        client
            .simple_query("SET search_path TO public")
            .await
            .unwrap();
        client
            .simple_query("SET search_path TO hidden")
            .await
            .unwrap();
        let err = client
            .simple_query("SELECT count(*) FROM orders")
            .await
            .unwrap_err();
        assert_eq!(code(&err), "42501", "{err}");
        let err = client
            .query_one("SELECT count(*) FROM orders", &[])
            .await
            .unwrap_err();
        assert_eq!(code(&err), "42501", "{err}");
        let err = client
            .simple_query("SELECT * FROM orders")
            .await
            .unwrap_err();
        assert_eq!(code(&err), "42501", "{err}");
        let qualified = client
            .simple_query("SELECT count(*) FROM public.orders")
            .await
            .unwrap();
        assert_eq!(rows(qualified), vec![vec![Some("3".into())]]);
    });
}

#[test]
fn the_session_ends_when_its_token_expires() {
    let f = Fixture::start();
    let token = f.token_with_ttl("agent-1", &["reader"], Duration::from_secs(2));
    let (mut c, msgs) = RawClient::login(f.port, &token);
    assert_eq!(msgs.last().unwrap().tag, b'Z');
    let m = c.read();
    assert_eq!(m.field(b'S'), "FATAL");
    assert!(m.message().contains("token expired"), "{}", m.message());
    assert!(c.is_closed());
}

#[test]
fn copy_out_and_in_are_judged_and_streamed() {
    let f = Fixture::start();
    let token = f.token("writer-1", &["writer"]);
    f.rt.block_on(async {
        use tokio::io::AsyncWriteExt as _;
        let client = f.connect(&token).await.unwrap();
        let stream = client
            .copy_out("COPY orders (id, total) TO STDOUT")
            .await
            .unwrap();
        let chunks: Vec<bytes::Bytes> = futures_collect(stream).await;
        let text: String = chunks
            .iter()
            .map(|c| String::from_utf8_lossy(c).to_string())
            .collect();
        assert_eq!(text, "1\t10.00\n2\t20.50\n3\t30.25\n");
        let sink = client
            .copy_in("COPY orders (customer_id, total) FROM STDIN")
            .await
            .unwrap();
        let mut sink = Box::pin(sink);
        use futures_util::SinkExt;
        sink.send(bytes::Bytes::from_static(b"1\t1.00\n2\t2.00\n"))
            .await
            .unwrap();
        let n = sink.as_mut().finish().await.unwrap();
        assert_eq!(n, 2);
        let _ = tokio::io::sink().flush().await;
        let err = client
            .copy_out("COPY secrets TO STDOUT")
            .await
            .err()
            .expect("refused");
        assert_eq!(code(&err), "42501");
    });
    assert_eq!(
        f.cluster
            .query_scalar(&f.db, "SELECT count(*) FROM orders")
            .unwrap(),
        "5"
    );
}

async fn futures_collect(stream: tokio_postgres::CopyOutStream) -> Vec<bytes::Bytes> {
    use futures_util::StreamExt;
    let mut stream = Box::pin(stream);
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.push(chunk.unwrap());
    }
    out
}

/// The resource ignores Sync while in copy-in, so those Syncs get no ReadyForQuery. The
/// gateway's count of what the resource has answered must not fall behind because of
/// them: a later statement that calls a function waits for that count (settle), and
/// would wait forever.
#[test]
fn a_function_call_after_copy_in_over_the_extended_protocol_does_not_hang() {
    let f = Fixture::start();
    let token = f.token("agent", &["all"]);
    f.rt.block_on(async {
        use futures_util::SinkExt;
        let client = f.connect(&token).await.unwrap();
        for round in 0..2 {
            let sink = client
                .copy_in("COPY orders (customer_id, total) FROM STDIN")
                .await
                .unwrap();
            let mut sink = Box::pin(sink);
            sink.send(bytes::Bytes::from_static(b"1\t1.00\n"))
                .await
                .unwrap();
            assert_eq!(sink.as_mut().finish().await.unwrap(), 1);
            let called = tokio::time::timeout(
                std::time::Duration::from_secs(10),
                client.query("SELECT public.bump_totals()", &[]),
            )
            .await;
            assert!(
                called.is_ok(),
                "round {round}: the call after COPY FROM hung"
            );
            called.unwrap().unwrap();
            let rows = tokio::time::timeout(
                std::time::Duration::from_secs(10),
                client.query("SELECT count(*) FROM orders", &[]),
            )
            .await
            .expect("the statement after it hung")
            .unwrap();
            assert!(rows[0].get::<_, i64>(0) >= 4);
        }
    });
}

/// A Sync whose implicit commit fails (a deferred constraint) answers with ErrorResponse
/// then ReadyForQuery; a session that tracks responses (every recorded one) must take it.
#[test]
fn a_commit_that_fails_at_sync_is_relayed_and_the_session_goes_on() {
    let f = Fixture::start();
    let token = f.token("agent", &["all"]);
    let (mut c, _) = RawClient::login(f.port, &token);
    c.send(
        b'Q',
        &raw::cstr("CREATE TABLE deferred_unique (id int UNIQUE DEFERRABLE INITIALLY DEFERRED)"),
    );
    c.read_until(b'Z');
    let mut batch = raw::parse("", "INSERT INTO deferred_unique VALUES (1), (1)");
    batch.extend(raw::bind("", ""));
    batch.extend(raw::execute(""));
    batch.extend(raw::sync());
    c.send_raw(&batch);
    let answer = c.read_until(b'Z');
    assert_eq!(raw::tags(&answer), "12CEZ");
    assert_eq!(answer[3].code(), "23505");
    c.send(b'Q', &raw::cstr("SELECT count(*) FROM deferred_unique"));
    assert_eq!(raw::tags(&c.read_until(b'Z')), "TDCZ");
}

/// A large result reaches the client whole while its record keeps the first 1,000 rows,
/// marked truncated, with every row and byte counted (the rows past the cap are relayed
/// in blocks, counted without being read).
#[test]
fn a_large_result_is_recorded_capped_and_counted_in_both_protocols() {
    let f = Fixture::start();
    let token = f.token("agent", &["all"]);
    let sql = "SELECT g, repeat('x', 20) FROM generate_series(1, 5000) g";
    let (mut c, _) = RawClient::login(f.port, &token);
    c.send(b'Q', &raw::cstr(sql));
    let simple = c.read_until(b'Z');
    let mut batch = raw::parse("", sql);
    batch.extend(raw::bind("", ""));
    batch.extend(raw::execute(""));
    batch.extend(raw::sync());
    c.send_raw(&batch);
    let extended = c.read_until(b'Z');
    for answer in [&simple, &extended] {
        assert_eq!(answer.iter().filter(|m| m.tag == b'D').count(), 5000);
    }
    let results = f.recorded_results_of(5000);
    assert_eq!(results.len(), 2, "one record per protocol");
    for result in &results {
        assert_eq!(result["truncated"], true);
        assert_eq!(result["rows"].as_array().unwrap().len(), 1000);
        assert_eq!(result["rows"][999][0], "1000");
        let wire: u64 = simple
            .iter()
            .filter(|m| m.tag == b'D')
            .map(|m| m.body.len() as u64 + 5)
            .sum();
        assert!(result["bytes"].as_u64().unwrap() >= wire, "{result}");
    }
}
