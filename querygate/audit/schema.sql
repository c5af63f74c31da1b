-- The audit log: append-only, hash-chained, partitioned by month. Run as the NOLOGIN owner
-- role; idempotent. The gateway may INSERT events (the trigger assigns seq and the chain link,
-- and writes the subject index) and SELECT; it can never change or remove a row.

CREATE TABLE IF NOT EXISTS querygate.audit_head (
    id      integer PRIMARY KEY CHECK (id = 1),
    seq     bigint NOT NULL,
    hash    bytea NOT NULL,
    log_id  uuid NOT NULL DEFAULT gen_random_uuid()  -- names this log in signed checkpoints
);
INSERT INTO querygate.audit_head (id, seq, hash)
VALUES (1, 0, '\x0000000000000000000000000000000000000000000000000000000000000000')
ON CONFLICT (id) DO NOTHING;

CREATE TABLE IF NOT EXISTS querygate.audit_events (
    seq             bigint NOT NULL,
    event_id        uuid NOT NULL,
    occurred_at     timestamptz NOT NULL,
    actor_id        text,
    actor_email     text,
    actor_roles     text[] NOT NULL DEFAULT '{}',
    function_name   text NOT NULL,
    parameters      jsonb NOT NULL,
    decision        text NOT NULL CHECK (decision IN ('allowed', 'denied', 'error')),
    reason          text,
    error_code      text,
    rows_returned   integer NOT NULL DEFAULT 0,
    fields          jsonb NOT NULL,
    subjects        jsonb NOT NULL,
    client_addr     text,
    duration_us     bigint NOT NULL,
    context         jsonb NOT NULL DEFAULT '{}',
    policy_version  text,
    content_hash    bytea NOT NULL,
    prev_hash       bytea NOT NULL,
    hash            bytea NOT NULL,
    PRIMARY KEY (seq, occurred_at)
) PARTITION BY RANGE (occurred_at);
CREATE INDEX IF NOT EXISTS audit_events_time ON querygate.audit_events (occurred_at, seq);
CREATE INDEX IF NOT EXISTS audit_events_actor_email
    ON querygate.audit_events (actor_email, occurred_at, seq);
CREATE INDEX IF NOT EXISTS audit_events_actor_id ON querygate.audit_events (actor_id, occurred_at, seq);
CREATE INDEX IF NOT EXISTS audit_events_function
    ON querygate.audit_events (function_name, occurred_at, seq);
CREATE INDEX IF NOT EXISTS audit_events_event_id ON querygate.audit_events (event_id);

-- The record-level index: one row per (event, data subject). Derived by the database from each
-- event's subjects, so `audit subject customer:42 --from --to` is an index range scan.
CREATE TABLE IF NOT EXISTS querygate.audit_subjects (
    subject_type  text NOT NULL,
    subject_id    text NOT NULL,
    occurred_at   timestamptz NOT NULL,
    seq           bigint NOT NULL
) PARTITION BY RANGE (occurred_at);
CREATE INDEX IF NOT EXISTS audit_subjects_lookup
    ON querygate.audit_subjects (subject_type, subject_id, occurred_at, seq);

-- The versions of the catalog and policy that decided events (events.policy_version).
CREATE TABLE IF NOT EXISTS querygate.policy_versions (
    version        text PRIMARY KEY,
    first_seen_at  timestamptz NOT NULL DEFAULT now(),
    recorded_by    text NOT NULL DEFAULT session_user,
    rules          jsonb NOT NULL,
    source         jsonb NOT NULL DEFAULT '{}'
);

-- Assign the sequence number and the chain link under the head's row lock: gapless, one head,
-- and the writer cannot choose either. Then index the event's subjects.
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
    INSERT INTO querygate.audit_subjects (subject_type, subject_id, occurred_at, seq)
    SELECT DISTINCT s ->> 'type', s ->> 'id', NEW.occurred_at, NEW.seq
    FROM jsonb_array_elements(NEW.subjects) AS s
    WHERE s ->> 'type' IS NOT NULL AND s ->> 'id' IS NOT NULL;
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

-- Refuse TRUNCATE on one table (statement triggers are not inherited by partitions).
CREATE OR REPLACE FUNCTION querygate.audit_protect(tbl regclass) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    name text := (SELECT relname FROM pg_class WHERE oid = tbl);
    trigger text;
BEGIN
    EXECUTE format('DROP TRIGGER IF EXISTS no_truncate ON %s', tbl);
    EXECUTE format('CREATE TRIGGER no_truncate BEFORE TRUNCATE ON %s '
                   'FOR EACH STATEMENT EXECUTE FUNCTION querygate.audit_refuse()', tbl);
    EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER no_truncate', tbl);
    FOR trigger IN SELECT tgname FROM pg_trigger WHERE tgrelid = tbl AND NOT tgisinternal LOOP
        EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER %I', tbl, trigger);
    END LOOP;
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
DROP TRIGGER IF EXISTS audit_subjects_no_change ON querygate.audit_subjects;
CREATE TRIGGER audit_subjects_no_change BEFORE UPDATE OR DELETE ON querygate.audit_subjects
    FOR EACH ROW EXECUTE FUNCTION querygate.audit_refuse();
DROP TRIGGER IF EXISTS audit_head_no_delete ON querygate.audit_head;
CREATE TRIGGER audit_head_no_delete BEFORE DELETE ON querygate.audit_head
    FOR EACH ROW EXECUTE FUNCTION querygate.audit_refuse();
DROP TRIGGER IF EXISTS policy_versions_no_change ON querygate.policy_versions;
CREATE TRIGGER policy_versions_no_change BEFORE UPDATE OR DELETE ON querygate.policy_versions
    FOR EACH ROW EXECUTE FUNCTION querygate.audit_refuse();

-- ENABLE ALWAYS: session_replication_role = replica does not switch them off.
ALTER TABLE querygate.audit_events ENABLE ALWAYS TRIGGER audit_events_chain;
ALTER TABLE querygate.audit_events ENABLE ALWAYS TRIGGER audit_events_no_change;
ALTER TABLE querygate.audit_events ENABLE ALWAYS TRIGGER audit_events_no_truncate;
ALTER TABLE querygate.audit_subjects ENABLE ALWAYS TRIGGER audit_subjects_no_change;
ALTER TABLE querygate.audit_head ENABLE ALWAYS TRIGGER audit_head_no_delete;
ALTER TABLE querygate.policy_versions ENABLE ALWAYS TRIGGER policy_versions_no_change;
SELECT querygate.audit_protect('querygate.audit_head');
SELECT querygate.audit_protect('querygate.audit_subjects');
SELECT querygate.audit_protect('querygate.policy_versions');

-- Rows whose month has no partition yet land here (partitions are made ahead of time).
CREATE TABLE IF NOT EXISTS querygate.audit_events_default
    PARTITION OF querygate.audit_events DEFAULT;
CREATE TABLE IF NOT EXISTS querygate.audit_subjects_default
    PARTITION OF querygate.audit_subjects DEFAULT;
SELECT querygate.audit_protect('querygate.audit_events_default');
SELECT querygate.audit_protect('querygate.audit_subjects_default');

-- One month's partitions of the events and the subject index, made empty and attached; false
-- when they exist already or cannot be made now (a lock is busy, or the default partition
-- already holds rows of that month). Callable by the gateway: it only ever adds empty tables.
CREATE OR REPLACE FUNCTION querygate.audit_add_month(month date) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    first_day timestamptz := make_timestamptz(extract(year FROM month)::int,
                                              extract(month FROM month)::int, 1, 0, 0, 0, 'UTC');
    suffix text := to_char(month, '"y"YYYY"m"MM');
    parent text;
    part text;
    made boolean := false;
BEGIN
    PERFORM set_config('lock_timeout', '500ms', true);
    FOREACH parent IN ARRAY ARRAY['audit_events', 'audit_subjects'] LOOP
        part := parent || '_' || suffix;
        CONTINUE WHEN to_regclass('querygate.' || part) IS NOT NULL;
        BEGIN
            EXECUTE format('CREATE TABLE querygate.%I (LIKE querygate.%I INCLUDING DEFAULTS '
                           'INCLUDING CONSTRAINTS)', part, parent);
            EXECUTE format('ALTER TABLE querygate.%I ATTACH PARTITION querygate.%I '
                           'FOR VALUES FROM (%L) TO (%L)', parent, part, first_day,
                           first_day + interval '1 month');
            PERFORM querygate.audit_protect(format('querygate.%I', part)::regclass);
            made := true;
        EXCEPTION WHEN lock_not_available OR check_violation OR object_not_in_prerequisite_state
        THEN
            RAISE NOTICE 'querygate audit: partition % not made now (%)', part, SQLERRM;
            RETURN false;
        END;
    END LOOP;
    RETURN made;
END
$$;

-- Partitions from one month before now to `ahead` months after; returns how many were made.
CREATE OR REPLACE FUNCTION querygate.audit_ensure_partitions(ahead integer DEFAULT 3)
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    this_month date := date_trunc('month', now() AT TIME ZONE 'UTC')::date;
    made integer := 0;
BEGIN
    IF ahead < 0 OR ahead > 24 THEN
        RAISE EXCEPTION 'querygate audit: ahead must be between 0 and 24 months';
    END IF;
    FOR i IN -1 .. ahead LOOP
        IF querygate.audit_add_month((this_month + make_interval(months => i))::date) THEN
            made := made + 1;
        END IF;
    END LOOP;
    RETURN made;
END
$$;
SELECT querygate.audit_ensure_partitions(12);
