-- Just-in-time approval, as in ../0003_approvals.sql (the SQLite schema, whose comments
-- say what each table and column is for), in PostgreSQL's types.
--
-- Ids sort with COLLATE "C" (byte order, as SQLite compares text), so listing newest
-- first by (requested_at, id) gives the same order on both stores whatever the database's
-- collation. The JSON columns are text, checked by a cast rather than stored as jsonb:
-- they are read back as written. `min_approvals` is BIGINT because it holds any u32.
CREATE TABLE approvals (
    id                 TEXT COLLATE "C" NOT NULL PRIMARY KEY CHECK (length(id) > 0),
    mode               TEXT   NOT NULL CHECK (mode IN ('hold', 'ticket')),
    status             TEXT   NOT NULL CHECK (status IN
        ('pending', 'approved', 'denied', 'expired', 'withdrawn', 'redeemed')),
    requester_provider TEXT COLLATE "C" NOT NULL,
    requester_subject  TEXT COLLATE "C" NOT NULL,
    requester          TEXT   NOT NULL CHECK (json_typeof(requester::json) = 'object'),
    connection         TEXT COLLATE "C" NOT NULL CHECK (length(connection) > 0),
    protocol           TEXT   NOT NULL,
    session_id         TEXT   NULL,
    statement          TEXT   NOT NULL,
    parameters         TEXT   NOT NULL CHECK (json_typeof(parameters::json) = 'array'),
    fingerprint        TEXT COLLATE "C" NOT NULL CHECK (length(fingerprint) > 0),
    reason             TEXT   NOT NULL,
    rule               TEXT   NOT NULL,
    approvers          TEXT   NOT NULL CHECK (json_typeof(approvers::json) = 'object'),
    min_approvals      BIGINT NOT NULL CHECK (min_approvals >= 1),
    requested_at       BIGINT NOT NULL,
    expires_at         BIGINT NOT NULL,
    grant_window       BIGINT NULL,
    grant_expires_at   BIGINT NULL,
    resolved_at        BIGINT NULL,
    redeemed_at        BIGINT NULL
);

CREATE INDEX approvals_redeem
    ON approvals (requester_provider, requester_subject, connection, fingerprint, status);
CREATE INDEX approvals_due ON approvals (status, expires_at);
CREATE INDEX approvals_requested ON approvals (requested_at, id);

CREATE TABLE approval_decisions (
    approval_id       TEXT COLLATE "C" NOT NULL REFERENCES approvals (id),
    seq               BIGINT NOT NULL CHECK (seq >= 1),
    approver_provider TEXT COLLATE "C" NOT NULL,
    approver_subject  TEXT COLLATE "C" NOT NULL,
    approver          TEXT   NOT NULL CHECK (json_typeof(approver::json) = 'object'),
    verdict           TEXT   NOT NULL CHECK (verdict IN ('approve', 'deny')),
    reason            TEXT   NOT NULL,
    at                BIGINT NOT NULL,
    PRIMARY KEY (approval_id, seq),
    CONSTRAINT approval_decisions_one_per_approver
        UNIQUE (approval_id, approver_provider, approver_subject)
);
