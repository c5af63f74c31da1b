"""Identity: who is calling. Users and services, tokens stored as hashes, revocation at once."""

from querygate.identity._authenticator import (
    Authenticator,
    TokenAuthenticator,
    build_authenticator,
)
from querygate.identity._store import (
    Identity,
    IdentityError,
    User,
    add_user,
    authenticate,
    get_user,
    issue_token,
    list_users,
    revoke_user,
)
from querygate.identity._tokens import PREFIX as TOKEN_PREFIX
from querygate.identity._tokens import token_hash

__all__ = [
    "TOKEN_PREFIX",
    "Authenticator",
    "Identity",
    "IdentityError",
    "TokenAuthenticator",
    "User",
    "add_user",
    "authenticate",
    "build_authenticator",
    "get_user",
    "issue_token",
    "list_users",
    "revoke_user",
    "token_hash",
]
