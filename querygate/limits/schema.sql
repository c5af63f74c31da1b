-- Limits: counters shared by every gateway process and kept across restarts.
-- Calls per fixed window (minute, hour, day), per person and scope ('*' or a function).
CREATE TABLE IF NOT EXISTS querygate.limit_calls (
    actor_id      text NOT NULL,
    scope         text NOT NULL,
    window_s      integer NOT NULL,
    window_start  timestamptz NOT NULL,
    calls         integer NOT NULL,
    PRIMARY KEY (actor_id, scope, window_s, window_start)
);
-- The different data subjects each person was given, per UTC day and scope.
CREATE TABLE IF NOT EXISTS querygate.limit_subjects (
    actor_id  text NOT NULL,
    scope     text NOT NULL,
    day       date NOT NULL,
    subject   text NOT NULL,
    PRIMARY KEY (actor_id, scope, day, subject)
);
