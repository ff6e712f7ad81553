-- API keys for agents that have no OIDC provider (`sluice keys create/list/revoke`).
--
-- Only the SHA-256 of the secret is stored; the secret itself is shown once at creation.
-- `name` is unique over all keys, revoked ones included: names show up in the audit
-- log, and reusing a revoked key's name would make that history ambiguous.
-- `roles` and `groups` are JSON arrays of strings (the store never queries inside them).
-- Times are integer seconds since the Unix epoch, as given by the caller.
CREATE TABLE api_keys (
    id            TEXT    NOT NULL PRIMARY KEY CHECK (length(id) > 0),
    name          TEXT    NOT NULL UNIQUE      CHECK (length(name) > 0),
    secret_sha256 TEXT    NOT NULL
        CHECK (length(secret_sha256) = 64 AND secret_sha256 NOT GLOB '*[^0-9a-f]*'),
    subject       TEXT    NOT NULL,
    roles         TEXT    NOT NULL CHECK (json_valid(roles) AND json_type(roles) = 'array'),
    groups        TEXT    NOT NULL CHECK (json_valid(groups) AND json_type(groups) = 'array'),
    created_at    INTEGER NOT NULL,
    revoked_at    INTEGER NULL
) STRICT;

-- Listing is ordered by (created_at, id); the index keeps that cheap as keys accumulate.
CREATE INDEX api_keys_created_at_id ON api_keys (created_at, id);
