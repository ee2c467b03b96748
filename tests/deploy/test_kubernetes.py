"""deploy/k8s rendered without kustomize, validated against Kubernetes' own schemas, and the
properties operators rely on asserted one by one."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from service.db.reader_role import PASSWORD_ENV, READER_ROLE, ReaderPasswordError, check_password
from service.settings import load_settings

from .helpers import (
    DEPLOY,
    HTTP_PORT,
    K8S_BASE,
    K8S_EXAMPLE,
    METRICS_PORT,
    ROOT,
    SECRET_ENV,
    gateway_env_names,
    parse_env_file,
)
from .kustomize_lite import render

KUBERNETES_VERSION = "1.33.0"
SELECTOR_LABELS = {"app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/component"}
STANDARD_LABELS = {
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/part-of",
}

Manifests = dict[tuple[str, str], dict]


@pytest.fixture(scope="module")
def example() -> Manifests:
    return {(m["kind"], m["metadata"]["name"]): m for m in render(K8S_EXAMPLE)}


def _one(manifests: Manifests, kind: str) -> dict:
    found = [m for (k, _), m in manifests.items() if k == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def _container(manifests: Manifests, kind: str) -> dict:
    spec = _one(manifests, kind)["spec"]["template"]["spec"]
    assert len(spec["containers"]) == 1
    return spec["containers"][0]


def test_renders_the_expected_objects(example: Manifests) -> None:
    kinds = sorted(k for k, _ in example)
    assert kinds == sorted(
        [
            "ConfigMap",
            "ConfigMap",
            "Deployment",
            "HorizontalPodAutoscaler",
            "Job",
            "Namespace",
            "NetworkPolicy",
            "PodDisruptionBudget",
            "PrometheusRule",
            "Secret",
            "Secret",
            "Service",
            "ServiceAccount",
            "ServiceMonitor",
        ]
    )


def test_every_builtin_manifest_is_valid(example: Manifests) -> None:
    for (kind, name), manifest in example.items():
        if manifest["apiVersion"].startswith("monitoring.coreos.com/"):
            continue
        try:
            kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{kind}/{name}: {error.message} at {list(error.path)}")


def test_service_monitor_structure(example: Manifests) -> None:
    monitor = _one(example, "ServiceMonitor")
    service = _one(example, "Service")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert set(monitor["spec"]) <= {"selector", "endpoints", "namespaceSelector", "jobLabel"}
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    ports = {p["name"]: p for p in service["spec"]["ports"]}
    container_ports = {p["name"]: p["containerPort"] for p in _container(example, "Deployment")["ports"]}
    config = _one_config(example, "switchyard-config")["data"]
    # Production scrapes the metrics port (served by `serve`'s master); the public port's /metrics is 404.
    assert config["SWITCHYARD_METRICS_PORT"] == str(METRICS_PORT)
    assert container_ports == {"http": HTTP_PORT, "metrics": METRICS_PORT}
    for endpoint in monitor["spec"]["endpoints"]:
        assert endpoint["port"] == "metrics"
        assert ports["metrics"]["targetPort"] == "metrics"
        assert endpoint["path"] == "/metrics"
        assert endpoint["interval"].endswith("s")
        assert set(endpoint) <= {"port", "path", "interval", "scrapeTimeout", "scheme", "relabelings"}


def test_namespace_and_standard_labels(example: Manifests) -> None:
    for (kind, name), manifest in example.items():
        if kind != "Namespace":
            assert manifest["metadata"]["namespace"] == "switchyard", f"{kind}/{name}"
        labels = manifest["metadata"].get("labels", {})
        # The overlay's Namespace and Secret outlive releases: they carry no version.
        unversioned = kind in ("Namespace", "Secret")
        expected = STANDARD_LABELS - {"app.kubernetes.io/version"} if unversioned else STANDARD_LABELS
        assert expected <= set(labels), f"{kind}/{name} lacks {expected - set(labels)}"


def test_selectors_exclude_version(example: Manifests) -> None:
    deployment = _one(example, "Deployment")
    selectors = [
        deployment["spec"]["selector"]["matchLabels"],
        _one(example, "Service")["spec"]["selector"],
        _one(example, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
        _one(example, "ServiceMonitor")["spec"]["selector"]["matchLabels"],
        _one(example, "NetworkPolicy")["spec"]["podSelector"]["matchLabels"],
    ]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert "app.kubernetes.io/version" in pod_labels
    for selector in selectors:
        assert "app.kubernetes.io/version" not in selector
        assert set(selector) <= SELECTOR_LABELS
        assert selector.items() <= pod_labels.items(), "selector does not match the gateway pods"


def test_probes(example: Manifests) -> None:
    container = _container(example, "Deployment")
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": HTTP_PORT, "metrics": METRICS_PORT}
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["port"] == "http"
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 30


def test_graceful_shutdown_outlasts_the_longest_stream(example: Manifests) -> None:
    pod = _one(example, "Deployment")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    config = _one_config(example, "switchyard-config")["data"]
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    assert int(pre_stop[1]) >= 5
    total_timeout = float(config["UPSTREAM_TOTAL_TIMEOUT"])
    assert pod["terminationGracePeriodSeconds"] > 600
    assert pod["terminationGracePeriodSeconds"] > int(pre_stop[1]) + total_timeout


def test_security_context(example: Manifests) -> None:
    for kind in ("Deployment", "Job"):
        pod = _one(example, kind)["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == 10001
        assert pod["automountServiceAccountToken"] is False
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"]["drop"] == ["ALL"]
            assert "limits" in container["resources"]
            assert "requests" in container["resources"]


def _one_config(example: Manifests, prefix: str) -> dict:
    found = [m for (k, n), m in example.items() if k == "ConfigMap" and n.startswith(prefix + "-")]
    assert len(found) == 1
    return found[0]


def test_writable_volumes_and_catalog_mount(example: Manifests) -> None:
    pod = _one(example, "Deployment")["spec"]["template"]["spec"]
    config = _one_config(example, "switchyard-config")["data"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: volumes[m["name"]] for m in pod["containers"][0]["volumeMounts"]}
    for path in ("/tmp", config["SWITCHYARD_DATA_DIR"], config["PROMETHEUS_MULTIPROC_DIR"]):
        assert "emptyDir" in mounts[path], f"{path} is not a writable emptyDir"
    catalog_dir, _, catalog_file = config["SWITCHYARD_CATALOG"].rpartition("/")
    catalog_map = _one_config(example, "switchyard-catalog")
    assert mounts[catalog_dir]["configMap"]["name"] == catalog_map["metadata"]["name"]
    assert catalog_file in catalog_map["data"]


def test_env_from_config_map_and_secrets(example: Manifests) -> None:
    container = _container(example, "Deployment")
    config = _one_config(example, "switchyard-config")
    assert container["envFrom"] == [{"configMapRef": {"name": config["metadata"]["name"]}}]
    env = {e["name"]: e for e in container["env"]}
    assert set(env) == SECRET_ENV
    secret = example[("Secret", "switchyard-secrets")]
    for entry in env.values():
        ref = entry["valueFrom"]["secretKeyRef"]
        assert ref["name"] == secret["metadata"]["name"]
        assert ref["key"] in secret["stringData"]
    assert not SECRET_ENV & set(config["data"]), "a secret is in the ConfigMap"
    assert set(config["data"]) | set(env) <= gateway_env_names()


def test_config_map_values_pass_settings_validation(example: Manifests) -> None:
    env = dict(_one_config(example, "switchyard-config")["data"])
    env["SWITCHYARD_CATALOG"] = str(K8S_BASE / "catalog.json")
    settings = load_settings(env)
    assert settings.timeouts.total == 600


def test_example_secret_holds_only_placeholders(example: Manifests) -> None:
    secret = example[("Secret", "switchyard-secrets")]
    assert set(secret["stringData"]) == SECRET_ENV
    for key, value in secret["stringData"].items():
        assert "REPLACE_ME" in value, f"{key} in the example Secret is not a marked placeholder"
    reader = example[("Secret", "switchyard-grafana-reader")]["stringData"]
    assert reader["username"] == READER_ROLE
    assert "REPLACE_ME" in reader["password"]
    with pytest.raises(ReaderPasswordError, match="placeholder"):
        check_password(reader["password"])


def test_migration_job_sets_the_grafana_readers_password(example: Manifests) -> None:
    job = _one(example, "Job")
    env = {e["name"]: e for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    ref = env[PASSWORD_ENV]["valueFrom"]["secretKeyRef"]
    # Its own Secret, so a Grafana can be given it without the gateway's keys; optional, so a
    # cluster without Grafana needs none.
    assert ref == {"name": "switchyard-grafana-reader", "key": "password", "optional": True}
    assert ref["key"] in example[("Secret", ref["name"])]["stringData"]
    deployment = _container(example, "Deployment")
    assert PASSWORD_ENV not in {e["name"] for e in deployment["env"]}, "the gateway never needs it"


def test_prometheus_rule_is_the_alert_rules_file(example: Manifests) -> None:
    rule = _one(example, "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    rules_file = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    assert rule["spec"] == rules_file, (
        "deploy/k8s/base/prometheusrule.yaml's spec differs from deploy/prometheus/alerts.yml: edit both")
    assert rule["metadata"]["labels"]["app.kubernetes.io/component"] == "gateway"


def test_migration_job(example: Manifests) -> None:
    job = _one(example, "Job")
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == _container(example, "Deployment")["image"]
    assert container["args"] == ["migrate"]
    assert "command" not in container
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e}
    assert refs["DATABASE_URL"]["key"] == "DATABASE_URL"


def test_gateway_uses_the_image_start_command(example: Manifests) -> None:
    container = _container(example, "Deployment")
    assert "command" not in container
    assert "args" not in container
    assert container["image"] == "ghcr.io/switchyard/switchyard:0.1.0"


def test_autoscaling_and_disruption_budget(example: Manifests) -> None:
    hpa = _one(example, "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    target = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "switchyard"}
    assert hpa["spec"]["scaleTargetRef"] == target
    assert hpa["spec"]["minReplicas"] >= 2
    assert hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"]
    assert "replicas" not in _one(example, "Deployment")["spec"], "the HPA owns the replica count"
    pdb = _one(example, "PodDisruptionBudget")
    assert pdb["apiVersion"] == "policy/v1"
    assert pdb["spec"]["maxUnavailable"] == 1


def test_network_policy(example: Manifests) -> None:
    policy = _one(example, "NetworkPolicy")["spec"]
    assert set(policy["policyTypes"]) == {"Ingress", "Egress"}
    rules = {tuple(p["port"] for p in rule["ports"]): rule["from"] for rule in policy["ingress"]}
    assert set(rules) == {(HTTP_PORT,), (METRICS_PORT,)}
    monitoring = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    assert {"podSelector": {}} in rules[(HTTP_PORT,)]
    assert monitoring in rules[(HTTP_PORT,)]
    # The metrics port: Prometheus alone, not every pod of the namespace.
    assert rules[(METRICS_PORT,)] == [monitoring]
    egress_ports = {(p["port"], p["protocol"]) for rule in policy["egress"] for p in rule["ports"]}
    assert egress_ports == {(53, "UDP"), (53, "TCP"), (5432, "TCP"), (443, "TCP")}


def test_catalog_copy_matches_the_package_catalog() -> None:
    copy = (K8S_BASE / "catalog.json").read_bytes()
    assert copy == (ROOT / "service/catalog/data/catalog.json").read_bytes(), (
        "deploy/k8s/base/catalog.json is stale: cp service/catalog/data/catalog.json deploy/k8s/base/"
    )


def test_config_checksum_annotation() -> None:
    digest = hashlib.sha256((K8S_BASE / "config.env").read_bytes() + (K8S_BASE / "catalog.json").read_bytes())
    deployment = yaml.safe_load((K8S_BASE / "deployment.yaml").read_text())
    annotation = deployment["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
    assert annotation == f"sha256:{digest.hexdigest()}", (
        "stale checksum/config in deploy/k8s/base/deployment.yaml: "
        "set it to sha256:$(cat config.env catalog.json | sha256sum)"
    )


def test_config_env_is_read_by_the_gateway() -> None:
    assert set(parse_env_file(K8S_BASE / "config.env")) <= gateway_env_names()


@pytest.mark.parametrize("directory", [K8S_EXAMPLE, K8S_BASE], ids=["example", "base"])
def test_renderer_matches_kubectl_kustomize(directory: Path) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not installed; kustomize_lite is the only renderer here")
    result = subprocess.run(
        [kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    expected = sorted((d for d in yaml.safe_load_all(result.stdout) if d), key=_identity)
    assert sorted(render(directory), key=_identity) == expected


def _identity(manifest: dict) -> tuple[str, str, str]:
    return (manifest["kind"], manifest["metadata"].get("namespace", ""), manifest["metadata"]["name"])
