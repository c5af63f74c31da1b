-- The gateway's role may read and append; the trigger assigns seq and the chain link.
REVOKE ALL ON querygate.audit_events, querygate.audit_head FROM PUBLIC;
GRANT SELECT, INSERT ON querygate.audit_events TO {gateway};
GRANT SELECT ON querygate.audit_head TO {gateway};
