"""The ``identity:`` section: every mistake is refused with its file and line, never loosened."""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml

from querygate.errors import ProjectError
from querygate.identity import identity_settings, parse_duration
from querygate.project import load_project


def project_with(tmp_path: Path, section: dict[str, Any], monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    with resources.as_file(resources.files("querygate.demo").joinpath("project")) as folder:
        shutil.copytree(folder, tmp_path / "p")
    config = tmp_path / "p" / "querygate.yaml"
    raw = yaml.safe_load(config.read_text())
    raw["identity"] = section
    config.write_text(yaml.safe_dump(raw))
    monkeypatch.setenv("QUERYGATE_DATABASE_URL", "postgresql://gateway@127.0.0.1/none")
    monkeypatch.setenv("QUERYGATE_SECRET_KEY", "s" * 32)
    return load_project(tmp_path / "p")


OIDC = {"issuer": "https://login.example.com/realms/acme", "audience": "querygate"}


def test_defaults_and_secret_indirection(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCIM_TOKEN_FOR_TEST", "t" * 32)
    project = project_with(tmp_path, {"oidc": {**OIDC, "role_map": {"eng-support": "support"}},
                                      "scim": {"token": "$env:SCIM_TOKEN_FOR_TEST"}}, monkeypatch)
    settings = identity_settings(project)
    assert settings.oidc is not None and settings.scim is not None
    assert settings.oidc.required_claims == ("iss", "sub", "aud", "exp", "iat")
    assert settings.oidc.algorithms == ("RS256", "PS256", "ES256", "EdDSA")
    assert (settings.oidc.leeway_s, settings.oidc.max_stale_s) == (5, 900)
    assert settings.scim.token == "t" * 32
    assert settings.scim.role_map == {"eng-support": "support"}  # SCIM groups map like the claim
    assert settings.access.break_glass_duration_s == 3600


@pytest.mark.parametrize(("section", "message"), [
    ({"oidc": {**OIDC, "issuer": "http://login.example.com"}}, "must be an https:// URL"),
    ({"oidc": {"audience": "querygate"}}, "identity.oidc.issuer: is required"),
    ({"oidc": {**OIDC, "role_map": {"eng": "root"}}}, "maps to 'root', which is not a role"),
    ({"oidc": {**OIDC, "algorithms": ["HS256"]}}, "must be a list drawn from RS256"),
    ({"oidc": {**OIDC, "algorithms": ["none"]}}, "must be a list drawn from RS256"),
    ({"oidc": {**OIDC, "required_claims": ["iss", "sub", "aud"]}}, "cannot leave out 'exp'"),
    ({"oidc": {**OIDC, "leeway": "10m"}}, "must be at most 5m"),
    ({"oidc": {**OIDC, "max_stale": "1m"}}, "must be at least jwks_max_age"),
    ({"oidc": {**OIDC, "audiance": "x"}}, "unknown key 'audiance'"),
    ({"scim": {"token": "$env:QG_NOT_SET_ANYWHERE"}}, "which is not set in the environment"),
    ({"scim": {"token": "short"}}, "at least 24 characters"),
    ({"access": {"max_duration": "forever"}}, "is not a duration"),
    ({"sso": {}}, "unknown key 'sso'"),
])
def test_mistakes_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                              section: dict[str, Any], message: str) -> None:
    project = project_with(tmp_path, section, monkeypatch)
    with pytest.raises(ProjectError, match=message.replace("(", r"\(")) as caught:
        identity_settings(project)
    assert "querygate.yaml" in str(caught.value)


def test_loopback_http_issuer_is_allowed_for_a_local_provider(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = project_with(tmp_path, {"oidc": {**OIDC, "issuer": "http://127.0.0.1:9999"}},
                           monkeypatch)
    assert identity_settings(project).oidc is not None


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("15m", 900), ("2h", 7200),
                                                ("1d", 86400), (30, 30)])
def test_durations(text: object, seconds: int) -> None:
    assert parse_duration(text, what="x") == seconds
    for bad in ("0s", "-1h", "2 hours", "", True, 1.5):
        with pytest.raises(ValueError):
            parse_duration(bad, what="x")


@pytest.mark.parametrize(("options", "message"), [
    ({"approvers": ["root"]}, "approvers must be a list of roles"),
    ({"break_glass": {"max_duration": "forever"}}, "is not a duration"),
    ({"break_glass": {"holders": ["root"]}}, "break_glass.holders must be a list of roles"),
    ({"break_glass": "yes"}, "break_glass must be true or a mapping"),
])
def test_role_options_are_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  options: dict[str, Any], message: str) -> None:
    project = project_with(tmp_path, {}, monkeypatch)
    project.roles["admin"].options.update(options)  # type: ignore[attr-defined]
    with pytest.raises(ProjectError, match=message):
        identity_settings(project)
