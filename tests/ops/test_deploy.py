"""The deployment files say what docs/operations.md says they do."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

DEPLOY = Path(__file__).parents[2] / "deploy"
CHART = DEPLOY / "helm" / "querygate"


def test_the_image_runs_serve_as_a_non_root_user() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    users = re.findall(r"^USER (\S+)", dockerfile, re.MULTILINE)
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert re.search(r"^FROM python:3\.\d+-slim", dockerfile, re.MULTILINE)
    assert '"serve"' in dockerfile and "8080/healthz" in dockerfile
    assert not re.search(r"(?i)^(ENV|ARG) .*(password|secret|token)", dockerfile, re.MULTILINE)


def test_the_systemd_unit_is_hardened() -> None:
    unit = (DEPLOY / "querygate.service").read_text()
    options = dict(line.split("=", 1) for line in unit.splitlines()
                   if "=" in line and not line.startswith("#"))
    assert options["ExecStart"].split()[1] == "serve"
    assert options["User"] == "querygate"
    for option, value in {"NoNewPrivileges": "yes", "ProtectSystem": "strict",
                          "PrivateTmp": "yes", "CapabilityBoundingSet": "",
                          "KillSignal": "SIGTERM"}.items():
        assert options[option] == value, option


def test_the_chart_probes_health_and_readiness_and_takes_secrets_by_reference() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert chart["name"] == "querygate" and chart["apiVersion"] == "v2"
    assert values["replicaCount"] >= 2
    assert values["secrets"]["existingSecret"] and "existingSecret" in values["checkpoints"]
    assert values["resources"]["requests"]["memory"] and values["resources"]["limits"]["memory"]
    flat = yaml.safe_dump(values)
    assert not re.search(r"(?i)password|postgresql://\S+:\S+@", flat)
    deployment = (CHART / "templates" / "deployment.yaml").read_text()
    assert re.search(r"readinessProbe:\s+httpGet: \{path: /readyz", deployment)
    assert re.search(r"livenessProbe:\s+httpGet: \{path: /healthz", deployment)
    assert "readOnlyRootFilesystem: true" in deployment and "runAsNonRoot: true" in deployment
    assert "secretRef:" in deployment and "fail " in deployment
