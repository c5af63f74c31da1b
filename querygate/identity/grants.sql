-- What the gateway's role may do with the identity directory: read, add, change; never delete.
GRANT SELECT, INSERT, UPDATE ON querygate.users, querygate.tokens TO {gateway};
