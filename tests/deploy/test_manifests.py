"""deploy/: the Kubernetes manifests render (base and overlay) into resources valid against
Kubernetes' schemas and locked down as promised; the compose file is valid compose-spec; the
Dockerfile passes hadolint."""

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import latest_version

from app.core.settings import Settings
from tests.support.manifests import BIN, COMPOSE, KUBE, ROOT, render


@pytest.mark.parametrize("variant", ["base", "overlays/production", "overlays/object-storage"])
def test_manifests_render_and_validate(variant: str) -> None:
    """Every rendered resource is valid for the newest Kubernetes the validator knows; with
    object storage, no shared volume is asked for."""
    resources = render(KUBE / variant)
    kinds = sorted(r["kind"] for r in resources)
    shared_volume = [] if variant.endswith("object-storage") else ["PersistentVolumeClaim"]
    assert kinds == sorted(
        [
            *shared_volume,
            "ServiceAccount",
            "ConfigMap",
            "Deployment",
            "Service",
            "Deployment",
            "Service",
            "HorizontalPodAutoscaler",
            "HorizontalPodAutoscaler",
            "PodDisruptionBudget",
            "PodDisruptionBudget",
            "NetworkPolicy",
            "StatefulSet",
            "Service",
            "NetworkPolicy",
        ]
    )
    for resource in resources:
        kubernetes_validate.validate(resource, latest_version(), strict=True)


def deployments(variant: str = "overlays/production") -> list[dict[str, Any]]:
    return [r for r in render(KUBE / variant) if r["kind"] == "Deployment"]


def test_pods_are_locked_down() -> None:
    """Non-root, read-only root filesystem, no capabilities, no privilege escalation, no API
    token, probes on /healthz and /readyz, memory limits, secrets mounted as files."""
    for deployment in deployments():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == 10001
        assert pod["automountServiceAccountToken"] is False
        assert pod["terminationGracePeriodSeconds"] > 20
        (container,) = pod["containers"]
        security = container["securityContext"]
        assert security == {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        }
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["resources"]["limits"]["memory"]
        role = container["args"][0] if container.get("args") else container["command"][-1]
        image = {"serve": "upload-auth-credential-service"}.get(role, "upload-auth")
        assert container["image"] == f"registry.example.com/{image}:0.1.0", role
        secret = next(v for v in pod["volumes"] if v["name"] == "keys")
        assert secret["secret"]["secretName"] == "upload-auth-keys"


def test_redis_keeps_the_ledger_across_restarts() -> None:
    """Compose and Kubernetes run Redis with an append-only file on a volume and no eviction:
    a restart keeps the record of used credentials."""
    durable = ["--appendonly", "yes", "--appendfsync", "everysec"]
    (redis,) = [r for r in render(KUBE / "base") if r["kind"] == "StatefulSet"]
    (container,) = redis["spec"]["template"]["spec"]["containers"]
    args = container["args"]
    assert " ".join(durable) in " ".join(args)
    assert args[args.index("--maxmemory-policy") + 1] == "noeviction"
    assert container["volumeMounts"] == [{"name": "data", "mountPath": "/data"}]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    compose = yaml.safe_load((COMPOSE / "compose.yaml").read_text())["services"]["redis"]
    assert " ".join(durable) in " ".join(compose["command"])
    assert "noeviction" in compose["command"]
    assert compose["volumes"] == ["redis-data:/data"]


def test_overlay_scales_up() -> None:
    """The production overlay's patches land where they should."""
    by_name = {(r["kind"], r["metadata"]["name"]): r for r in render(KUBE / "overlays/production")}
    assert by_name[("Deployment", "upload-auth")]["spec"]["replicas"] == 3
    assert by_name[("HorizontalPodAutoscaler", "upload-auth")]["spec"]["maxReplicas"] == 20
    assert all(r["metadata"]["namespace"] == "upload-auth" for r in by_name.values())


def test_configmap_is_a_valid_upload_auth_config(tmp_path: Path) -> None:
    """The policy in the ConfigMap loads (with a key file where the Secret would be)."""
    from app.core.parts import key_ring
    from app.core.settings import Settings

    (config,) = [r for r in render(KUBE / "base") if r["kind"] == "ConfigMap"]
    toml = config["data"]["upload-auth.toml"]
    key_file = tmp_path / "key-1.private"
    key_file.write_text("private_" + "x" * 32)
    path = tmp_path / "upload-auth.toml"
    path.write_text(toml.replace("/run/secrets/upload-auth/key-1.private", str(key_file)))
    settings = Settings(config_file=path)
    assert settings.caller_auth_configured
    assert key_ring(settings).signing.public_key.startswith("public_")


@pytest.mark.parametrize("name", ["compose.yaml", "compose.object-storage.yaml"])
def test_compose_file_is_valid_compose_spec(name: str) -> None:
    """deploy/compose/'s files against the compose-spec JSON schema."""
    result = subprocess.run(
        [
            str(BIN / "check-jsonschema"),
            "--builtin-schema",
            "vendor.compose-spec",
            str(ROOT / "deploy" / "compose" / name),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_config_is_a_valid_upload_auth_config() -> None:
    """The compose set-up's upload-auth.toml loads."""
    from app.core.settings import Settings

    settings = Settings(config_file=ROOT / "deploy" / "compose" / "upload-auth.toml", dev_mode=True)
    assert settings.callers.forward is not None


@pytest.mark.parametrize(
    "dockerfile", ["Dockerfile", "deploy/compose/example-app.Dockerfile"], ids=lambda p: p
)
def test_dockerfile_passes_hadolint(dockerfile: str) -> None:
    """hadolint finds nothing to say about the image's Dockerfile or the example app's."""
    result = subprocess.run(
        [str(BIN / "hadolint"), str(ROOT / dockerfile)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_make_dev_keys_writes_keys_the_containers_user_can_read(tmp_path: Path) -> None:
    """Compose mounts the key files as they are on the host and runs the containers as uid
    10001: ``make-dev-keys`` leaves them readable by any user (0644) in a directory only its
    owner can enter (0700). As root, a process of uid 10001 reads the file as the container
    will (opened by its own path, as the mount exposes it)."""
    shutil.copytree(ROOT / "deploy" / "compose", tmp_path / "compose")
    subprocess.run([str(tmp_path / "compose" / "make-dev-keys")], check=True, capture_output=True)
    secrets = tmp_path / "compose" / "secrets"
    assert secrets.stat().st_mode & 0o777 == 0o700
    for name in ("imagekit_public_key", "imagekit_private_key", "s3_secret_access_key"):
        key = secrets / name
        assert key.stat().st_mode & 0o777 == 0o644, name
    if os.geteuid() == 0:  # a bind mount exposes the file itself, not its directory
        exposed = Path(tempfile.mkdtemp())
        try:
            exposed.chmod(0o755)
            os.link(secrets / "imagekit_private_key", exposed / "imagekit_private_key")
            as_container = ["setpriv", "--reuid=10001", "--regid=10001", "--clear-groups"]
            read = subprocess.run(
                [*as_container, "cat", str(exposed / "imagekit_private_key")],
                capture_output=True,
                text=True,
                check=False,
            )
        finally:
            shutil.rmtree(exposed)
        assert read.returncode == 0, read.stderr
        assert read.stdout.startswith("private_dev_")


def test_the_object_storage_overlay_keeps_files_in_a_bucket(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Its upload API stores into the bucket (settings valid as given, the secret read from the
    mounted file) and spools on an emptyDir of its own; nothing else changes."""
    upload_api = next(
        d for d in deployments("overlays/object-storage") if d["metadata"]["name"] == "upload-api"
    )
    pod = upload_api["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "persistentVolumeClaim" not in volumes["uploads"]
    assert volumes["uploads"]["emptyDir"]["sizeLimit"]
    container = pod["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["UPLOAD_AUTH_STORAGE_BACKEND"] == "s3"
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert env["UPLOAD_AUTH_S3_SECRET_ACCESS_KEY_FILE"].startswith(mounts["s3"] + "/")
    for name, value in env.items():
        if name.startswith("UPLOAD_AUTH_S3_") and value is not None and not name.endswith("_FILE"):
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("UPLOAD_AUTH_STORAGE_BACKEND", "s3")
    monkeypatch.setenv("UPLOAD_AUTH_S3_ACCESS_KEY_ID", "from-the-secret")
    monkeypatch.setenv("UPLOAD_AUTH_S3_SECRET_ACCESS_KEY", "from-the-secret-file")
    settings = Settings(dev_mode=True)
    assert settings.storage_backend == "s3"
    assert settings.s3_bucket == env["UPLOAD_AUTH_S3_BUCKET"]
    production = next(d for d in deployments() if d["metadata"]["name"] == "upload-api")
    assert production["spec"]["replicas"] == upload_api["spec"]["replicas"]


def test_the_compose_object_storage_file_stores_into_its_bucket(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Added to compose.yaml, the upload API's settings load with the bucket the bucket
    service makes, and every secret it names is one the file declares."""
    base = yaml.safe_load((COMPOSE / "compose.yaml").read_text())
    extra = yaml.safe_load((COMPOSE / "compose.object-storage.yaml").read_text())
    env = {**base["services"]["upload-api"]["environment"]}
    env.update(extra["services"]["upload-api"]["environment"])
    for name in [n for n in env if n.startswith(("UPLOAD_AUTH_S3_", "UPLOAD_AUTH_STORAGE"))]:
        if not name.endswith("_FILE"):
            monkeypatch.setenv(name, str(env[name]))
    monkeypatch.setenv("UPLOAD_AUTH_S3_SECRET_ACCESS_KEY", "from-the-secret-file")
    settings = Settings(dev_mode=True)
    assert (settings.storage_backend, settings.s3_path_style) == ("s3", True)
    assert f"local/{settings.s3_bucket}" in " ".join(extra["services"]["bucket"]["command"])
    used = {
        s["source"] for service in extra["services"].values() for s in service.get("secrets", [])
    }
    assert used <= set(extra["secrets"])
