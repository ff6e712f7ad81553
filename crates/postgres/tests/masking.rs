//! Masking through the live gateway: masked values never reach the client in the clear,
//! over the simple and the extended protocol, in text and binary formats. Checked on the
//! raw bytes the client receives, not only on parsed rows.

mod support;

use serde::Deserialize;
use support::raw::{self, cstr, Msg, RawClient};
use support::{corpus_dir, Fixture};

/// The clear values of customers.email, card_number and ssn (setup.sql).
const CLEAR: &[&str] = &[
    "ada@example.com",
    "alan@example.org",
    "grace@example.net",
    "4111111111111111",
    "5500005555555559",
    "340000000000009",
    "078-05-1120",
    "219-09-9999",
    "457-55-5462",
];

#[derive(Debug, Deserialize)]
struct Case {
    sql: String,
    expect: String,
}

fn leaked(msgs: &[Msg]) -> Vec<&'static str> {
    // Case-insensitive: `upper(email)` must not pass for masked.
    let bytes: Vec<u8> = msgs
        .iter()
        .flat_map(|m| m.body.iter().map(u8::to_ascii_lowercase))
        .collect();
    CLEAR
        .iter()
        .copied()
        .filter(|clear| bytes.windows(clear.len()).any(|w| w == clear.as_bytes()))
        .collect()
}

fn refused(msgs: &[Msg]) -> bool {
    msgs.iter().any(|m| m.tag == b'E' && m.code() == "42501")
}

fn simple(c: &mut RawClient, sql: &str) -> Vec<Msg> {
    c.send(b'Q', &cstr(sql));
    c.read_until(b'Z')
}

/// Parse, Bind (results in `format`: 0 text, 1 binary), Execute, Sync.
fn extended(c: &mut RawClient, sql: &str, format: i16) -> Vec<Msg> {
    let mut bind = cstr("");
    bind.extend(cstr(""));
    bind.extend(0i16.to_be_bytes());
    bind.extend(0i16.to_be_bytes());
    bind.extend(1i16.to_be_bytes());
    bind.extend(format.to_be_bytes());
    let mut batch = raw::parse("", sql);
    batch.extend(raw::message(b'B', &bind));
    batch.extend(raw::execute(""));
    batch.extend(raw::sync());
    c.send_raw(&batch);
    c.read_until(b'Z')
}

#[test]
fn the_mask_corpus_never_shows_a_clear_value() {
    let f = Fixture::start();
    let token = f.token("agent-2", &["masked-reader"]);
    let text = std::fs::read_to_string(corpus_dir().join("mask.yaml")).unwrap();
    let cases: Vec<Case> = serde_saphyr::from_str(&text).unwrap();
    assert!(cases.len() >= 10);
    let (mut c, _) = RawClient::login(f.port, &token);
    let mut failures = Vec::new();
    for case in &cases {
        for (how, msgs) in [
            ("simple", simple(&mut c, &case.sql)),
            ("extended/text", extended(&mut c, &case.sql, 0)),
            ("extended/binary", extended(&mut c, &case.sql, 1)),
        ] {
            let leaks = leaked(&msgs);
            let rows = msgs.iter().filter(|m| m.tag == b'D').count();
            let ok = match case.expect.as_str() {
                "masked" => leaks.is_empty() && !refused(&msgs) && rows > 0,
                "masked-or-refused" => leaks.is_empty() && (refused(&msgs) || rows > 0),
                "clear" => !refused(&msgs) && rows > 0,
                other => panic!("unknown expectation {other}"),
            };
            if !ok {
                failures.push(format!(
                    "{how} {:?} (expect {}): leaked {leaks:?}, refused {}, {rows} rows, tags {}",
                    case.sql,
                    case.expect,
                    refused(&msgs),
                    raw::tags(&msgs)
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The record holds results as the agent saw them: masked there too.
    let results = f.recorded_results();
    assert!(results.len() >= cases.len() * 3);
    let recorded_leaks: Vec<&String> = results
        .iter()
        .filter(|r| {
            let r = r.to_ascii_lowercase();
            CLEAR.iter().any(|clear| r.contains(clear))
        })
        .collect();
    assert!(
        recorded_leaks.is_empty(),
        "clear values recorded: {recorded_leaks:?}"
    );
    // And the masked values are what it holds.
    assert!(results.iter().any(|r| r.contains("a***@example.com")));
}

#[test]
fn strategies_apply_in_text_and_binary_results() {
    let f = Fixture::start();
    let token = f.token("agent-2", &["masked-reader"]);
    f.rt.block_on(async {
        let client = f.connect(&token).await.unwrap();
        // tokio-postgres: extended protocol, binary results.
        let rows = client
            .query(
                "SELECT id, name, email, card_number, ssn FROM customers ORDER BY id",
                &[],
            )
            .await
            .unwrap();
        let first = &rows[0];
        assert_eq!(first.get::<_, String>(1), "Ada Lovelace");
        assert_eq!(first.get::<_, String>(2), "a***@example.com");
        assert_eq!(first.get::<_, String>(3), "************1111");
        assert_eq!(first.get::<_, String>(4), "****");
        // The same through the simple protocol (text).
        let messages = client
            .simple_query("SELECT email, card_number FROM customers ORDER BY id")
            .await
            .unwrap();
        let tokio_postgres::SimpleQueryMessage::Row(row) = &messages[1] else {
            panic!("{messages:?}");
        };
        assert_eq!(row.get(0), Some("a***@example.com"));
        assert_eq!(row.get(1), Some("************1111"));
        // A view shows the base column: masked as customers.email is.
        let rows = client
            .query("SELECT email FROM customer_contacts ORDER BY id", &[])
            .await
            .unwrap();
        assert_eq!(rows[0].get::<_, String>(0), "a***@example.com");
    });
}

#[test]
fn non_text_columns_become_null_hash_is_stable_and_detectors_scan_values() {
    let f = Fixture::start();
    let token = f.token("agent-3", &["other-masks"]);
    // numeric total, masked: NULL in binary and in text, as a numeric cannot hold a mask.
    let (mut c, _) = RawClient::login(f.port, &token);
    for format in [0, 1] {
        let msgs = extended(&mut c, "SELECT total, id FROM orders ORDER BY id", format);
        let rows: Vec<&Msg> = msgs.iter().filter(|m| m.tag == b'D').collect();
        assert_eq!(rows.len(), 3, "{}", raw::tags(&msgs));
        for row in rows {
            // Column count, then the first value's length: -1 is NULL.
            assert_eq!(&row.body[2..6], &(-1i32).to_be_bytes(), "format {format}");
        }
    }
    f.rt.block_on(async {
        let client = f.connect(&token).await.unwrap();
        let totals: Vec<Option<i32>> = client
            .simple_query("SELECT total FROM orders ORDER BY id")
            .await
            .unwrap()
            .iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => Some(r.get(0).map(|_| 1)),
                _ => None,
            })
            .collect();
        assert_eq!(totals, vec![None, None, None]);
        // hash: stable across statements and sessions, not the clear value.
        let hash = |rows: Vec<tokio_postgres::Row>| -> Vec<String> {
            rows.iter().map(|r| r.get::<_, String>(0)).collect()
        };
        let first = hash(client.query("SELECT name FROM customers ORDER BY id", &[]).await.unwrap());
        let again = hash(client.query("SELECT c.name AS n FROM customers c ORDER BY c.id", &[]).await.unwrap());
        assert_eq!(first, again);
        assert!(first.iter().all(|h| !h.contains("Lovelace") && !h.contains("Turing")));
        assert_eq!(first.iter().collect::<std::collections::HashSet<_>>().len(), 3);
        // Detectors scan every text value, computed ones included.
        let messages = client
            .simple_query("SELECT 'pay with 4111 1111 1111 1111 today' AS note, '078-05-1120' AS ssn, 'order 12' AS plain")
            .await
            .unwrap();
        let tokio_postgres::SimpleQueryMessage::Row(row) = &messages[1] else {
            panic!("{messages:?}");
        };
        assert_eq!(row.get(0), Some("pay with **** today"));
        assert_eq!(row.get(1), Some("****"));
        assert_eq!(row.get(2), Some("order 12"));
    });
}

/// A long result arrives many rows per read, and the gateway masks a run of rows as one
/// block: every row of it must be masked, in every protocol and format, and recorded as
/// delivered.
#[test]
fn every_row_of_a_long_result_is_masked() {
    let f = Fixture::start();
    let token = f.token("agent-3", &["other-masks"]);
    let (mut c, _) = RawClient::login(f.port, &token);
    // The hash token of each customer's name, from a one-row answer each.
    let mut tokens = std::collections::HashMap::new();
    for id in 1..=3 {
        let msgs = simple(
            &mut c,
            &format!("SELECT name FROM customers WHERE id = {id}"),
        );
        let row = msgs.iter().find(|m| m.tag == b'D').expect("a row");
        tokens.insert(
            id.to_string(),
            String::from_utf8(row_values(row)[0].clone().unwrap()).unwrap(),
        );
    }
    let sql = "SELECT c.id, c.name, g, 'pay with 4111 1111 1111 1111' AS note \
               FROM customers c CROSS JOIN generate_series(1, 4000) g ORDER BY g, c.id";
    for (how, msgs) in [
        ("simple", simple(&mut c, sql)),
        ("extended/text", extended(&mut c, sql, 0)),
        ("extended/binary", extended(&mut c, sql, 1)),
    ] {
        let rows: Vec<&Msg> = msgs.iter().filter(|m| m.tag == b'D').collect();
        assert_eq!(rows.len(), 12_000, "{how}: {}", raw::tags(&msgs));
        for (i, row) in rows.iter().enumerate() {
            let values = row_values(row);
            let text = |v: &Option<Vec<u8>>| String::from_utf8(v.clone().unwrap()).unwrap();
            let id = if how == "extended/binary" {
                i32::from_be_bytes(values[0].clone().unwrap().try_into().unwrap()).to_string()
            } else {
                text(&values[0])
            };
            assert_eq!(id, ((i % 3) + 1).to_string(), "{how} row {i}");
            assert_eq!(text(&values[1]), tokens[&id], "{how} row {i}: name");
            assert_eq!(text(&values[3]), "pay with ****", "{how} row {i}: note");
        }
        let bytes: Vec<u8> = msgs.iter().flat_map(|m| m.body.clone()).collect();
        for clear in ["Lovelace", "Turing", "Hopper", "4111 1111"] {
            assert!(
                !bytes.windows(clear.len()).any(|w| w == clear.as_bytes()),
                "{how}: {clear} in the clear"
            );
        }
    }
    // The record keeps the first rows as delivered and counts the rest.
    let long = f.recorded_results_of(12_000);
    assert_eq!(long.len(), 3, "three long results recorded");
    // Binary values whose type the record does not know are kept as hex.
    let hex = |s: &str| s.bytes().map(|b| format!("{b:02x}")).collect::<String>();
    for result in &long {
        assert_eq!(result["truncated"], true);
        let text = result.to_string();
        for clear in ["Lovelace", "4111 1111"] {
            assert!(
                !text.contains(clear) && !text.contains(&hex(clear)),
                "{text}"
            );
        }
        let masked = "pay with ****";
        assert!(
            text.contains(masked) || text.contains(&hex(masked)),
            "{}",
            &text[..text.len().min(600)]
        );
    }
}

/// The values of a DataRow (`None` for NULL).
fn row_values(row: &Msg) -> Vec<Option<Vec<u8>>> {
    let body = &row.body;
    let count = i16::from_be_bytes([body[0], body[1]]) as usize;
    let mut at = 2;
    (0..count)
        .map(|_| {
            let len = i32::from_be_bytes(body[at..at + 4].try_into().unwrap());
            at += 4;
            (len >= 0).then(|| {
                let value = body[at..at + len as usize].to_vec();
                at += len as usize;
                value
            })
        })
        .collect()
}

#[test]
fn copy_of_a_masked_table_is_refused() {
    let f = Fixture::start();
    let token = f.token("agent-2", &["masked-reader"]);
    let (mut c, _) = RawClient::login(f.port, &token);
    for sql in [
        "COPY customers TO STDOUT",
        "COPY customers (email) TO STDOUT WITH (FORMAT csv)",
        "COPY (SELECT email FROM customers) TO STDOUT",
    ] {
        let msgs = simple(&mut c, sql);
        assert!(refused(&msgs), "{sql}: {}", raw::tags(&msgs));
        assert!(leaked(&msgs).is_empty());
    }
    // The session goes on.
    let msgs = simple(&mut c, "SELECT email FROM customers");
    assert!(leaked(&msgs).is_empty());
    assert_eq!(msgs.iter().filter(|m| m.tag == b'D').count(), 3);
}

/// The CopyData payloads of a response, as text.
fn copy_rows(msgs: &[Msg]) -> Vec<String> {
    msgs.iter()
        .filter(|m| m.tag == b'd')
        .map(|m| String::from_utf8(m.body.clone()).unwrap())
        .collect()
}

#[test]
fn copy_to_stdout_is_masked_in_text_and_csv_and_refused_when_it_cannot_be() {
    let f = Fixture::start();
    let token = f.token("agent-3", &["other-masks"]);
    let (mut c, _) = RawClient::login(f.port, &token);

    // name: hash; card_number and ssn: found by the detectors; email: clear.
    let msgs = simple(&mut c, "COPY customers TO STDOUT");
    assert!(
        leaked(&msgs).iter().all(|l| l.contains('@')),
        "{:?}",
        leaked(&msgs)
    );
    let rows = copy_rows(&msgs);
    assert_eq!(rows.len(), 3, "{}", raw::tags(&msgs));
    let fields: Vec<&str> = rows[0].trim_end().split('\t').collect();
    assert_eq!(fields[0], "1");
    assert!(fields[1].starts_with("h:"), "{fields:?}");
    assert_eq!(fields[2], "ada@example.com");
    assert_eq!(&fields[3..], ["****", "****"]);

    let msgs = simple(
        &mut c,
        "COPY customers (name, ssn) TO STDOUT WITH (FORMAT csv, HEADER)",
    );
    let rows = copy_rows(&msgs);
    assert_eq!(rows[0], "name,ssn\n");
    assert!(
        rows[1].starts_with("\"h:") && rows[1].ends_with(",\"****\"\n"),
        "{rows:?}"
    );
    assert!(
        leaked(&msgs).is_empty()
            && !msgs
                .iter()
                .any(|m| String::from_utf8_lossy(&m.body).contains("Lovelace"))
    );

    // A numeric column a mask covers: NULL.
    let rows = copy_rows(&simple(&mut c, "COPY orders (id, total) TO STDOUT"));
    assert_eq!(rows, vec!["1\t\\N\n", "2\t\\N\n", "3\t\\N\n"]);

    // The extended protocol too.
    let msgs = extended(&mut c, "COPY customers (ssn) TO STDOUT", 0);
    assert_eq!(copy_rows(&msgs), vec!["****\n"; 3], "{}", raw::tags(&msgs));

    for sql in [
        "COPY customers TO STDOUT (FORMAT binary)",
        "COPY customers TO STDOUT (DELIMITER '|')",
        "COPY (SELECT ssn FROM customers) TO STDOUT",
    ] {
        let msgs = simple(&mut c, sql);
        let error = msgs.iter().find(|m| m.tag == b'E').expect("refused");
        assert_eq!(error.code(), "42501", "{sql}");
        assert!(
            error.message().contains("masks apply to"),
            "{sql}: {}",
            error.message()
        );
        assert!(copy_rows(&msgs).is_empty() && leaked(&msgs).is_empty());
    }
}

/// A view shows the masked base column under its own name: the policy alone cannot know,
/// the data path resolves it through the catalog and refuses expressions over it.
#[test]
fn expressions_over_a_view_of_a_masked_column_are_refused() {
    let f = Fixture::start();
    let token = f.token("agent-2", &["masked-reader"]);
    let (mut c, _) = RawClient::login(f.port, &token);
    for sql in [
        "SELECT upper(email) FROM customer_contacts",
        "SELECT v FROM customer_contacts v",
        "SELECT row_to_json(v) FROM customer_contacts v",
        "SELECT email || '' FROM customer_contacts",
    ] {
        for msgs in [simple(&mut c, sql), extended(&mut c, sql, 0)] {
            assert!(refused(&msgs), "{sql}: {}", raw::tags(&msgs));
            assert!(leaked(&msgs).is_empty(), "{sql}");
        }
    }
    // What does not carry the masked column out still runs.
    let msgs = simple(&mut c, "SELECT upper(name), email FROM customer_contacts");
    assert!(
        !refused(&msgs) && leaked(&msgs).is_empty(),
        "{}",
        raw::tags(&msgs)
    );
    assert_eq!(msgs.iter().filter(|m| m.tag == b'D').count(), 3);
}

/// Cursors: FETCH answers with the cursor's columns, and SQL-level PREPARE/EXECUTE with
/// the prepared statement's: masked or refused, never clear.
#[test]
fn cursors_and_sql_prepared_statements_do_not_unmask() {
    let f = Fixture::start();
    let token = f.token("agent-2", &["masked-reader"]);
    let (mut c, _) = RawClient::login(f.port, &token);
    for sql in [
        "BEGIN; DECLARE cur CURSOR FOR SELECT email, ssn FROM customers; FETCH ALL cur; COMMIT",
        "BEGIN; DECLARE bcur BINARY CURSOR FOR SELECT email FROM customers; FETCH ALL bcur; COMMIT",
        "PREPARE p AS SELECT email, card_number FROM customers",
        "EXECUTE p",
    ] {
        let msgs = simple(&mut c, sql);
        assert!(
            leaked(&msgs).is_empty(),
            "{sql}: leaked {:?}",
            leaked(&msgs)
        );
        assert!(!refused(&msgs), "{sql}: {}", raw::tags(&msgs));
        if sql.contains("FETCH") || sql.starts_with("EXECUTE") {
            // Rows delivered, masked (PostgreSQL reports the origin through both).
            let rows: Vec<&Msg> = msgs.iter().filter(|m| m.tag == b'D').collect();
            assert_eq!(rows.len(), 3, "{sql}");
            assert!(
                String::from_utf8_lossy(&rows[0].body).contains("a***@example.com"),
                "{sql}"
            );
        }
    }
}

/// A Bind larger than the relay's write buffer goes to the resource at once; its answer must
/// still find the request it answers.
#[test]
fn a_large_bind_in_a_masking_session_keeps_track() {
    let f = Fixture::start();
    let token = f.token("agent-2", &["masked-reader"]);
    let (mut c, _) = RawClient::login(f.port, &token);
    let big = "x".repeat(64 * 1024);
    let mut bind = cstr("");
    bind.extend(cstr(""));
    bind.extend(0i16.to_be_bytes()); // parameter formats: text
    bind.extend(1i16.to_be_bytes()); // one parameter
    bind.extend((big.len() as i32).to_be_bytes());
    bind.extend(big.as_bytes());
    bind.extend(0i16.to_be_bytes()); // result formats: text
    for _ in 0..3 {
        let mut batch = raw::parse(
            "",
            "SELECT length($1::text), email FROM customers ORDER BY id",
        );
        batch.extend(raw::message(b'B', &bind));
        batch.extend(raw::execute(""));
        batch.extend(raw::sync());
        c.send_raw(&batch);
        let msgs = c.read_until(b'Z');
        assert_eq!(raw::tags(&msgs), "12DDDCZ");
        assert!(leaked(&msgs).is_empty());
        assert!(String::from_utf8_lossy(&msgs[2].body).contains("a***@example.com"));
    }
}

/// `mask_predicates: refuse` holds through a view too: the view's column is the masked one.
#[test]
fn predicates_on_a_masked_column_through_a_view_are_refused_when_the_policy_says_so() {
    let f = Fixture::start();
    let token = f.token("agent-4", &["strict-masked"]);
    let (mut c, _) = RawClient::login(f.port, &token);
    for sql in [
        "SELECT id FROM customers WHERE email LIKE 'a%'",
        "SELECT id FROM customer_contacts WHERE email LIKE 'a%'",
    ] {
        let msgs = simple(&mut c, sql);
        assert!(refused(&msgs), "{sql}: {}", raw::tags(&msgs));
    }
    // Conditions on other columns, and the masked column returned, still run.
    let msgs = simple(
        &mut c,
        "SELECT email FROM customer_contacts WHERE name LIKE 'A%'",
    );
    assert!(
        !refused(&msgs) && leaked(&msgs).is_empty(),
        "{}",
        raw::tags(&msgs)
    );
    assert_eq!(msgs.iter().filter(|m| m.tag == b'D').count(), 2);
}

/// A Parse of a name that exists fails in PostgreSQL, which keeps the old statement; the
/// gateway refuses it the same way, so its picture of what the name runs (and so what it
/// masks and records) cannot be swapped for the new text.
#[test]
fn parsing_an_existing_name_again_cannot_swap_what_it_runs() {
    let f = Fixture::start();
    let token = f.token("agent-3", &["other-masks"]);
    let (mut c, _) = RawClient::login(f.port, &token);
    let mut batch = raw::parse("s1", "COPY customers (name) TO STDOUT");
    batch.extend(raw::sync());
    c.send_raw(&batch);
    c.read_until(b'Z');
    let mut batch = raw::parse("s1", "SELECT 1");
    batch.extend(raw::sync());
    c.send_raw(&batch);
    let answer = c.read_until(b'Z');
    let error = answer.iter().find(|m| m.tag == b'E').expect("refused");
    assert_eq!(error.code(), "42P05", "{}", error.message());
    let mut batch = raw::bind("", "s1");
    batch.extend(raw::execute(""));
    batch.extend(raw::sync());
    c.send_raw(&batch);
    let rows: Vec<String> = c
        .read_until(b'Z')
        .into_iter()
        .filter(|m| m.tag == b'd')
        .map(|m| String::from_utf8_lossy(&m.body).to_string())
        .collect();
    assert!(!rows.is_empty());
    for clear in ["Ada Lovelace", "Alan Turing", "Grace Hopper"] {
        assert!(
            rows.iter().all(|r| !r.contains(clear)),
            "{clear} in {rows:?}"
        );
    }
    // DEALLOCATE frees the name, in the gateway as in the resource.
    c.send(b'Q', &cstr("DEALLOCATE s1"));
    assert_eq!(raw::tags(&c.read_until(b'Z')), "CZ");
    let mut batch = raw::parse("s1", "SELECT 1");
    batch.extend(raw::bind("", "s1"));
    batch.extend(raw::execute(""));
    batch.extend(raw::sync());
    c.send_raw(&batch);
    assert_eq!(raw::tags(&c.read_until(b'Z')), "12DCZ");
}
