-- Just-in-time approval (DESIGN.md §5): one row per request an `approve` rule made, and
-- the decisions approvers gave it.
--
-- `status` moves only forward, by conditional updates (`... WHERE status = 'pending'`)
-- inside one transaction each, so a request is decided, expired, withdrawn or redeemed
-- once whoever races for it. `requester` is the agent's principal as JSON
-- (`sluice_core::Principal`) and is what is read back; `requester_provider` and
-- `requester_subject` repeat its provider and subject for redeeming a ticket and are never
-- read back. `parameters` is a JSON array of strings and nulls, `approvers` a JSON
-- `Subjects` object. The grant columns are NULL for hold requests; `grant_expires_at`,
-- `resolved_at` and `redeemed_at` stay NULL until the request is approved, leaves
-- `pending` and is redeemed, respectively.
--
-- Times are integer microseconds since the Unix epoch, as given by the caller.
CREATE TABLE approvals (
    id                 TEXT    NOT NULL PRIMARY KEY CHECK (length(id) > 0),
    mode               TEXT    NOT NULL CHECK (mode IN ('hold', 'ticket')),
    status             TEXT    NOT NULL CHECK (status IN
        ('pending', 'approved', 'denied', 'expired', 'withdrawn', 'redeemed')),
    requester_provider TEXT    NOT NULL,
    requester_subject  TEXT    NOT NULL,
    requester          TEXT    NOT NULL
        CHECK (json_valid(requester) AND json_type(requester) = 'object'),
    connection         TEXT    NOT NULL CHECK (length(connection) > 0),
    protocol           TEXT    NOT NULL,
    session_id         TEXT    NULL,
    statement          TEXT    NOT NULL,
    parameters         TEXT    NOT NULL
        CHECK (json_valid(parameters) AND json_type(parameters) = 'array'),
    fingerprint        TEXT    NOT NULL CHECK (length(fingerprint) > 0),
    reason             TEXT    NOT NULL,
    rule               TEXT    NOT NULL,
    approvers          TEXT    NOT NULL
        CHECK (json_valid(approvers) AND json_type(approvers) = 'object'),
    min_approvals      INTEGER NOT NULL CHECK (min_approvals >= 1),
    requested_at       INTEGER NOT NULL,
    expires_at         INTEGER NOT NULL,
    grant_window       INTEGER NULL,
    grant_expires_at   INTEGER NULL,
    resolved_at        INTEGER NULL,
    redeemed_at        INTEGER NULL
) STRICT;

-- Redeeming a ticket looks up the requester's approved ones for one statement.
CREATE INDEX approvals_redeem
    ON approvals (requester_provider, requester_subject, connection, fingerprint, status);
-- The expiry sweep finds pending requests by deadline.
CREATE INDEX approvals_due ON approvals (status, expires_at);
-- Listing is newest first, by (requested_at, id).
CREATE INDEX approvals_requested ON approvals (requested_at, id);

-- Decisions in the order they were recorded (`seq`, from 1 per request). One per approver
-- (provider and subject) and request: approvals are counted by distinct approver.
-- `approver` is the approver's principal as JSON and is what is read back; the two
-- columns before it repeat its provider and subject for that constraint.
CREATE TABLE approval_decisions (
    approval_id       TEXT    NOT NULL REFERENCES approvals (id),
    seq               INTEGER NOT NULL CHECK (seq >= 1),
    approver_provider TEXT    NOT NULL,
    approver_subject  TEXT    NOT NULL,
    approver          TEXT    NOT NULL
        CHECK (json_valid(approver) AND json_type(approver) = 'object'),
    verdict           TEXT    NOT NULL CHECK (verdict IN ('approve', 'deny')),
    reason            TEXT    NOT NULL,
    at                INTEGER NOT NULL,
    PRIMARY KEY (approval_id, seq),
    UNIQUE (approval_id, approver_provider, approver_subject)
) STRICT;
