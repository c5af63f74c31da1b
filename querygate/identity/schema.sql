-- Identity directory: people and services, and their API tokens (hashes only).
CREATE TABLE IF NOT EXISTS querygate.users (
    id          text PRIMARY KEY,
    email       text NOT NULL UNIQUE,
    kind        text NOT NULL DEFAULT 'person' CHECK (kind IN ('person', 'service')),
    roles       text[] NOT NULL DEFAULT '{}',
    status      text NOT NULL DEFAULT 'active'
                CHECK (status IN ('active', 'suspended', 'offboarded')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS querygate.tokens (
    id          text PRIMARY KEY,
    user_id     text NOT NULL REFERENCES querygate.users (id),
    token_hash  bytea NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz,
    revoked_at  timestamptz
);
CREATE INDEX IF NOT EXISTS tokens_user ON querygate.tokens (user_id);
