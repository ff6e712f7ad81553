#!/usr/bin/env python3
"""Writes the committed seed inputs of every fuzz target (fuzz/corpus/<target>/seed-*).

Run from anywhere: python3 fuzz/make_seeds.py. The seeds are small, valid
examples of each input format, so the fuzzer starts from the structure and mutates it.
"""
import os
import struct

FUZZ = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(FUZZ)


def write(target, name, data):
    if isinstance(data, str):
        data = data.encode()
    folder = os.path.join(FUZZ, "corpus", target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "seed-" + name), "wb") as f:
        f.write(data)


def msg(tag, body):
    return tag + struct.pack(">i", len(body) + 4) + body


def cstr(s):
    return s.encode() + b"\0"


def i16(n):
    return struct.pack(">h", n)


def i32(n):
    return struct.pack(">i", n)


# pg_frontend: phase byte (even: startup first; odd: messages only), then the stream.
startup_body = i32(196608) + cstr("user") + cstr("agent") + cstr("database") + cstr("app") + b"\0"
startup = i32(len(startup_body) + 4) + startup_body
password = msg(b"p", cstr("eyJhbGciOiJFUzI1NiJ9.e30.c2ln"))
query = msg(b"Q", cstr("SELECT * FROM public.orders WHERE id = 1"))
bind = msg(
    b"B",
    cstr("portal1") + cstr("stmt1")
    + i16(2) + i16(0) + i16(1)          # parameter formats
    + i16(2) + i32(3) + b"abc" + i32(-1)  # parameters: 'abc', NULL
    + i16(1) + i16(1),                  # result formats
)
extended = (
    msg(b"P", cstr("stmt1") + cstr("SELECT $1::text, $2::int") + i16(0))
    + bind
    + msg(b"D", b"P" + cstr("portal1"))
    + msg(b"E", cstr("portal1") + i32(0))
    + msg(b"C", b"S" + cstr("stmt1"))
    + msg(b"S", b"")
    + msg(b"H", b"")
)
copy_in = msg(b"Q", cstr("COPY t FROM STDIN")) + msg(b"d", b"1\tx\n") + msg(b"c", b"") + msg(b"f", cstr("oops"))
write("pg_frontend", "startup-query", b"\0" + startup + password + query + msg(b"X", b""))
write("pg_frontend", "ssl-request", b"\0" + i32(8) + i32(80877103))
write("pg_frontend", "cancel", b"\0" + i32(16) + i32(80877102) + i32(1234) + i32(5678))
write("pg_frontend", "extended", b"\1" + extended)
write("pg_frontend", "copy-in", b"\1" + copy_in)
write("pg_frontend", "function-call", b"\1" + msg(b"F", i32(1) + i16(0) + i16(0) + i16(0)))


# pg_backend: requests in flight, a strategy, then the resource's stream.
def request_bytes(kinds):
    return bytes([len(kinds)]) + bytes(kinds)


QUERY, PARSE, BIND, DESCRIBE_STMT, DESCRIBE_PORTAL, GATEWAY_DESCRIBE, EXECUTE, CLOSE, SYNC = range(9)


def column(name, type_oid, fmt=0, table=0, attnum=0):
    return cstr(name) + i32(table) + i16(attnum) + i32(type_oid) + i16(-1) + i32(-1) + i16(fmt)


def data_row(values):
    body = i16(len(values))
    for v in values:
        if v is None:
            body += i32(-1)
        else:
            v = v.encode() if isinstance(v, str) else v
            body += i32(len(v)) + v
    return msg(b"D", body)


row_description = msg(
    b"T",
    i16(4) + column("id", 23) + column("email", 25) + column("note", 1043, fmt=1) + column("raw", 17, fmt=1),
)
rows = (
    data_row(["1", "jane@example.com", "ssn 123-45-6789", b"\x00\x01"])
    + data_row(["2", "card 4111 1111 1111 1111", None, b"\xff"])
    + data_row(["3", "nothing here", "DE89 3704 0044 0532 0130 00", None])
)
simple = row_description + rows + msg(b"C", cstr("SELECT 3")) + msg(b"Z", b"I")
error = msg(b"E", b"SERROR\0VERROR\0C42P01\0Mrelation \"x\" does not exist\0P15\0\0") + msg(b"Z", b"I")
notice = msg(b"N", b"SNOTICE\0C00000\0Mhello\0\0") + msg(b"S", cstr("client_encoding") + cstr("UTF8"))
copy_out = (
    msg(b"H", b"\0" + i16(2) + i16(0) + i16(0))
    + msg(b"d", b"1\tjane@example.com\t\\N\n")
    + msg(b"d", b"2,\"Lovelace, Ada\",\"say \"\"hi\"\"\"\n")
    + msg(b"d", b"3\t\\x41\\101\\t\n")
    + msg(b"c", b"")
    + msg(b"C", cstr("COPY 3"))
    + msg(b"Z", b"I")
)
extended_answer = (
    msg(b"1", b"") + msg(b"2", b"") + row_description + rows
    + msg(b"C", cstr("SELECT 3")) + msg(b"Z", b"I")
)
sasl = msg(b"R", i32(11) + b"r=abc,s=QSXCR+Q6sek8bf92,i=4096")
write("pg_backend", "simple-redact", request_bytes([QUERY]) + b"\0" + simple)
write("pg_backend", "simple-last4", request_bytes([QUERY]) + b"\1" + simple)
write("pg_backend", "simple-email", request_bytes([QUERY]) + b"\2" + simple)
write("pg_backend", "error", request_bytes([QUERY]) + b"\3" + error + notice)
write("pg_backend", "copy-out", request_bytes([QUERY]) + b"\4" + copy_out)
write(
    "pg_backend",
    "extended",
    request_bytes([PARSE, BIND, GATEWAY_DESCRIBE, EXECUTE, SYNC]) + b"\0" + extended_answer,
)
write("pg_backend", "sasl", request_bytes([]) + b"\0" + sasl)

# sql_classify: statements; a NUL separates two strings classified through one cache.
sql = {
    "select": "SELECT id, email FROM public.customers WHERE id = 42",
    "join-cte": "WITH x AS (SELECT * FROM orders o JOIN customers c ON c.id = o.customer_id) SELECT count(*) FROM x",
    "dml": "INSERT INTO t (a, b) VALUES (1, 'x') ON CONFLICT (a) DO UPDATE SET b = excluded.b RETURNING *; DELETE FROM t WHERE a > 3",
    "utility": "BEGIN; SET search_path TO app, public; COPY public.t (a, b) TO STDOUT WITH (FORMAT csv, HEADER); COMMIT",
    "prepare": "PREPARE p AS UPDATE t SET a = $1 WHERE b = $2; EXECUTE p(1, 2); DEALLOCATE p",
    "functions": "SELECT pg_read_file('/etc/passwd'), set_config('role', 'x', false), lower(name) FROM t",
    "ddl": "CREATE TABLE s.t (id int PRIMARY KEY, v text); ALTER TABLE s.t ADD COLUMN w int; DROP TABLE s.t",
    "shape-pair": "SELECT * FROM t WHERE a = 1 AND b = 'x'\0SELECT * FROM t WHERE a = 2 AND b = 'yy'",
    "exact-pair": "SELECT 1\0SELECT 1",
    "syntax-error": "SELEC * FROM t",
    "merge": "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN UPDATE SET v = s.v WHEN NOT MATCHED THEN INSERT VALUES (s.id, s.v)",
    "cursor": "DECLARE c CURSOR FOR SELECT * FROM t; FETCH 10 FROM c; CLOSE c",
    # Pairs the literal scanner reads alike: quotes doubled, decimals, digits in names
    # and comments, a cast; the second is answered by the scanned shape.
    "literal-pair": "SELECT a1, 'it''s' FROM t2 /* 3 */ WHERE x = 1.5 AND y = '5'::int -- '\n\0SELECT a1, '' FROM t2 /* 3 */ WHERE x = 22.75 AND y = 'é'::int -- '\n",
    "literal-sign-pair": "UPDATE t SET a = a - 1 WHERE id IN (7, 8)\0UPDATE t SET a = a - 100 WHERE id IN (0, 09)",
}
for name, text in sql.items():
    write("sql_classify", name, text)

# token: even first byte: a credential as sent; odd: header NUL payload, signed by the harness.
import base64


def b64(s):
    return base64.urlsafe_b64encode(s.encode()).rstrip(b"=").decode()


write("token", "jws-unsigned", "\0" + b64('{"alg":"ES256","kid":"k"}') + "." + b64('{"iss":"sluice-local"}') + ".c2ln")
write("token", "jws-none", "\0" + b64('{"alg":"none","kid":"k"}') + "." + b64('{"iss":"sluice-local","aud":"sluice","sub":"a","exp":99999999999}') + ".")
write("token", "jwe", "\0a.b.c.d.e")
write("token", "api-key", "\0sk_sluice_abcdefghijklmnop_" + "A" * 43)
header = '{"alg":"ES256","kid":"$kid","typ":"JWT"}'
good = '{"iss":"sluice-local","aud":"sluice","sub":"agent-7","exp":99999999999,"iat":1700000000,"nbf":1700000000,"jti":"x","roles":["r"],"groups":[],"idtyp":"app","name":"Agent"}'
write("token", "signed-valid", "\1" + header + "\0" + good)
write("token", "signed-expired", "\1" + header + "\0" + good.replace("99999999999", "1700000001"))
write("token", "signed-aud-list", "\1" + header + "\0" + good.replace('"aud":"sluice"', '"aud":["other","sluice"]'))
write("token", "signed-wrong-iss", "\1" + header + "\0" + good.replace("sluice-local", "https://evil"))
write("token", "signed-crit", "\1" + '{"alg":"ES256","kid":"$kid","crit":["b64"]}' + "\0" + good)
write("token", "signed-rs256", "\1" + '{"alg":"RS256","kid":"$kid"}' + "\0" + good)

# config: the example config and a small one.
with open(os.path.join(ROOT, "examples", "sluice.yaml")) as f:
    write("config", "example", f.read())
write("config", "minimal", """listen: { admin: 127.0.0.1:8470, postgres: 127.0.0.1:6432 }
identity:
  providers:
    - { name: local, local: {} }
connections:
  - { name: app, kind: postgres, upstream: "postgres://svc@127.0.0.1/app", search_path: ["$user", public] }
policies:
  - name: readers
    match: { roles: [reader], provider: local }
    connections: [app]
    allow:
      - { actions: [select], tables: ["public.*"], functions: ["public.f*"] }
    deny:
      - { tables: ["public.secrets"] }
    mask:
      - { columns: ["public.customers.email"], with: email }
      - { detect: [credit_card, us_ssn], with: redact }
    limits: { max_rows: 100, statement_timeout: 30s }
""")

# detectors: detector bits, strategy, value.
values = {
    "mixed": "ssn 123-45-6789, mail jane@example.com, card 4111 1111 1111 1111",
    "iban": "pay to DE89 3704 0044 0532 0130 00 today",
    "phone": "call +1 (555) 123-4567 or +44 20 7946 0958",
    "jwt": "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "private-key": "-----BEGIN PRIVATE KEY-----\nMIIBVQIBADANBgkqhkiG9w0BAQEFAASCAT8wggE7AgEAAkEA\n-----END PRIVATE KEY-----",
    "cloud-key": "aws AKIAIOSFODNN7EXAMPLE and ghp_abcdefghijklmnopqrstuvwxyz0123456789",
    "unicode": "caf\u00e9 \u00e4\u00f6\u00fc j\u00f6rg@b\u00fccher.de 4111\u00a01111\u00a01111\u00a01111",
    "overlap": "text +15551234567@sms.example.com now",
}
for i, (name, value) in enumerate(values.items()):
    write("detectors", name, bytes([0xFF, i % 5]) + value.encode())
