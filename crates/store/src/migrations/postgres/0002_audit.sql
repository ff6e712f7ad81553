-- The audit trail, as in ../0002_audit.sql (the SQLite schema, whose comments say what
-- each table and column is for), in PostgreSQL's types.
--
-- `body` is TEXT, never jsonb: the event's hash covers its exact serialization, and jsonb
-- would reorder keys and drop duplicates. The cast to json only checks that it is JSON
-- (json keeps the text as given).
--
-- Session ids sort with COLLATE "C" (byte order, as SQLite compares text), so paging
-- through `session_ids` and listing sessions give the same order on both stores whatever
-- the database's collation, and the keys' indexes serve those orders.
CREATE TABLE audit_events (
    session_id TEXT COLLATE "C" NOT NULL CHECK (length(session_id) > 0),
    seq        BIGINT NOT NULL CHECK (seq >= 0),
    at         TEXT   NOT NULL,
    at_us      BIGINT NOT NULL,
    kind       TEXT   NOT NULL,
    body       TEXT   NOT NULL CHECK (body::json IS NOT NULL),
    prev_hash  TEXT   NOT NULL,
    hash       TEXT   NOT NULL,
    PRIMARY KEY (session_id, seq)
);

CREATE INDEX audit_events_at ON audit_events (at_us);

CREATE TABLE audit_sessions (
    session_id             TEXT COLLATE "C" NOT NULL PRIMARY KEY
        CHECK (length(session_id) > 0),
    opened_at              TEXT    NOT NULL,
    opened_at_us           BIGINT  NOT NULL,
    status                 TEXT    NOT NULL
        CHECK (status IN ('open', 'closed', 'login_refused')),
    principal_provider     TEXT    NULL,
    principal_subject      TEXT    NULL,
    principal_display_name TEXT    NULL,
    connection             TEXT    NOT NULL,
    protocol               TEXT    NOT NULL,
    client_addr            TEXT    NOT NULL,
    tls                    BOOLEAN NOT NULL,
    closed_at              TEXT    NULL,
    closed_at_us           BIGINT  NULL,
    close_reason           TEXT    NULL
);

CREATE INDEX audit_sessions_opened ON audit_sessions (opened_at_us, session_id);
CREATE INDEX audit_sessions_subject ON audit_sessions (principal_subject, opened_at_us);
CREATE INDEX audit_sessions_display_name ON audit_sessions (principal_display_name, opened_at_us);
CREATE INDEX audit_sessions_connection ON audit_sessions (connection, opened_at_us);

-- `id` grows in the order checkpoints are stored (an identity never reuses a value).
CREATE TABLE audit_checkpoints (
    id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at        TEXT   NOT NULL,
    at_us     BIGINT NOT NULL,
    key_id    TEXT   NOT NULL,
    heads     TEXT   NOT NULL CHECK (json_typeof(heads::json) = 'array'),
    signature TEXT   NOT NULL
);
