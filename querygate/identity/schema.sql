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

-- Single sign-on and provisioning (issue 6). Who manages a person: 'local' (the CLI),
-- 'oidc' (created at first sign-in; roles follow the token) or 'scim' (the identity
-- provider pushes the person and their groups; roles follow the groups).
ALTER TABLE querygate.users ADD COLUMN IF NOT EXISTS managed_by text NOT NULL DEFAULT 'local';
ALTER TABLE querygate.users ADD COLUMN IF NOT EXISTS display_name text;
ALTER TABLE querygate.users ADD COLUMN IF NOT EXISTS external_id text;
ALTER TABLE querygate.users ADD COLUMN IF NOT EXISTS oidc_subject text;
-- Sign-in sessions (OIDC tokens) issued before this moment are refused.
ALTER TABLE querygate.users ADD COLUMN IF NOT EXISTS sessions_valid_after timestamptz;
-- Who last changed the status (offboarded, suspended, reactivated), and when.
ALTER TABLE querygate.users ADD COLUMN IF NOT EXISTS status_changed_by text;
ALTER TABLE querygate.users ADD COLUMN IF NOT EXISTS status_changed_at timestamptz;
ALTER TABLE querygate.users ADD COLUMN IF NOT EXISTS scim_deleted_at timestamptz;
CREATE UNIQUE INDEX IF NOT EXISTS users_oidc_subject ON querygate.users (oidc_subject);
CREATE INDEX IF NOT EXISTS users_external_id ON querygate.users (external_id);

-- An agent's token acts for one person: it never gets more than that person's roles.
ALTER TABLE querygate.tokens ADD COLUMN IF NOT EXISTS on_behalf_of text
    REFERENCES querygate.users (id);

-- SCIM groups: their members' roles come from the identity section's role_map.
CREATE TABLE IF NOT EXISTS querygate.scim_groups (
    id            text PRIMARY KEY,
    display_name  text NOT NULL,
    external_id   text,
    members       text[] NOT NULL DEFAULT '{}',
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    deleted_at    timestamptz
);
CREATE UNIQUE INDEX IF NOT EXISTS scim_groups_name
    ON querygate.scim_groups (display_name) WHERE deleted_at IS NULL;
CREATE INDEX IF NOT EXISTS scim_groups_members ON querygate.scim_groups USING gin (members);

-- Just-in-time elevation and break-glass: one row per request, its decision and its window.
-- A grant is in force while status = 'approved' and starts_at <= now() < expires_at.
CREATE TABLE IF NOT EXISTS querygate.access_requests (
    id             text PRIMARY KEY,
    user_id        text NOT NULL REFERENCES querygate.users (id),
    role           text NOT NULL,
    reason         text NOT NULL CHECK (length(btrim(reason)) > 0),
    duration_s     integer NOT NULL CHECK (duration_s > 0),
    functions      text[] NOT NULL DEFAULT '{}',
    params         jsonb NOT NULL DEFAULT '{}',
    break_glass    boolean NOT NULL DEFAULT false,
    status         text NOT NULL DEFAULT 'pending'
                   CHECK (status IN ('pending', 'approved', 'denied', 'cancelled', 'revoked')),
    requested_at   timestamptz NOT NULL DEFAULT now(),
    decided_by     text REFERENCES querygate.users (id),
    decided_at     timestamptz,
    decision_note  text,
    starts_at      timestamptz,
    expires_at     timestamptz,
    revoked_by     text,
    revoked_at     timestamptz,
    -- Nobody approves their own request; only break-glass is self-granted.
    CONSTRAINT access_requests_no_self_approval
        CHECK (break_glass OR decided_by IS NULL OR decided_by <> user_id),
    CONSTRAINT access_requests_window
        CHECK (status <> 'approved' OR (starts_at IS NOT NULL AND expires_at > starts_at))
);
CREATE INDEX IF NOT EXISTS access_requests_active
    ON querygate.access_requests (user_id, expires_at) WHERE status = 'approved';
CREATE INDEX IF NOT EXISTS access_requests_pending
    ON querygate.access_requests (requested_at) WHERE status = 'pending';
