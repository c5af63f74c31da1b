"""SCIM 2.0 provisioning (RFC 7643, 7644): an identity provider creates, updates, suspends and
removes people and their groups in querygate's directory, and each change is audited.

``ScimDirectory`` answers ``/scim/v2/Users`` and ``/Groups`` (served by ``api/_routes_scim.py``)
over the directory of ``querygate.identity``; a removal is an offboarding (tokens and grants
revoked in the same transaction). ``_model`` holds SCIM's resource, filter and patch formats.
"""

from querygate.errors import ScimError
from querygate.scim._directory import Changes, ScimDirectory

__all__ = ["Changes", "ScimDirectory", "ScimError"]
