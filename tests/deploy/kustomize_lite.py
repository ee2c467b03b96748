"""A small kustomize for the tests: renders deploy/k8s without the kustomize binary.

It supports exactly what Switchyard's kustomizations use and refuses anything else, so a
kustomization that grows a feature fails loudly here instead of rendering wrong:
resources (files and directories), namespace, labels (pairs, includeSelectors false,
includeTemplates), images, configMapGenerator (envs, literals, files; behavior create and
merge; content-hash name suffix computed as kustomize computes it), patches with a
strategic-merge patch file, and the rewrite of ConfigMap references to the hashed names.
When kubectl is installed, tests/deploy compares this renderer's output with `kubectl kustomize`.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

Manifest = dict[str, Any]

SUPPORTED_KEYS = {
    "apiVersion",
    "kind",
    "resources",
    "namespace",
    "labels",
    "images",
    "configMapGenerator",
    "patches",
}
CLUSTER_SCOPED = {
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "PersistentVolume",
    "StorageClass",
    "PriorityClass",
}
# Where a pod template sits in each workload kind.
TEMPLATE_PATHS = {
    "Deployment": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
}
# Strategic-merge keys for the lists that appear in Switchyard's patches.
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "volumes": "name",
    "env": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
    "imagePullSecrets": "name",
}


class KustomizeError(ValueError):
    """The kustomization uses something this renderer does not support, or is malformed."""


@dataclass
class _Resource:
    body: Manifest
    generated: bool = False
    base_name: str = ""


@dataclass
class _ResMap:
    items: list[_Resource] = field(default_factory=list)

    def find(self, kind: str, name: str) -> _Resource | None:
        for item in self.items:
            if item.body.get("kind") == kind and item.body["metadata"]["name"] == name:
                return item
        return None


def render(directory: str | Path) -> list[Manifest]:
    """Render the kustomization in `directory` to a list of manifests."""
    resmap = _build(Path(directory))
    _apply_hash_suffixes(resmap)
    return [item.body for item in resmap.items]


def _load_kustomization(directory: Path) -> Manifest:
    for name in ("kustomization.yaml", "kustomization.yml", "Kustomization"):
        path = directory / name
        if path.is_file():
            data = yaml.safe_load(path.read_text()) or {}
            unknown = set(data) - SUPPORTED_KEYS
            if unknown:
                raise KustomizeError(f"{path}: unsupported fields {sorted(unknown)}")
            return data
    raise KustomizeError(f"no kustomization file in {directory}")


def _build(directory: Path) -> _ResMap:
    kust = _load_kustomization(directory)
    resmap = _ResMap()
    for entry in kust.get("resources", []):
        path = (directory / entry).resolve()
        if path.is_dir():
            resmap.items.extend(_build(path).items)
        else:
            for doc in yaml.safe_load_all(path.read_text()):
                if doc:
                    resmap.items.append(_Resource(doc))
    for spec in kust.get("configMapGenerator", []):
        _generate_config_map(directory, spec, resmap)
    for patch in kust.get("patches", []):
        _apply_patch(directory, patch, resmap)
    if "namespace" in kust:
        for item in resmap.items:
            if item.body["kind"] not in CLUSTER_SCOPED:
                item.body["metadata"]["namespace"] = kust["namespace"]
    for spec in kust.get("labels", []):
        _apply_labels(spec, resmap)
    for spec in kust.get("images", []):
        _apply_image(spec, resmap)
    return resmap


def _generate_config_map(directory: Path, spec: Manifest, resmap: _ResMap) -> None:
    unknown = set(spec) - {"name", "behavior", "envs", "literals", "files"}
    if unknown:
        raise KustomizeError(f"configMapGenerator {spec.get('name')}: unsupported {sorted(unknown)}")
    data: dict[str, str] = {}
    for env_file in spec.get("envs", []):
        for raw in (directory / env_file).read_text().splitlines():
            line = raw.strip()
            if line and not line.startswith("#"):
                _put_pair(data, line)
    for literal in spec.get("literals", []):
        _put_pair(data, literal)
    for file_entry in spec.get("files", []):
        key, _, rel = file_entry.rpartition("=")
        path = directory / rel
        data[key or path.name] = path.read_text()

    name = spec["name"]
    behavior = spec.get("behavior", "create")
    existing = resmap.find("ConfigMap", name)
    if behavior == "create":
        if existing is not None:
            raise KustomizeError(f"ConfigMap {name} already exists; use behavior: merge")
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}
        resmap.items.append(_Resource(body, generated=True, base_name=name))
    elif behavior == "merge":
        if existing is None:
            raise KustomizeError(f"ConfigMap {name} to merge into does not exist")
        existing.body.setdefault("data", {}).update(data)
    else:
        raise KustomizeError(f"configMapGenerator behavior {behavior!r} is not supported")


def _put_pair(data: dict[str, str], pair: str) -> None:
    key, sep, value = pair.partition("=")
    if not sep or not key:
        raise KustomizeError(f"expected KEY=VALUE, got {pair!r}")
    data[key.strip()] = value


def _apply_patch(directory: Path, spec: Manifest, resmap: _ResMap) -> None:
    if set(spec) != {"path"}:
        raise KustomizeError(f"only `patches: - path: <strategic merge file>` is supported, got {spec}")
    patch = yaml.safe_load((directory / spec["path"]).read_text())
    target = resmap.find(patch["kind"], patch["metadata"]["name"])
    if target is None:
        raise KustomizeError(f"patch {spec['path']}: no {patch['kind']} {patch['metadata']['name']}")
    target.body = strategic_merge(target.body, patch)


def strategic_merge(base: Any, patch: Any, key: str | None = None) -> Any:
    """Strategic merge for maps and for the lists in MERGE_KEYS; other lists are replaced."""
    if isinstance(base, dict) and isinstance(patch, dict):
        if any(k.startswith("$") for k in patch):
            raise KustomizeError(f"patch directives are not supported: {sorted(patch)}")
        merged = copy.deepcopy(base)
        for k, v in patch.items():
            if v is None:
                merged.pop(k, None)
            elif k in merged:
                merged[k] = strategic_merge(merged[k], v, k)
            else:
                merged[k] = copy.deepcopy(v)
        return merged
    if isinstance(base, list) and isinstance(patch, list) and key in MERGE_KEYS:
        merge_key = MERGE_KEYS[key]
        merged_list = copy.deepcopy(base)
        for element in patch:
            match = next(
                (i for i, b in enumerate(merged_list) if b.get(merge_key) == element[merge_key]), None
            )
            if match is None:
                merged_list.append(copy.deepcopy(element))
            else:
                merged_list[match] = strategic_merge(merged_list[match], element)
        return merged_list
    return copy.deepcopy(patch)


def _apply_labels(spec: Manifest, resmap: _ResMap) -> None:
    if spec.get("includeSelectors"):
        raise KustomizeError("labels with includeSelectors: true are not supported")
    pairs = {k: str(v) for k, v in spec["pairs"].items()}
    for item in resmap.items:
        item.body["metadata"].setdefault("labels", {}).update(pairs)
        path = TEMPLATE_PATHS.get(item.body["kind"])
        if spec.get("includeTemplates") and path:
            template = _dig(item.body, path)
            template.setdefault("metadata", {}).setdefault("labels", {}).update(pairs)


def _apply_image(spec: Manifest, resmap: _ResMap) -> None:
    for item in resmap.items:
        for container in _containers(item.body):
            image = container.get("image", "")
            name, tag = _split_image(image)
            if name != spec["name"]:
                continue
            name = spec.get("newName", name)
            tag = f":{spec['newTag']}" if "newTag" in spec else tag
            container["image"] = name + tag


def _split_image(image: str) -> tuple[str, str]:
    if "@" in image:
        name, digest = image.split("@", 1)
        return name, "@" + digest
    slash = image.rfind("/")
    colon = image.rfind(":")
    if colon > slash:
        return image[:colon], image[colon:]
    return image, ""


def _dig(body: Manifest, path: tuple[str, ...]) -> Manifest:
    node = body
    for part in path:
        node = node[part]
    return node


def _pod_spec(body: Manifest) -> Manifest | None:
    path = TEMPLATE_PATHS.get(body.get("kind", ""))
    return _dig(body, path)["spec"] if path else None


def _containers(body: Manifest) -> list[Manifest]:
    pod = _pod_spec(body)
    if pod is None:
        return []
    return [*pod.get("initContainers", []), *pod.get("containers", [])]


def config_map_hash(data: dict[str, str]) -> str:
    """kustomize's name suffix: sha256 of Go's JSON encoding of {data, kind, name}, 10 chars, remapped.

    kustomize (v5) hashes a generated ConfigMap with an empty name, so only the content counts.
    """
    encoded = json.dumps(
        {"data": data, "kind": "ConfigMap", "name": ""},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    # Go's encoding/json escapes these for HTML safety; the hash must see the same bytes.
    for char in ("&", "<", ">", "\u2028", "\u2029"):
        encoded = encoded.replace(char, f"\\u{ord(char):04x}")
    digest = hashlib.sha256(encoded.encode()).hexdigest()[:10]
    return digest.translate(str.maketrans("013ae", "ghkmt"))


def _apply_hash_suffixes(resmap: _ResMap) -> None:
    renamed: dict[str, str] = {}
    for item in resmap.items:
        if item.generated:
            new_name = f"{item.base_name}-{config_map_hash(item.body.get('data', {}))}"
            item.body["metadata"]["name"] = new_name
            renamed[item.base_name] = new_name
    for item in resmap.items:
        pod = _pod_spec(item.body)
        if pod is None:
            continue
        for volume in pod.get("volumes", []):
            if "configMap" in volume:
                _rename(volume["configMap"], renamed)
        for container in _containers(item.body):
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    _rename(source["configMapRef"], renamed)
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("configMapKeyRef")
                if ref:
                    _rename(ref, renamed)


def _rename(ref: Manifest, renamed: dict[str, str]) -> None:
    if ref.get("name") in renamed:
        ref["name"] = renamed[ref["name"]]
