-- Alerts: what the detector says about a person's pattern of access. Raised once
-- (the key makes raising idempotent), acknowledged by a reviewer, never deleted.
CREATE TABLE IF NOT EXISTS querygate.alerts (
    id                text PRIMARY KEY,
    key               text NOT NULL UNIQUE,
    actor_id          text NOT NULL,
    rule              text NOT NULL,
    severity          text NOT NULL CHECK (severity IN ('low', 'medium', 'high')),
    raised_at         timestamptz NOT NULL,
    summary           text NOT NULL,
    details           jsonb NOT NULL,
    status            text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'acknowledged')),
    created_at        timestamptz NOT NULL DEFAULT now(),
    acknowledged_at   timestamptz,
    acknowledged_by   text,
    note              text,
    actions           text[] NOT NULL DEFAULT '{}',
    webhook_status    text NOT NULL DEFAULT 'none'
                      CHECK (webhook_status IN ('none', 'pending', 'sent', 'failed')),
    webhook_attempts  integer NOT NULL DEFAULT 0,
    webhook_next_at   timestamptz,
    webhook_error     text
);
CREATE INDEX IF NOT EXISTS alerts_status ON querygate.alerts (status, raised_at DESC);
CREATE INDEX IF NOT EXISTS alerts_actor ON querygate.alerts (actor_id, raised_at DESC);
CREATE INDEX IF NOT EXISTS alerts_webhook ON querygate.alerts (webhook_next_at)
    WHERE webhook_status = 'pending';

-- Where the online detector has read the audit log up to (one row).
CREATE TABLE IF NOT EXISTS querygate.detect_cursor (
    id          integer PRIMARY KEY CHECK (id = 1),
    seq         bigint NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE OR REPLACE FUNCTION querygate.alerts_refuse() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RAISE EXCEPTION 'querygate alerts are kept: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$;

DROP TRIGGER IF EXISTS alerts_no_delete ON querygate.alerts;
CREATE TRIGGER alerts_no_delete BEFORE DELETE ON querygate.alerts
    FOR EACH ROW EXECUTE FUNCTION querygate.alerts_refuse();
DROP TRIGGER IF EXISTS alerts_no_truncate ON querygate.alerts;
CREATE TRIGGER alerts_no_truncate BEFORE TRUNCATE ON querygate.alerts
    FOR EACH STATEMENT EXECUTE FUNCTION querygate.alerts_refuse();
