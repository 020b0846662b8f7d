"""deploy/kubernetes/base run with ``podman kube play``: both roles and Redis come up from the
rendered manifests, and an upload goes through the credential service and the upload API.

What podman 4.3 (Debian 12) does not take is adapted here, and only that: the Redis
StatefulSet becomes a Deployment with its claim as a PersistentVolumeClaim; Secrets (whose
volumes make this podman crash) become directories of files mounted where the Secret would
be, and ``secretKeyRef`` variables their values. Services, the HorizontalPodAutoscalers, the
PodDisruptionBudgets, the NetworkPolicy and the ServiceAccount are ignored by kube play and
stay validated by tests/deploy/test_manifests.py; the pods reach each other by pod name on one
podman network, as they would by Service name in a cluster.
"""

import base64
import copy
import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from secrets import token_hex
from typing import Any

import httpx
import pytest
import yaml

from app.credential_service.callers.api_keys import hash_api_key, new_api_key
from tests.support.apps import new_private_key, new_public_key
from tests.support.manifests import KUBE, render
from tests.support.samples import png
from tests.support.servers import container_images, wait_until_ok

pytestmark = pytest.mark.e2e

#: This run's own names (pods, volumes, the network), so that two checkouts, or a run that
#: failed before, never meet.
RUN = "-" + token_hex(3)
NETWORK = f"upload-auth-kube{RUN}"
PLAYED = {"ConfigMap", "Deployment", "StatefulSet", "PersistentVolumeClaim"}


def adapted(
    resources: list[dict[str, Any]], secrets: dict[str, dict[str, str]], root: Path
) -> list[dict[str, Any]]:
    """The rendered base as podman 4.3's kube play takes it (see the module's docstring), its
    pods and volumes named for this run."""
    played: list[dict[str, Any]] = []
    for original in resources:
        if original["kind"] not in PLAYED:
            continue
        resource = copy.deepcopy(original)
        resource["metadata"]["name"] += RUN
        spec = resource.get("spec", {})
        if resource["kind"] == "StatefulSet":
            resource["kind"] = "Deployment"
            spec.pop("serviceName", None)
            for claim in spec.pop("volumeClaimTemplates", []):
                name = f"{claim['metadata']['name']}-{resource['metadata']['name']}"
                played.append(
                    {
                        "apiVersion": "v1",
                        "kind": "PersistentVolumeClaim",
                        "metadata": {"name": name},
                        "spec": claim["spec"],
                    }
                )
                spec["template"]["spec"].setdefault("volumes", []).append(
                    {
                        "name": claim["metadata"]["name"],
                        "persistentVolumeClaim": {"claimName": name},
                    }
                )
        pod = spec.get("template", {}).get("spec")
        if pod is not None:
            spec["replicas"] = 1
            for volume in pod.get("volumes", []):
                claim = volume.get("persistentVolumeClaim")
                if claim is not None and not claim["claimName"].endswith(RUN):
                    claim["claimName"] += RUN
                if "configMap" in volume:
                    volume["configMap"]["name"] += RUN
                if "secret" in volume:
                    name = volume.pop("secret")["secretName"]
                    volume["hostPath"] = {"path": str(root / name), "type": "Directory"}
            for container in pod["containers"]:
                # reached on the run's network by the pod's address: kube play would publish
                # containerPort on the host's every interface (8000 taken by ./scripts/dev)
                container.pop("ports", None)
                for variable in container.get("env", []):
                    ref = variable.get("valueFrom", {}).get("secretKeyRef")
                    if ref:
                        del variable["valueFrom"]
                        variable["value"] = secrets[ref["name"]][ref["key"]]
        played.append(resource)
    for name, items in secrets.items():  # a Secret's files, as the kubelet writes them
        (root / name).mkdir()
        for key, value in items.items():
            (root / name / key).write_text(value)
            (root / name / key).chmod(0o444)
    return sorted(played, key=lambda r: r["kind"] != "PersistentVolumeClaim")


def podman(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["podman", *args], capture_output=True, text=True, check=check)


def address(container: str) -> str:
    networks = json.loads(
        podman("inspect", container, "--format", "{{json .NetworkSettings.Networks}}").stdout
    )
    return str(networks[NETWORK]["IPAddress"])


def logs(container: str) -> Callable[[], str]:
    def read() -> str:
        found = podman("logs", container, check=False)
        return found.stdout + found.stderr

    return read


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    names = container_images()
    root = tmp_path_factory.mktemp("kube")
    public, private, api_key = new_public_key(), new_private_key(), new_api_key()
    resources = render(KUBE / "base")
    for resource in resources:
        if resource["kind"] == "ConfigMap":  # what an operator edits (config.yaml)
            data = resource["data"]
            toml = data["upload-auth.toml"].replace("public_REPLACE_with_your_public_key", public)
            toml += f'\n[[callers.api_keys]]\nname = "backend"\nhash = "{hash_api_key(api_key)}"\n'
            data["upload-auth.toml"] = toml
        for container in (
            resource.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [])
        ):
            if container["image"].startswith("upload-auth:"):
                container["image"] = names["UPLOAD_AUTH_IMAGE"]
            elif container["image"].startswith("upload-auth-credential-service:"):
                container["image"] = names["UPLOAD_AUTH_SERVICE_IMAGE"]
            elif container["image"].startswith("redis:"):
                container["image"] = names["REDIS_IMAGE"]
    secrets = {
        "upload-auth-keys": {"key-1.private": private},
        "upload-auth-redis": {"url": f"redis://redis{RUN}-pod-0:6379/0"},
    }
    manifest = root / "play.yaml"
    played = adapted(resources, secrets, root)
    manifest.write_text(yaml.safe_dump_all(played))
    # kube play keeps each claim, and each ConfigMap, as a volume of its name
    volumes = [
        r["metadata"]["name"] for r in played if r["kind"] in ("PersistentVolumeClaim", "ConfigMap")
    ]
    down = ["kube", "down", str(manifest)]
    podman("network", "create", NETWORK, check=False)
    try:
        started = podman("kube", "play", "--network", NETWORK, str(manifest), check=False)
        assert started.returncode == 0, started.stderr[-2000:]
        service, uploads = (
            f"upload-auth{RUN}-pod-0-upload-auth",
            f"upload-api{RUN}-pod-0-upload-api",
        )
        urls = {
            "service": f"http://{address(service)}:8000",
            "upload_api": f"http://{address(uploads)}:8001",
        }
        wait_until_ok(urls["service"] + "/readyz", why=logs(service))
        wait_until_ok(urls["upload_api"] + "/readyz", why=logs(uploads))
        yield {**urls, "api_key": api_key, "public": public, "private": private}
    finally:  # whatever failed: nothing of this run is left behind
        podman(*down, check=False)
        podman("volume", "rm", "-f", *volumes, check=False)
        podman("network", "rm", "-f", NETWORK, check=False)


def test_both_roles_come_up_and_an_upload_goes_through(cluster: dict[str, str]) -> None:
    """A v2 credential from the credential service, an upload to the upload API with it,
    the file served back; the pods share Redis (the credential is burned there: a second
    upload with it is refused)."""
    picture = png(12, 12)
    grant = httpx.post(
        cluster["service"] + "/v2/token",
        json={"fileName": "me.png", "fileSize": len(picture), "mimeType": "image/png"},
        headers={"Authorization": f"Bearer {cluster['api_key']}"},
    )
    assert grant.status_code == 200, grant.text
    body = grant.json()
    assert body["fields"]["folder"] == "/users/key-backend/avatar"
    form = {**body["fields"], "token": body["token"]}
    upload_url = cluster["upload_api"] + "/api/v2/files/upload"
    stored = httpx.post(upload_url, data=form, files={"file": ("me.png", picture, "image/png")})
    assert stored.status_code == 200, stored.text
    served = httpx.get(cluster["upload_api"] + "/files" + stored.json()["filePath"])
    assert served.content == picture
    again = httpx.post(upload_url, data=form, files={"file": ("me.png", picture, "image/png")})
    assert again.status_code == 400  # single use, through the Redis pod
    assert "used" in again.json()["message"]
    header = json.loads(base64.urlsafe_b64decode(body["token"].split(".")[0] + "=="))
    assert header["kid"] == cluster["public"]
    logs = podman("logs", f"upload-auth{RUN}-pod-0-upload-auth").stdout
    assert cluster["private"] not in logs
