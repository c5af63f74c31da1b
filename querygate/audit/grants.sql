-- The gateway's role may read the log and append to it; the trigger assigns seq and the chain
-- link and fills the subject index, so the gateway holds no write grant on anything else.
-- The auditor role reads only.
REVOKE ALL ON querygate.audit_events, querygate.audit_head, querygate.audit_subjects, querygate.policy_versions FROM PUBLIC;
REVOKE ALL ON FUNCTION querygate.audit_chain(), querygate.audit_refuse(), querygate.audit_protect(regclass), querygate.audit_add_month(date), querygate.audit_ensure_partitions(integer) FROM PUBLIC;
GRANT SELECT, INSERT ON querygate.audit_events TO {gateway};
GRANT SELECT ON querygate.audit_head, querygate.audit_subjects TO {gateway};
GRANT SELECT, INSERT ON querygate.policy_versions TO {gateway};
GRANT EXECUTE ON FUNCTION querygate.audit_ensure_partitions(integer) TO {gateway};
GRANT USAGE ON SCHEMA querygate TO {auditor};
GRANT SELECT ON querygate.audit_events, querygate.audit_head, querygate.audit_subjects, querygate.policy_versions TO {auditor};
