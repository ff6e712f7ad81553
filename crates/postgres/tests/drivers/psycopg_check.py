"""psycopg 3, unmodified, through the Sluice gateway.

Run by crates/postgres/tests/drivers.rs against a gateway in front of a fresh copy of
tests/corpus/postgres/setup.sql, with a token for the fixture's `writer` role:

    SLUICE_PG_HOST, SLUICE_PG_PORT, SLUICE_PG_DATABASE, SLUICE_PG_TOKEN

Prints each check as it passes; exits non-zero with the failed expectation otherwise.
"""

import os
import sys
import tempfile
import threading
import time
import traceback
from decimal import Decimal

try:
    import psycopg
    from psycopg import errors
except ImportError as e:  # never pass silently: the test fails with this message
    print(
        f"psycopg 3 is not installed for {sys.executable} ({e}); "
        "run scripts/ensure-deps.sh (python3 -m pip install 'psycopg[binary]')",
        file=sys.stderr,
    )
    sys.exit(2)


class Failed(Exception):
    pass


def expect(cond, what):
    if not cond:
        raise Failed(what)


def ok(what):
    print(f"ok: {what}", flush=True)


def expect_error(sqlstate, fn, what):
    """Runs fn, which must raise a psycopg.Error with `sqlstate`; returns the error."""
    try:
        fn()
    except psycopg.Error as e:
        expect(
            e.sqlstate == sqlstate,
            f"{what}: expected SQLSTATE {sqlstate}, got {e.sqlstate}: {e}",
        )
        return e
    raise Failed(f"{what}: expected SQLSTATE {sqlstate}, but it succeeded")


def connect(password=None, **kwargs):
    return psycopg.connect(
        host=os.environ["SLUICE_PG_HOST"],
        port=int(os.environ["SLUICE_PG_PORT"]),
        dbname=os.environ["SLUICE_PG_DATABASE"],
        user="agent",
        password=password if password is not None else os.environ["SLUICE_PG_TOKEN"],
        sslmode="disable",
        connect_timeout=10,
        **kwargs,
    )


def still_usable(conn, after):
    cur = conn.execute("SELECT count(*) FROM orders WHERE id = %s", (1,))
    expect(cur.fetchone() == (1,), f"session unusable after {after}")


def check_connect():
    with connect(autocommit=True) as conn:
        row = conn.execute("SELECT 1").fetchone()
        expect(row == (1,), f"SELECT 1 returned {row}")
        expect(conn.info.backend_pid != 0, "no BackendKeyData")
    ok("connects with a token as the password (SELECT 1)")
    try:
        connect(password="not-a-token").close()
    except psycopg.OperationalError as e:
        expect("28P01" in str(e) or "token" in str(e), f"unexpected refusal text: {e}")
        ok("a wrong token is refused at login")
    else:
        raise Failed("a wrong token was accepted")


def check_copy(conn):
    cur = conn.cursor()
    with cur.copy("COPY orders (id, total) TO STDOUT") as copy:
        data = b"".join(bytes(chunk) for chunk in copy)
    expect(
        data == b"1\t10.00\n2\t20.50\n3\t30.25\n",
        f"COPY TO STDOUT returned {data!r}",
    )
    ok("COPY orders TO STDOUT (text) returns the seed rows")

    with cur.copy("COPY orders (id, total) TO STDOUT (FORMAT BINARY)") as copy:
        copy.set_types(["int4", "numeric"])
        rows = list(copy.rows())
    expect(
        rows == [(1, Decimal("10.00")), (2, Decimal("20.50")), (3, Decimal("30.25"))],
        f"COPY TO STDOUT (FORMAT BINARY) returned {rows}",
    )
    ok("COPY orders TO STDOUT (FORMAT BINARY) parsed with set_types")

    with cur.copy("COPY orders (customer_id, total, note) FROM STDIN") as copy:
        copy.write_row((1, Decimal("1.00"), "copied"))
        copy.write_row((2, Decimal("2.00"), "copied"))
        copy.write(b"3\t3.00\tcopied\n")
    expect(cur.rowcount == 3, f"COPY FROM STDIN rowcount {cur.rowcount}")
    n = conn.execute("SELECT count(*) FROM orders WHERE note = %s", ("copied",)).fetchone()
    expect(n == (3,), f"{n} rows after COPY FROM STDIN")
    ok("COPY orders FROM STDIN (write_row and raw write): 3 rows in")

    with cur.copy("COPY orders (customer_id, total, note) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(["int4", "numeric", "text"])
        copy.write_row((3, Decimal("4.00"), "copied-binary"))
    n = conn.execute(
        "SELECT total FROM orders WHERE note = %s", ("copied-binary",)
    ).fetchall()
    expect(n == [(Decimal("4.00"),)], f"binary COPY FROM STDIN left {n}")
    ok("COPY orders FROM STDIN (FORMAT BINARY)")

    def copy_secrets_out():
        with cur.copy("COPY secrets TO STDOUT") as copy:
            for _ in copy:
                pass

    expect_error("42501", copy_secrets_out, "COPY secrets TO STDOUT")
    still_usable(conn, "a refused COPY TO")

    def copy_secrets_in():
        with cur.copy("COPY secrets FROM STDIN") as copy:
            copy.write_row((2, "planted"))

    expect_error("42501", copy_secrets_in, "COPY secrets FROM STDIN")
    still_usable(conn, "a refused COPY FROM")
    ok("COPY secrets TO STDOUT / FROM STDIN refused with 42501; the session goes on")


def check_extended(conn):
    cur = conn.cursor()
    cur.execute("SELECT id, customer_id, total, note FROM orders WHERE id = %s", (2,))
    row = cur.fetchone()
    expect(
        row == (2, 2, Decimal("20.50"), "DROP TABLE secrets"),
        f"parameterised SELECT returned {row}",
    )
    cur.execute(
        "SELECT %(a)s::int + 1, %(b)s::text, %(c)s::numeric * 2, %(d)s::text IS NULL",
        {"a": 41, "b": "x'; DROP TABLE secrets; --", "c": Decimal("1.25"), "d": None},
    )
    row = cur.fetchone()
    expect(
        row == (42, "x'; DROP TABLE secrets; --", Decimal("2.50"), True),
        f"typed parameters returned {row}",
    )
    ok("cursor.execute(sql, params): positional and named parameters, typed results")

    cur = conn.cursor(binary=True)
    cur.execute("SELECT id, total FROM orders WHERE id = ANY(%s) ORDER BY id", ([1, 3],))
    rows = cur.fetchall()
    expect(
        rows == [(1, Decimal("10.00")), (3, Decimal("30.25"))],
        f"binary cursor returned {rows}",
    )
    ok("binary cursor (binary parameters and results)")

    cur = conn.cursor()
    cur.execute(
        "INSERT INTO orders (customer_id, total, note) VALUES (%s, %s, %s) RETURNING id",
        (1, Decimal("7.00"), "param-insert"),
    )
    new_id = cur.fetchone()[0]
    cur.execute("UPDATE orders SET total = total + %s WHERE id = %s", (Decimal("1.00"), new_id))
    expect(cur.rowcount == 1, f"UPDATE rowcount {cur.rowcount}")
    cur.execute("SELECT total FROM orders WHERE id = %s", (new_id,))
    expect(cur.fetchone() == (Decimal("8.00"),), "UPDATE with parameters did not apply")
    cur.execute("DELETE FROM orders WHERE id = %s", (new_id,))
    expect(cur.rowcount == 1, f"DELETE rowcount {cur.rowcount}")
    ok("parameterised INSERT ... RETURNING, UPDATE, DELETE on orders")

    cur.executemany(
        "INSERT INTO orders (customer_id, total, note) VALUES (%s, %s, %s)",
        [(1, Decimal("0.10"), "many"), (2, Decimal("0.20"), "many"), (3, Decimal("0.30"), "many")],
    )
    cur.execute("SELECT count(*), sum(total) FROM orders WHERE note = %s", ("many",))
    row = cur.fetchone()
    expect(row == (3, Decimal("0.60")), f"executemany left {row}")
    ok("cursor.executemany (pipeline mode: %s)" % psycopg.Pipeline.is_supported())

    with conn.pipeline():
        c1 = conn.execute("SELECT %s::int", (1,))
        c2 = conn.execute("SELECT count(*) FROM orders WHERE note = %s", ("many",))
        c3 = conn.execute("SELECT %s::text", ("three",))
    expect(
        (c1.fetchone(), c2.fetchone(), c3.fetchone()) == ((1,), (3,), ("three",)),
        "pipelined results out of order",
    )
    ok("explicit pipeline: three statements, answers in order")


def check_prepared(conn, trace_path):
    query = "SELECT id, total FROM orders WHERE id = %s"
    cur = conn.cursor()
    trace = open(trace_path, "w")
    conn.pgconn.trace(trace.fileno())
    try:
        results = []
        for i in (1, 2, 3, 1):
            cur.execute(query, (i,), prepare=True)
            results.append(cur.fetchone())
        cur.execute(
            "INSERT INTO orders (customer_id, total, note) VALUES (%s, %s, %s) RETURNING id",
            (2, Decimal("5.00"), "prepared"),
            prepare=True,
        )
        first = cur.fetchone()[0]
        cur.execute(
            "INSERT INTO orders (customer_id, total, note) VALUES (%s, %s, %s) RETURNING id",
            (3, Decimal("6.00"), "prepared"),
            prepare=True,
        )
        second = cur.fetchone()[0]
    finally:
        conn.pgconn.untrace()
        trace.close()
    expect(
        results
        == [(1, Decimal("10.00")), (2, Decimal("20.50")), (3, Decimal("30.25")), (1, Decimal("10.00"))],
        f"prepared SELECT returned {results}",
    )
    expect(second > first, f"prepared INSERT ids {first}, {second}")
    parses = [line for line in open(trace_path) if "\tParse\t" in line]
    named = [line for line in parses if '"_pg3_' in line]
    expect(
        len(parses) == 2 and len(named) == 2,
        "expected exactly two named Parse messages (one per prepared statement), traced: "
        + "".join(parses),
    )
    ok("prepare=True: named server-side statements (%d Parse for 6 executions)" % len(parses))

    def refused_prepared():
        cur.execute("SELECT secret FROM secrets WHERE id = %s", (1,), prepare=True)

    expect_error("42501", refused_prepared, "prepared SELECT on secrets")
    cur.execute(query, (2,), prepare=True)
    expect(cur.fetchone() == (2, Decimal("20.50")), "prepared statement broken after refusal")
    ok("a refused prepare=True statement gives 42501; earlier prepared statements still run")


def check_refusals(conn):
    cur = conn.cursor()
    e = expect_error("42501", lambda: cur.execute("SELECT * FROM secrets"), "SELECT * FROM secrets")
    expect(isinstance(e, errors.InsufficientPrivilege), f"error class {type(e).__name__}")
    expect(
        (e.diag.message_primary or "").startswith("sluice: "),
        f"refusal message {e.diag.message_primary!r}",
    )
    still_usable(conn, "a refused simple-protocol SELECT")
    ok("SELECT * FROM secrets (simple protocol): InsufficientPrivilege 42501, "
       f"{e.diag.message_primary!r}; the session goes on")

    expect_error(
        "42501",
        lambda: cur.execute("SELECT secret FROM secrets WHERE id = %s", (1,)),
        "parameterised SELECT on secrets",
    )
    still_usable(conn, "a refused extended-protocol SELECT")
    expect_error(
        "42501",
        lambda: cur.execute("DELETE FROM customers WHERE id = %s", (1,)),
        "DELETE FROM customers",
    )
    still_usable(conn, "a refused DELETE")
    ok("parameterised SELECT on secrets and DELETE on customers: 42501; the session goes on")

    # In a transaction the refusal aborts it, as any error would; the block rolls back.
    def refused_in_transaction():
        with conn.transaction():
            conn.execute(
                "INSERT INTO orders (customer_id, total, note) VALUES (%s, %s, %s)",
                (1, Decimal("9.99"), "rolled-back"),
            )
            conn.execute("SELECT * FROM secrets")

    expect_error("42501", refused_in_transaction, "refusal inside a transaction")
    n = conn.execute("SELECT count(*) FROM orders WHERE note = %s", ("rolled-back",)).fetchone()
    expect(n == (0,), "the aborted transaction's insert survived")
    still_usable(conn, "a refusal inside a transaction")
    ok("a refusal inside conn.transaction() aborts and rolls it back; the session goes on")

    # A refusal inside a pipeline.
    def refused_in_pipeline():
        with conn.pipeline():
            conn.execute("SELECT %s::int", (1,))
            conn.execute("SELECT secret FROM secrets WHERE id = %s", (1,))
            conn.execute("SELECT %s::int", (2,))

    expect_error("42501", refused_in_pipeline, "refusal inside a pipeline")
    still_usable(conn, "a refusal inside a pipeline")
    ok("a refusal inside a pipeline raises 42501; the session goes on")


def check_cancel(conn):
    def timed_cancel(cancel, sql, params, what):
        timer = threading.Timer(0.5, cancel)
        started = time.monotonic()
        timer.start()
        try:
            e = expect_error("57014", lambda: conn.execute(sql, params), what)
        finally:
            timer.cancel()
        elapsed = time.monotonic() - started
        expect(elapsed < 20, f"{what}: took {elapsed:.1f}s to be cancelled")
        expect(isinstance(e, errors.QueryCanceled), f"error class {type(e).__name__}")
        still_usable(conn, f"{what}")
        return elapsed

    t = timed_cancel(conn.cancel, "SELECT pg_sleep(30)", None, "conn.cancel() of pg_sleep(30)")
    ok(f"conn.cancel() from another thread stops SELECT pg_sleep(30) (simple protocol) "
       f"with QueryCanceled 57014 after {t:.1f}s; the session goes on")
    t = timed_cancel(conn.cancel, "SELECT pg_sleep(%s)", (30,), "conn.cancel() of pg_sleep(%s)")
    ok(f"conn.cancel() stops SELECT pg_sleep(%s) (extended protocol) with 57014 after {t:.1f}s")
    if hasattr(conn, "cancel_safe"):
        t = timed_cancel(
            lambda: conn.cancel_safe(timeout=10),
            "SELECT pg_sleep(30)",
            None,
            "conn.cancel_safe() of pg_sleep(30)",
        )
        ok(f"conn.cancel_safe() (libpq's new cancel API) stops pg_sleep(30) with 57014 after {t:.1f}s")


def main():
    print(
        f"psycopg {psycopg.__version__} ({psycopg.pq.__impl__}, libpq {psycopg.pq.version()}) "
        f"on python {sys.version.split()[0]}",
        flush=True,
    )
    check_connect()
    with tempfile.TemporaryDirectory() as tmp, connect(autocommit=True) as conn:
        check_copy(conn)  # first: it expects the seed rows
        check_extended(conn)
        check_prepared(conn, os.path.join(tmp, "trace"))
        check_refusals(conn)
        check_cancel(conn)
    print("psycopg: all checks passed", flush=True)


if __name__ == "__main__":
    try:
        main()
    except Failed as e:
        print(f"FAILED: {e}", file=sys.stderr, flush=True)
        sys.exit(1)
    except Exception:
        print("FAILED with an unexpected exception:", file=sys.stderr)
        traceback.print_exc()
        sys.exit(1)
