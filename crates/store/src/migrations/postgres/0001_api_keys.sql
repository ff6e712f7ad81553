-- API keys, as in ../0001_api_keys.sql (the SQLite schema, whose comments say why each
-- rule exists), in PostgreSQL's types.
--
-- `id` sorts with COLLATE "C" (byte order, as SQLite compares text), so listing by
-- (created_at, id) gives the same order on both stores whatever the database's collation.
-- `roles` and `groups` are JSON text, checked by a cast rather than stored as jsonb: they
-- are read back as written.
CREATE TABLE api_keys (
    id            TEXT COLLATE "C" NOT NULL PRIMARY KEY CHECK (length(id) > 0),
    name          TEXT   NOT NULL UNIQUE CHECK (length(name) > 0),
    secret_sha256 TEXT   NOT NULL CHECK (secret_sha256 ~ '^[0-9a-f]{64}$'),
    subject       TEXT   NOT NULL,
    roles         TEXT   NOT NULL CHECK (json_typeof(roles::json) = 'array'),
    groups        TEXT   NOT NULL CHECK (json_typeof(groups::json) = 'array'),
    created_at    BIGINT NOT NULL,
    revoked_at    BIGINT NULL
);

CREATE INDEX api_keys_created_at_id ON api_keys (created_at, id);
