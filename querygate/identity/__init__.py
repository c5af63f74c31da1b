"""Identity: who is calling. One directory, revoked in one place.

People and services with roles and tokens (stored as hashes); OIDC sign-in
(bearer JWTs checked against the issuer's keys and the directory on every
call); offboarding in one step; just-in-time elevation and break-glass grants;
agents acting on behalf of a person. SCIM provisioning (``querygate.scim``)
writes into this directory.
"""

from querygate.errors import IdentityError, RequestClosed, ScimError
from querygate.identity._access import (
    AccessRequest,
    Scope,
    approver_roles,
    break_glass,
    cancel,
    decide,
    get_request,
    list_requests,
    request_access,
    revoke_grants,
    scope_from,
)
from querygate.identity._authenticator import (
    Authenticator,
    OidcAuthenticator,
    TokenAuthenticator,
    build_authenticator,
)
from querygate.identity._checks import TokenChecks
from querygate.identity._db import writing
from querygate.identity._events import identity_event, record
from querygate.identity._guard import AccessScopeGuard
from querygate.identity._login import TokenSet, browser_login, cached_token, device_login, discover
from querygate.identity._login import endpoint as oidc_endpoint
from querygate.identity._login import save as save_login
from querygate.identity._login import token_request as oidc_token_request
from querygate.identity._model import Grant, Identity
from querygate.identity._offboard import (
    AccessReport,
    Offboarding,
    access_report,
    cancel_queries,
    offboard,
    query_label,
)
from querygate.identity._oidc import KeySet, OidcVerifier
from querygate.identity._settings import (
    AccessSettings,
    IdentitySettings,
    OidcSettings,
    ScimSettings,
    identity_settings,
    oidc_settings,
    parse_duration,
)
from querygate.identity._store import (
    User,
    add_user,
    authenticate,
    get_user,
    issue_token,
    list_users,
    reinstate,
    revoke_user,
)
from querygate.identity._tokens import PREFIX as TOKEN_PREFIX
from querygate.identity._tokens import new_id, token_hash

__all__ = [
    "TOKEN_PREFIX",
    "AccessReport",
    "AccessRequest",
    "AccessScopeGuard",
    "AccessSettings",
    "Authenticator",
    "Grant",
    "Identity",
    "IdentityError",
    "IdentitySettings",
    "KeySet",
    "Offboarding",
    "OidcAuthenticator",
    "OidcSettings",
    "OidcVerifier",
    "RequestClosed",
    "ScimError",
    "ScimSettings",
    "Scope",
    "TokenAuthenticator",
    "TokenChecks",
    "TokenSet",
    "User",
    "access_report",
    "add_user",
    "approver_roles",
    "authenticate",
    "break_glass",
    "browser_login",
    "build_authenticator",
    "cached_token",
    "cancel",
    "cancel_queries",
    "decide",
    "device_login",
    "discover",
    "get_request",
    "get_user",
    "identity_event",
    "identity_settings",
    "issue_token",
    "list_requests",
    "list_users",
    "new_id",
    "offboard",
    "oidc_endpoint",
    "oidc_settings",
    "oidc_token_request",
    "parse_duration",
    "query_label",
    "record",
    "reinstate",
    "request_access",
    "revoke_grants",
    "revoke_user",
    "save_login",
    "scope_from",
    "token_hash",
    "writing",
]
