-- The gateway's role may read the log and append to it through audit_append, which assigns seq
-- and the chain link and fills the subject index; it holds no INSERT on any audit table.
-- The auditor role reads only.
REVOKE ALL ON querygate.audit_events, querygate.audit_head, querygate.audit_subjects, querygate.policy_versions FROM PUBLIC;
REVOKE ALL ON FUNCTION querygate.audit_chain(), querygate.audit_link(bytea, timestamptz, json), querygate.audit_append(json), querygate.audit_refuse(), querygate.audit_protect(regclass), querygate.audit_add_month(date), querygate.audit_ensure_partitions(integer) FROM PUBLIC;
REVOKE INSERT ON querygate.audit_events FROM {gateway};
GRANT SELECT ON querygate.audit_events TO {gateway};
GRANT EXECUTE ON FUNCTION querygate.audit_append(json) TO {gateway};
GRANT SELECT ON querygate.audit_head, querygate.audit_subjects TO {gateway};
GRANT SELECT, INSERT ON querygate.policy_versions TO {gateway};
GRANT EXECUTE ON FUNCTION querygate.audit_ensure_partitions(integer) TO {gateway};
GRANT USAGE ON SCHEMA querygate TO {auditor};
GRANT SELECT ON querygate.audit_events, querygate.audit_head, querygate.audit_subjects, querygate.policy_versions TO {auditor};
