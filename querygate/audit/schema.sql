-- The audit log: append-only, hash-chained. The owner is a NOLOGIN role; the
-- gateway may INSERT (the trigger assigns seq and the chain link) and SELECT.
CREATE TABLE IF NOT EXISTS querygate.audit_head (
    id    integer PRIMARY KEY CHECK (id = 1),
    seq   bigint NOT NULL,
    hash  bytea NOT NULL
);
INSERT INTO querygate.audit_head (id, seq, hash)
VALUES (1, 0, '\x0000000000000000000000000000000000000000000000000000000000000000')
ON CONFLICT (id) DO NOTHING;

CREATE TABLE IF NOT EXISTS querygate.audit_events (
    seq            bigint PRIMARY KEY,
    event_id       uuid NOT NULL UNIQUE,
    occurred_at    timestamptz NOT NULL,
    actor_id       text,
    actor_email    text,
    actor_roles    text[] NOT NULL DEFAULT '{}',
    function_name  text NOT NULL,
    parameters     jsonb NOT NULL,
    decision       text NOT NULL CHECK (decision IN ('allowed', 'denied', 'error')),
    reason         text,
    error_code     text,
    rows_returned  integer NOT NULL DEFAULT 0,
    fields         jsonb NOT NULL,
    subjects       jsonb NOT NULL,
    client_addr    text,
    duration_us    bigint NOT NULL,
    context        jsonb NOT NULL DEFAULT '{}',
    content_hash   bytea NOT NULL,
    prev_hash      bytea NOT NULL,
    hash           bytea NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_events_time ON querygate.audit_events (occurred_at);
CREATE INDEX IF NOT EXISTS audit_events_actor ON querygate.audit_events (actor_email, occurred_at);
CREATE INDEX IF NOT EXISTS audit_events_subjects
    ON querygate.audit_events USING gin (subjects jsonb_path_ops);

-- Assign the sequence number and the chain link under the head's row lock:
-- gapless, one head, and the writer cannot choose either.
CREATE OR REPLACE FUNCTION querygate.audit_chain() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    head record;
BEGIN
    IF NEW.content_hash IS NULL OR length(NEW.content_hash) <> 32 THEN
        RAISE EXCEPTION 'querygate audit: content_hash must be 32 bytes';
    END IF;
    SELECT h.seq, h.hash INTO head FROM querygate.audit_head h WHERE h.id = 1 FOR UPDATE;
    NEW.seq := head.seq + 1;
    NEW.prev_hash := head.hash;
    NEW.hash := sha256(head.hash || int8send(NEW.seq) || NEW.content_hash);
    UPDATE querygate.audit_head SET seq = NEW.seq, hash = NEW.hash WHERE id = 1;
    RETURN NEW;
END
$$;

CREATE OR REPLACE FUNCTION querygate.audit_refuse() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RAISE EXCEPTION 'querygate audit log is append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$;

DROP TRIGGER IF EXISTS audit_events_chain ON querygate.audit_events;
CREATE TRIGGER audit_events_chain BEFORE INSERT ON querygate.audit_events
    FOR EACH ROW EXECUTE FUNCTION querygate.audit_chain();
DROP TRIGGER IF EXISTS audit_events_no_change ON querygate.audit_events;
CREATE TRIGGER audit_events_no_change BEFORE UPDATE OR DELETE ON querygate.audit_events
    FOR EACH ROW EXECUTE FUNCTION querygate.audit_refuse();
DROP TRIGGER IF EXISTS audit_events_no_truncate ON querygate.audit_events;
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON querygate.audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION querygate.audit_refuse();
DROP TRIGGER IF EXISTS audit_head_no_delete ON querygate.audit_head;
CREATE TRIGGER audit_head_no_delete BEFORE DELETE ON querygate.audit_head
    FOR EACH ROW EXECUTE FUNCTION querygate.audit_refuse();
DROP TRIGGER IF EXISTS audit_head_no_truncate ON querygate.audit_head;
CREATE TRIGGER audit_head_no_truncate BEFORE TRUNCATE ON querygate.audit_head
    FOR EACH STATEMENT EXECUTE FUNCTION querygate.audit_refuse();

-- ENABLE ALWAYS: session_replication_role = replica does not switch them off.
ALTER TABLE querygate.audit_events ENABLE ALWAYS TRIGGER audit_events_chain;
ALTER TABLE querygate.audit_events ENABLE ALWAYS TRIGGER audit_events_no_change;
ALTER TABLE querygate.audit_events ENABLE ALWAYS TRIGGER audit_events_no_truncate;
ALTER TABLE querygate.audit_head ENABLE ALWAYS TRIGGER audit_head_no_delete;
ALTER TABLE querygate.audit_head ENABLE ALWAYS TRIGGER audit_head_no_truncate;
