-- Xchange store: API keys of the HTTP API. A key is "xck_" + key_id + "_" + secret; the
-- store keeps the SHA-256 of the secret only, so a copy of the database gives no key.
CREATE TABLE api_keys (
    key_id      TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    org_id      TEXT COLLATE "C" NOT NULL,
    -- Space-separated scopes: submit, read, admin.
    scopes      TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    label       TEXT NOT NULL,
    created_ms  BIGINT NOT NULL,
    revoked_ms  BIGINT
);
