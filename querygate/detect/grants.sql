-- The gateway raises, lists and acknowledges alerts, and moves the detector's cursor; it
-- never deletes an alert. The auditor role may read alerts (compliance reviews them).
REVOKE ALL ON querygate.alerts, querygate.detect_cursor FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE ON querygate.alerts, querygate.detect_cursor TO {gateway};
GRANT USAGE ON SCHEMA querygate TO {auditor};
GRANT SELECT ON querygate.alerts TO {auditor};
