-- The audit trail (DESIGN.md §6): events chained per session, the sessions they make up,
-- and the gateway's signed checkpoints over the chains' heads.
--
-- `audit_events` holds each event exactly as `sluice-audit` serializes it: the envelope's
-- fields as columns and the body (with its "kind") as one JSON text, so what is read back
-- hashes to what was recorded. `at` is the hashed, canonical text
-- (`2026-05-01T09:30:00.123456Z`); `at_us` is the same instant in microseconds since the
-- epoch and `kind` repeats the body's "kind": both only serve queries (time ranges,
-- retention, filtering by kind) and are never read back into an event, so a mismatch
-- cannot change what verification sees.
--
-- `audit_sessions` is an index over the events, one row per session, written in the same
-- transaction as the session's opening (or refused login) and closing events: it is what
-- `sluice sessions list` reads, and never what verification trusts.
--
-- Times in `*_us` columns are integer microseconds since the Unix epoch.
CREATE TABLE audit_events (
    session_id TEXT    NOT NULL CHECK (length(session_id) > 0),
    seq        INTEGER NOT NULL CHECK (seq >= 0),
    at         TEXT    NOT NULL,
    at_us      INTEGER NOT NULL,
    kind       TEXT    NOT NULL,
    body       TEXT    NOT NULL CHECK (json_valid(body)),
    prev_hash  TEXT    NOT NULL,
    hash       TEXT    NOT NULL,
    -- One event per position: a second writer of the same session, or a batch written
    -- twice, fails instead of forking the chain. The key's index also serves reading a
    -- session in order and listing session ids.
    PRIMARY KEY (session_id, seq)
) STRICT;

-- Export since a time and retention scan events by time.
CREATE INDEX audit_events_at ON audit_events (at_us);

-- `status` is 'open' until a session_closed event, 'closed' after it, and 'login_refused'
-- for a refused login (a session of one event; its reason is in `close_reason`). The
-- principal columns are NULL for refused logins, which have no principal.
CREATE TABLE audit_sessions (
    session_id             TEXT    NOT NULL PRIMARY KEY CHECK (length(session_id) > 0),
    opened_at              TEXT    NOT NULL,
    opened_at_us           INTEGER NOT NULL,
    status                 TEXT    NOT NULL
        CHECK (status IN ('open', 'closed', 'login_refused')),
    principal_provider     TEXT    NULL,
    principal_subject      TEXT    NULL,
    principal_display_name TEXT    NULL,
    connection             TEXT    NOT NULL,
    protocol               TEXT    NOT NULL,
    client_addr            TEXT    NOT NULL,
    tls                    INTEGER NOT NULL CHECK (tls IN (0, 1)),
    closed_at              TEXT    NULL,
    closed_at_us           INTEGER NULL,
    close_reason           TEXT    NULL
) STRICT;

-- `sessions list` orders by opening time and filters by time, principal or connection.
CREATE INDEX audit_sessions_opened ON audit_sessions (opened_at_us, session_id);
CREATE INDEX audit_sessions_subject ON audit_sessions (principal_subject, opened_at_us);
CREATE INDEX audit_sessions_display_name ON audit_sessions (principal_display_name, opened_at_us);
CREATE INDEX audit_sessions_connection ON audit_sessions (connection, opened_at_us);

-- Checkpoints in the order they were stored (`id`), which is the order verification
-- reports them in. `heads` is the JSON array of chain heads exactly as signed.
CREATE TABLE audit_checkpoints (
    id        INTEGER NOT NULL PRIMARY KEY,
    at        TEXT    NOT NULL,
    at_us     INTEGER NOT NULL,
    key_id    TEXT    NOT NULL,
    heads     TEXT    NOT NULL CHECK (json_valid(heads) AND json_type(heads) = 'array'),
    signature TEXT    NOT NULL
) STRICT;
