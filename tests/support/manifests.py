"""The deploy manifests, rendered as kustomize would."""

import copy
import sys
from pathlib import Path
from typing import Any

import jsonpatch
import yaml

ROOT = Path(__file__).resolve().parents[2]


KUBE = ROOT / "deploy" / "kubernetes"


COMPOSE = ROOT / "deploy" / "compose"


BIN = Path(sys.executable).parent


CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PersistentVolume"}


def load_all(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def render(directory: Path) -> list[dict[str, Any]]:
    """The subset of kustomize these manifests use: resources, labels, namespace, images,
    JSON 6902 patches and ``$patch: delete`` (a resource removed). (No kustomize binary is
    installed here; this renders the same.)"""
    spec = yaml.safe_load((directory / "kustomization.yaml").read_text())
    resources: list[dict[str, Any]] = []
    for entry in spec.get("resources", []):
        path = directory / entry
        resources += render(path) if path.is_dir() else load_all(path)
    resources = copy.deepcopy(resources)
    for label in spec.get("labels", []):
        for resource in resources:
            resource.setdefault("metadata", {}).setdefault("labels", {}).update(label["pairs"])
    if "namespace" in spec:
        for resource in resources:
            if resource["kind"] not in CLUSTER_SCOPED:
                resource["metadata"]["namespace"] = spec["namespace"]
    for image in spec.get("images", []):
        for resource in resources:
            for container in (
                resource.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [])
            ):
                name, _, _tag = container["image"].partition(":")
                if name == image["name"]:
                    container["image"] = f"{image.get('newName', name)}:{image['newTag']}"
    for patch in spec.get("patches", []):
        if "target" not in patch:  # a strategic-merge patch: here, only deleting a resource
            doc = yaml.safe_load(patch["patch"])
            assert doc.pop("$patch") == "delete", f"unsupported patch {doc}"
            kept = [
                r
                for r in resources
                if (r["kind"], r["metadata"]["name"]) != (doc["kind"], doc["metadata"]["name"])
            ]
            assert len(kept) < len(resources), f"delete patch {doc} matches nothing"
            resources = kept
            continue
        target = patch["target"]
        matches = [
            r
            for r in resources
            if r["kind"] == target["kind"] and r["metadata"]["name"] == target["name"]
        ]
        assert matches, f"patch target {target} matches nothing"
        for resource in matches:
            index = resources.index(resource)
            resources[index] = jsonpatch.apply_patch(resource, yaml.safe_load(patch["patch"]))
    return resources
