-- The gateway counts calls and subjects, and removes counters older than their windows.
REVOKE ALL ON querygate.limit_calls, querygate.limit_subjects FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE, DELETE ON querygate.limit_calls, querygate.limit_subjects TO {gateway};
