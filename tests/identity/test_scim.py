"""SCIM 2.0 with the requests Okta and Entra ID actually send; deactivation revokes at once.

"Several gateway processes": the SCIM calls go to one in-process gateway; the
person's next call goes to a second Gateway instance and to a separate
`querygate serve` process. They share nothing but PostgreSQL.
"""

from __future__ import annotations

from typing import Any

import httpx
import psycopg
import pytest

from querygate import identity
from querygate.api import create_app
from querygate.gateway import Gateway
from querygate.project import load_project
from tests.demo_env import call
from tests.identity.conftest import Sso

pytestmark = pytest.mark.anyio
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
USER = "urn:ietf:params:scim:schemas:core:2.0:User"


def scim_headers(sso: Sso) -> dict[str, str]:
    return {"Authorization": f"Bearer {sso.scim_token}", "Content-Type": "application/scim+json"}


async def issue(sso: Sso, email: str) -> str:
    async with await psycopg.AsyncConnection.connect(sso.demo.gateway_url, autocommit=True) as conn:
        token, _ = await identity.issue_token(conn, email)
    return token


async def test_okta_provisions_groups_and_deactivates_across_processes(
        sso: Sso, sso_client: httpx.AsyncClient, server: str) -> None:
    h = scim_headers(sso)
    found = await sso_client.get('/scim/v2/Users?filter=userName%20eq%20%22alex%40example.com%22'
                                 '&startIndex=1&count=100', headers=h)
    assert found.status_code == 200 and found.json()["totalResults"] == 0
    created = await sso_client.post("/scim/v2/Users", headers=h, json={
        "schemas": [USER], "userName": "alex@example.com",
        "name": {"givenName": "Alex", "familyName": "Doe"},
        "emails": [{"primary": True, "value": "alex@example.com", "type": "work"}],
        "displayName": "Alex Doe", "locale": "en-US", "externalId": "00u1alexokta",
        "groups": [], "password": "not-kept", "active": True})
    assert created.status_code == 201, created.text
    assert created.headers["content-type"] == "application/scim+json"
    alex = created.json()["id"]
    assert created.json()["active"] is True and "password" not in created.text
    group = await sso_client.post("/scim/v2/Groups", headers=h, json={
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "eng-billing",
        "members": []})
    assert group.status_code == 201, group.text
    added = await sso_client.patch(f"/scim/v2/Groups/{group.json()['id']}", headers=h, json={
        "schemas": [PATCH], "Operations": [{"op": "add", "path": "members",
                                            "value": [{"value": alex, "display": "alex@example.com"}]}]})
    assert added.status_code == 200 and added.json()["members"][0]["value"] == alex

    # Alex signs in through Okta: the token's sub is the Okta user id (SCIM externalId);
    # the directory (SCIM groups) decides the roles, not the token's groups claim.
    jwt_token = sso.idp.sign(sso.idp.claims(sub="00u1alexokta", email="alex@example.com",
                                            groups=["eng-support"]))
    qg_token = await issue(sso, "alex@example.com")
    ok = await call(sso_client, jwt_token, "get_customer_by_id", {"customer_id": 42})
    assert ok.status_code == 200 and "iban" not in ok.json()["fields"], ok.text  # billing: clear
    with httpx.Client(base_url=server) as other:
        assert other.post("/v1/call/get_customer_by_id", json={"params": {"customer_id": 42}},
                          headers={"Authorization": f"Bearer {jwt_token}"}).status_code == 200

    deactivated = await sso_client.patch(f"/scim/v2/Users/{alex}", headers=h, json={
        "schemas": [PATCH], "Operations": [{"op": "replace", "value": {"active": False}}]})
    assert deactivated.status_code == 200 and deactivated.json()["active"] is False

    second = await Gateway.open(load_project(sso.project_dir))
    try:
        transport = httpx.ASGITransport(app=create_app(second, lifespan_close=False))
        async with httpx.AsyncClient(transport=transport, base_url="http://b.test") as b:
            for token in (jwt_token, qg_token):
                assert (await call(b, token, "get_customer_by_id", {"customer_id": 42})).status_code == 401
    finally:
        await second.close()
    with httpx.Client(base_url=server) as other:
        for token in (jwt_token, qg_token):
            refused = other.post("/v1/call/get_customer_by_id", json={"params": {"customer_id": 42}},
                                 headers={"Authorization": f"Bearer {token}"})
            assert refused.status_code == 401, refused.text

    removed = await sso_client.patch(f"/scim/v2/Groups/{group.json()['id']}", headers=h, json={
        "schemas": [PATCH], "Operations": [{"op": "remove", "path": f'members[value eq "{alex}"]'}]})
    assert removed.json().get("members") == []
    async with await psycopg.AsyncConnection.connect(sso.demo.gateway_url) as conn:
        row = await (await conn.execute(
            "SELECT status, roles, status_changed_by FROM querygate.users WHERE id = %s",
            (alex,))).fetchone()
        events = await (await conn.execute(
            "SELECT function_name, actor_id FROM querygate.audit_events WHERE context->>'user' = %s "
            "ORDER BY seq", (alex,))).fetchall()
    assert row == ("suspended", [], "scim")
    assert [e[0] for e in events] == ["querygate.scim.create_user", "querygate.scim.roles",
                                      "querygate.scim.deactivate", "querygate.scim.roles"]
    assert {e[1] for e in events} == {"scim"}


async def test_entra_id_requests(sso: Sso, sso_client: httpx.AsyncClient) -> None:
    h = scim_headers(sso)
    probe = await sso_client.get('/scim/v2/Users?filter=userName+eq+"3c1f2e8a-1b2c-4d5e-9f00-aa"',
                                 headers=h)
    assert probe.status_code == 200 and probe.json()["Resources"] == []
    created = await sso_client.post("/scim/v2/Users", headers=h, json={
        "schemas": [USER, "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
        "externalId": "jordan", "userName": "Jordan@Contoso.com", "active": True,
        "displayName": "Jordan Lee", "meta": {"resourceType": "User"}, "roles": [],
        "emails": [{"primary": True, "type": "work", "value": "Jordan@Contoso.com"}],
        "name": {"formatted": "Jordan Lee", "familyName": "Lee", "givenName": "Jordan"}})
    assert created.status_code == 201, created.text
    jordan = created.json()["id"]
    assert created.json()["userName"] == "jordan@contoso.com"
    again = await sso_client.post("/scim/v2/Users", headers=h, json={"userName": "jordan@contoso.com"})
    assert again.status_code == 409 and again.json()["scimType"] == "uniqueness"
    by_external = await sso_client.get('/scim/v2/Users?filter=externalId eq "jordan"', headers=h)
    assert by_external.json()["Resources"][0]["id"] == jordan
    renamed = await sso_client.patch(f"/scim/v2/Users/{jordan}", headers=h, json={
        "schemas": [PATCH], "Operations": [
            {"op": "Replace", "path": "displayName", "value": "Jordan Q. Lee"},
            {"op": "Add", "path": 'emails[type eq "work"].value', "value": "jordan.lee@contoso.com"},
            {"op": "Replace", "path": "name.familyName", "value": "Lee"}]})
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["userName"] == "jordan.lee@contoso.com"
    assert renamed.json()["displayName"] == "Jordan Q. Lee"

    group = await sso_client.post("/scim/v2/Groups", headers=h, json={
        "externalId": "g-1", "displayName": "sec-compliance", "meta": {"resourceType": "Group"}})
    gid = group.json()["id"]
    listed = await sso_client.get('/scim/v2/Groups?excludedAttributes=members'
                                  '&filter=displayName eq "sec-compliance"', headers=h)
    assert listed.json()["Resources"][0]["id"] == gid and "members" not in listed.json()["Resources"][0]
    await sso_client.patch(f"/scim/v2/Groups/{gid}", headers=h, json={
        "schemas": [PATCH], "Operations": [{"op": "Add", "path": "members", "value": [{"value": jordan}]}]})
    token = await issue(sso, "jordan.lee@contoso.com")
    allowed = await call(sso_client, token, "get_customer_by_id", {"customer_id": 42})
    assert allowed.json()["fields"].get("ssn") == "mask.hash"  # compliance, from the group
    await sso_client.patch(f"/scim/v2/Groups/{gid}", headers=h, json={
        "schemas": [PATCH], "Operations": [{"op": "Remove", "path": "members",
                                            "value": [{"value": jordan}]}]})
    refused = await call(sso_client, token, "get_customer_by_id", {"customer_id": 42})
    assert refused.status_code == 403  # no group, no role: revoked on the next call

    off = await sso_client.patch(f"/scim/v2/Users/{jordan}", headers=h, json={
        "schemas": [PATCH], "Operations": [{"op": "Replace", "path": "active", "value": "False"}]})
    assert off.json()["active"] is False
    assert (await call(sso_client, token, "get_customer_by_id", {"customer_id": 42})).status_code == 401
    on = await sso_client.patch(f"/scim/v2/Users/{jordan}", headers=h, json={
        "schemas": [PATCH], "Operations": [{"op": "Replace", "path": "active", "value": "True"}]})
    assert on.json()["active"] is True
    assert (await call(sso_client, token, "get_customer_by_id", {"customer_id": 42})).status_code == 401
    deleted = await sso_client.delete(f"/scim/v2/Users/{jordan}", headers=h)
    assert deleted.status_code == 204
    assert (await sso_client.get(f"/scim/v2/Users/{jordan}", headers=h)).status_code == 404


@pytest.mark.parametrize(("path", "headers", "status", "scim_type"), [
    ("/scim/v2/Users", {}, 401, None),
    ("/scim/v2/Users", {"Authorization": "Bearer wrong"}, 401, None),
    ('/scim/v2/Users?filter=title sw "x"', None, 400, "invalidFilter"),
    ('/scim/v2/Users?filter=password eq "x"', None, 400, "invalidFilter"),
    ("/scim/v2/Users/usr_nobody", None, 404, None),
    ("/scim/v2/Groups?startIndex=x", None, 400, "invalidValue"),
])
async def test_scim_errors(sso: Sso, sso_client: httpx.AsyncClient, path: str,
                           headers: dict[str, str] | None, status: int, scim_type: str | None) -> None:
    response = await sso_client.get(path, headers=scim_headers(sso) if headers is None else headers)
    assert response.status_code == status
    body: dict[str, Any] = response.json()
    assert body["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    assert body["status"] == str(status) and body.get("scimType") == scim_type


async def test_service_provider_config(sso: Sso, sso_client: httpx.AsyncClient) -> None:
    config = (await sso_client.get("/scim/v2/ServiceProviderConfig", headers=scim_headers(sso))).json()
    assert config["patch"]["supported"] is True and config["filter"]["supported"] is True
