-- What the gateway's role may do with the identity directory: read, add, change; never delete.
-- (Offboarding cancels the person's running queries: they run as this same role, which may
-- cancel its own backends without pg_signal_backend.)
GRANT SELECT, INSERT, UPDATE ON querygate.users, querygate.tokens TO {gateway};
GRANT SELECT, INSERT, UPDATE ON querygate.scim_groups, querygate.access_requests TO {gateway};
