-- The audit log: append-only, hash-chained, partitioned by month. Run as the NOLOGIN owner
-- role; idempotent. The gateway appends only through querygate.audit_append (which assigns seq
-- and the chain link and writes the subject index) and may SELECT; it can never insert rows of
-- its own choosing, change or remove a row.

CREATE TABLE IF NOT EXISTS querygate.audit_head (
    id      integer PRIMARY KEY CHECK (id = 1),
    seq     bigint NOT NULL,
    hash    bytea NOT NULL,
    log_id  uuid NOT NULL DEFAULT gen_random_uuid()  -- names this log in signed checkpoints
);
INSERT INTO querygate.audit_head (id, seq, hash)
VALUES (1, 0, '\x0000000000000000000000000000000000000000000000000000000000000000')
ON CONFLICT (id) DO NOTHING;

-- parameters, fields, subjects and context are `json`, not `jsonb`: they keep the canonical text
-- the writer hashed, so the server renders an event's hashed encoding exactly as stored and
-- `audit verify` hashes that rendering without parsing it (an edit still changes the bytes).
CREATE TABLE IF NOT EXISTS querygate.audit_events (
    seq             bigint NOT NULL,
    event_id        uuid NOT NULL,
    occurred_at     timestamptz NOT NULL,
    actor_id        text,
    actor_email     text,
    actor_roles     text[] NOT NULL DEFAULT '{}',
    function_name   text NOT NULL,
    parameters      json  NOT NULL,
    decision        text NOT NULL CHECK (decision IN ('allowed', 'denied', 'error')),
    reason          text,
    error_code      text,
    rows_returned   integer NOT NULL DEFAULT 0,
    fields          json  NOT NULL,
    subjects        json  NOT NULL,
    client_addr     text,
    duration_us     bigint NOT NULL,
    context         json  NOT NULL DEFAULT '{}',
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

-- Stores made before the hashed documents became `json` had these overloads (jsonb); the
-- current ones replace them, and jsonb columns of such stores still take json by assignment.
DROP FUNCTION IF EXISTS querygate.audit_append(uuid[], timestamptz[], text[], text[], jsonb[],
    text[], jsonb[], text[], text[], text[], integer[], jsonb[], jsonb[], text[], bigint[],
    jsonb[], text[], bytea[]);
DROP FUNCTION IF EXISTS querygate.audit_link(bytea, timestamptz, jsonb);

-- Stores made before the batch became one JSON document had this overload (a binary array per
-- column); the one below replaces it.
DROP FUNCTION IF EXISTS querygate.audit_append(uuid[], timestamptz[], text[], text[], jsonb[],
    text[], json[], text[], text[], text[], integer[], json[], json[], text[], bigint[], json[],
    text[], bytea[]);

-- One event of a batch as the writer sends it: the columns it chooses (never seq or the chain).
-- The four hashed documents arrive as JSON strings holding their canonical text, cast to json
-- on insert: a document may hold an escaped NUL (\u0000), which the json type keeps but which
-- json_populate_recordset cannot turn into text when the document is a nested JSON value.
DO $$
BEGIN
    CREATE TYPE querygate.audit_batch_event AS (
        event_id uuid, occurred_at timestamptz, actor_id text, actor_email text,
        actor_roles text[], function_name text, parameters text, decision text, reason text,
        error_code text, rows_returned integer, fields text, subjects text, client_addr text,
        duration_us bigint, context text, policy_version text, content_hash bytea);
EXCEPTION WHEN duplicate_object THEN NULL;
END
$$;

-- Appending: querygate.audit_append is the only way the gateway writes (it holds EXECUTE on it,
-- no INSERT on any audit table). It takes a batch as one JSON array of events (one parameter,
-- so a lone event costs the writer one small document, not eighteen arrays). The `json`
-- columns keep the hashed documents' text exactly as sent; the content constraint checks
-- every row against its content_hash. Under the head's
-- row lock it gives each event its sequence number and chain link, inserts the events and
-- their subject index rows set-wise, and moves the head once: gapless, one head, and the
-- writer chooses neither.
-- Its statements keep one generic plan per session (a custom plan, which the batch size made
-- look cheaper, was planned anew on every call), and the subject index's DISTINCT sorts: the
-- generic plan's row estimate (1,000 events of 100 subjects) made a hashed DISTINCT allocate
-- and scan a table of 100,000 buckets for the few rows of a batch.
CREATE OR REPLACE FUNCTION querygate.audit_append(p_events json)
RETURNS TABLE (seq bigint, hash bytea)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan SET enable_hashagg = off AS $$
DECLARE
    evs querygate.audit_batch_event[];
    n integer;
    head_seq bigint;
    head_hash bytea;
    seqs bigint[] := '{}';
    prevs bytea[] := '{}';
    hashes bytea[] := '{}';
BEGIN
    IF p_events IS NULL OR json_typeof(p_events) <> 'array' THEN
        RAISE EXCEPTION 'querygate audit: a batch is a JSON array of events';
    END IF;
    evs := ARRAY(SELECT e FROM json_populate_recordset(NULL::querygate.audit_batch_event, p_events) e);
    n := coalesce(cardinality(evs), 0);
    IF n = 0 OR n > 10000 THEN
        RAISE EXCEPTION 'querygate audit: a batch holds 1 to 10000 events';
    END IF;
    SELECT h.seq, h.hash INTO head_seq, head_hash
    FROM querygate.audit_head h WHERE h.id = 1 FOR UPDATE;
    FOR i IN 1 .. n LOOP
        IF evs[i].content_hash IS NULL OR length(evs[i].content_hash) <> 32 THEN
            RAISE EXCEPTION 'querygate audit: content_hash must be 32 bytes';
        END IF;
        prevs[i] := head_hash;
        head_seq := head_seq + 1;
        head_hash := sha256(head_hash || int8send(head_seq) || evs[i].content_hash);
        seqs[i] := head_seq;
        hashes[i] := head_hash;
    END LOOP;
    INSERT INTO querygate.audit_events (
        seq, event_id, occurred_at, actor_id, actor_email, actor_roles, function_name,
        parameters, decision, reason, error_code, rows_returned, fields, subjects, client_addr,
        duration_us, context, policy_version, content_hash, prev_hash, hash)
    SELECT seqs[e.i], e.event_id, e.occurred_at, e.actor_id, e.actor_email,
           coalesce(e.actor_roles, '{}'), e.function_name, e.parameters::json, e.decision,
           e.reason, e.error_code, e.rows_returned, e.fields::json, e.subjects::json,
           e.client_addr, e.duration_us, e.context::json, e.policy_version, e.content_hash,
           prevs[e.i], hashes[e.i]
    FROM unnest(evs) WITH ORDINALITY AS e(event_id, occurred_at, actor_id, actor_email,
        actor_roles, function_name, parameters, decision, reason, error_code, rows_returned,
        fields, subjects, client_addr, duration_us, context, policy_version, content_hash, i);
    INSERT INTO querygate.audit_subjects (subject_type, subject_id, occurred_at, seq)
    SELECT DISTINCT s ->> 'type', s ->> 'id', evs[i].occurred_at, seqs[i]
    FROM generate_series(1, n) AS i, json_array_elements(evs[i].subjects::json) AS s
    WHERE s ->> 'type' IS NOT NULL AND s ->> 'id' IS NOT NULL;
    UPDATE querygate.audit_head SET seq = head_seq, hash = head_hash WHERE id = 1;
    RETURN QUERY SELECT seqs[i], hashes[i] FROM generate_series(1, n) AS i ORDER BY i;
END
$$;

-- Any other INSERT (a superuser's, by hand) is linked row by row; rows placed by
-- audit_append (which runs as the owner) already are.
CREATE OR REPLACE FUNCTION querygate.audit_link(content_hash bytea, occurred_at timestamptz,
                                                subjects json)
RETURNS TABLE (seq bigint, prev_hash bytea, hash bytea)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    head record;
    next_hash bytea;
BEGIN
    IF content_hash IS NULL OR length(content_hash) <> 32 THEN
        RAISE EXCEPTION 'querygate audit: content_hash must be 32 bytes';
    END IF;
    SELECT h.seq, h.hash INTO head FROM querygate.audit_head h WHERE h.id = 1 FOR UPDATE;
    next_hash := sha256(head.hash || int8send(head.seq + 1) || content_hash);
    UPDATE querygate.audit_head SET seq = head.seq + 1, hash = next_hash WHERE id = 1;
    INSERT INTO querygate.audit_subjects (subject_type, subject_id, occurred_at, seq)
    SELECT DISTINCT s ->> 'type', s ->> 'id', audit_link.occurred_at, head.seq + 1
    FROM json_array_elements(subjects) AS s
    WHERE s ->> 'type' IS NOT NULL AND s ->> 'id' IS NOT NULL;
    RETURN QUERY SELECT head.seq + 1, head.hash, next_hash;
END
$$;

CREATE OR REPLACE FUNCTION querygate.audit_chain() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    link record;
BEGIN
    IF current_user = 'querygate_owner' THEN  -- placed and linked by audit_append
        RETURN NEW;
    END IF;
    SELECT * INTO link FROM querygate.audit_link(NEW.content_hash, NEW.occurred_at,
                                                 NEW.subjects::json);
    NEW.seq := link.seq;
    NEW.prev_hash := link.prev_hash;
    NEW.hash := link.hash;
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
