"""deploy/compose.yaml, checked structurally (no Compose JSON schema ships offline in .venv),
with its ${...} interpolation done as Compose does it, plus Prometheus' scrape config."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from service.db.reader_role import PASSWORD_ENV, READER_ROLE
from service.settings import load_settings

from .helpers import (
    DEPLOY,
    GRAFANA,
    HTTP_PORT,
    METRICS_PORT,
    STANDIN_ENV,
    STANDIN_URLS,
    gateway_env_names,
    parse_env_file,
    run_promtool,
)

COMPOSE = DEPLOY / "compose.yaml"
_VAR = re.compile(r"\$(?:\$|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\})")
SERVICE_KEYS = {
    "image", "build", "command", "entrypoint", "environment", "env_file", "ports", "volumes", "tmpfs",
    "depends_on", "healthcheck", "restart", "profiles", "read_only", "user", "cap_drop", "security_opt",
    "stop_grace_period",
}


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error} and $$."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group("name"), match.group("op"), match.group("arg") or ""
        value = env.get(name)
        if op in (":-", ":?"):
            unset = not value
        else:
            unset = value is None
        if op in (":?", "?") and unset:
            raise KeyError(f"{name}: {arg}")
        if op in (":-", "-") and unset:
            return arg
        return value or ""

    return _VAR.sub(replace, text)


def load_compose(env: dict[str, str]) -> dict:
    return yaml.safe_load(interpolate(COMPOSE.read_text(), env))


# A secret: given from the shell (or deploy/.env), never from a file in the repository.
READER_PASSWORD = "reader-password-from-the-shell-0123"


@pytest.fixture(scope="module")
def standins_env() -> dict[str, str]:
    return parse_env_file(DEPLOY / "standins.env")


@pytest.fixture(scope="module")
def compose_env(standins_env: dict[str, str]) -> dict[str, str]:
    """What Compose interpolates with in the stand-ins set-up: the env file plus the shell."""
    return {**standins_env, "GRAFANA_READER_PASSWORD": READER_PASSWORD}


@pytest.fixture(scope="module")
def compose(compose_env: dict[str, str]) -> dict:
    return load_compose(compose_env)


def _duration_seconds(value: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", value):
        total += float(number) * units[unit]
    return total


def _container_env(service: dict) -> dict[str, str]:
    """The environment a container gets: a null value means unset (Compose spec)."""
    return {k: str(v) for k, v in service["environment"].items() if v is not None}


def test_structure(compose: dict) -> None:
    assert compose["name"] == "switchyard"
    services = compose["services"]
    declared_volumes = set(compose.get("volumes") or {})
    for name, service in services.items():
        assert set(service) <= SERVICE_KEYS, f"{name}: unexpected keys {set(service) - SERVICE_KEYS}"
        assert "image" in service or "build" in service, f"{name} has neither image nor build"
        if "build" in service:
            context = (COMPOSE.parent / service["build"]["context"]).resolve()
            assert (context / service["build"]["dockerfile"]).is_file()
        depends_on = service.get("depends_on") or {}
        if isinstance(depends_on, list):
            depends_on = {target: {"condition": "service_started"} for target in depends_on}
        for target, condition in depends_on.items():
            assert target in services, f"{name} depends on unknown service {target}"
            if isinstance(condition, dict):
                assert condition["condition"] in (
                    "service_started", "service_healthy", "service_completed_successfully"
                )
                if condition["condition"] == "service_healthy":
                    assert "healthcheck" in services[target], f"{target} has no healthcheck"
            assert "profiles" not in services[target], f"{name} depends on profiled service {target}"
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith((".", "/")):
                assert (COMPOSE.parent / source).exists(), f"{name}: bind source {source} missing"
            else:
                assert source in declared_volumes, f"{name}: volume {source} not declared"
        for port in service.get("ports", []):
            host, container = str(port).rsplit(":", 1)
            assert int(container) > 0
            assert int(host) > 0


def test_gateway_waits_for_migrations_and_postgres(compose: dict) -> None:
    services = compose["services"]
    depends = services["gateway"]["depends_on"]
    assert depends["migrate"] == {"condition": "service_completed_successfully"}
    assert depends["postgres"] == {"condition": "service_healthy"}
    assert services["migrate"]["command"] == ["migrate"]
    assert services["migrate"]["restart"] == "no"
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert services["postgres"]["image"] == "postgres:16"
    assert any(v.endswith(":/var/lib/postgresql/data") for v in services["postgres"]["volumes"])


def test_gateway_uses_the_image_start_command_and_is_hardened(compose: dict) -> None:
    gateway = compose["services"]["gateway"]
    assert "command" not in gateway, "the Dockerfile CMD is the start command"
    assert "entrypoint" not in gateway, "the Dockerfile ENTRYPOINT is the start command"
    assert gateway["read_only"] is True
    assert gateway["user"] == "10001:10001"
    assert gateway["cap_drop"] == ["ALL"]
    assert f"8080:{HTTP_PORT}" in gateway["ports"]
    assert _duration_seconds(gateway["stop_grace_period"]) > 600
    writable = set(gateway["tmpfs"]) | {v.split(":")[1] for v in gateway["volumes"]}
    env = gateway["environment"]
    assert {"/tmp", env["SWITCHYARD_DATA_DIR"], env["PROMETHEUS_MULTIPROC_DIR"]} <= writable


def test_gateway_environment_is_what_the_gateway_reads(compose: dict) -> None:
    env = compose["services"]["gateway"]["environment"]
    assert set(env) <= gateway_env_names(), set(env) - gateway_env_names()


def test_standins_profile_and_env_file(compose: dict, standins_env: dict[str, str]) -> None:
    standins = compose["services"]["standins"]
    assert standins["profiles"] == ["standins"]
    assert standins["entrypoint"] == ["python", "-m", "service.simulator"]
    command = standins["command"]
    flags = ("--baseten-port", "--xpay-port", "--orthogonal-port")
    ports = {flag: int(command[command.index(flag) + 1]) for flag in flags}
    assert ports == {"--baseten-port": 9001, "--xpay-port": 9002, "--orthogonal-port": 9003}
    for key, value in STANDIN_ENV.items():
        assert standins_env[key] == value
    for key, (port, path) in STANDIN_URLS.items():
        url = urlsplit(standins_env[key])
        assert (url.hostname, url.port, url.path) == ("standins", port, path)
    env = compose["services"]["gateway"]["environment"]
    for key in (*STANDIN_ENV, *STANDIN_URLS):
        assert env[key] == standins_env[key], f"{key} does not reach the gateway"


def test_gateway_settings_load_with_standins(compose: dict) -> None:
    env = _container_env(compose["services"]["gateway"])
    settings = load_settings(env)
    assert settings.enabled_front_ends() == ["baseten", "xpay", "orthogonal"]
    assert settings.timeouts.total == 600


def test_real_upstream_defaults_and_required_secrets() -> None:
    env = {"SWITCHYARD_ADMIN_TOKEN": "a-real-admin-token-0123", "GRAFANA_READER_PASSWORD": READER_PASSWORD}
    gateway = load_compose(env)["services"]["gateway"]["environment"]
    assert gateway["BASETEN_BASE_URL"] == "https://inference.baseten.co/v1"
    assert load_settings(_container_env({"environment": gateway})).enabled_front_ends() == []
    for missing in env:
        with pytest.raises(KeyError, match=missing):
            load_compose({k: v for k, v in env.items() if k != missing})


def test_grafana_reads_postgres_as_the_read_only_role(compose: dict) -> None:
    services = compose["services"]
    grafana = services["grafana"]["environment"]
    assert grafana["SWITCHYARD_PG_USER"] == READER_ROLE
    assert grafana["SWITCHYARD_PG_PASSWORD"] == READER_PASSWORD
    # `migrate` gives the role that same password, and Grafana starts after it has.
    assert services["migrate"]["environment"][PASSWORD_ENV] == READER_PASSWORD
    assert services["grafana"]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    # The owner's password is nowhere near Grafana.
    owner = re.search(r"postgresql://(\w+):", services["gateway"]["environment"]["DATABASE_URL"]).group(1)
    assert grafana["SWITCHYARD_PG_USER"] != owner
    # No file of the repository holds the reader's password.
    assert "GRAFANA_READER_PASSWORD" not in parse_env_file(DEPLOY / "standins.env")
    assert parse_env_file(DEPLOY / ".env.example")["GRAFANA_READER_PASSWORD"] == ""


def test_prometheus_loads_the_alert_rules(compose: dict) -> None:
    prometheus = compose["services"]["prometheus"]
    mounts = {target: (COMPOSE.parent / source).resolve()
              for source, target, *_ in (v.split(":") for v in prometheus["volumes"] if v.startswith("."))}
    config_path = mounts["/etc/prometheus/prometheus.yml"]
    config = yaml.safe_load(config_path.read_text())
    for rule_file in config["rule_files"]:
        # Resolved against the config file's directory, in the container as in the repository.
        in_container = str(Path("/etc/prometheus") / rule_file)
        assert mounts[in_container] == (config_path.parent / rule_file).resolve() == DEPLOY / "prometheus/alerts.yml"
    result = run_promtool("check", "config", str(config_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 1 rule files found" in result.stdout


def test_env_example_lists_every_required_variable() -> None:
    example = (DEPLOY / ".env.example").read_text()
    required = {m.group("name") for m in _VAR.finditer(COMPOSE.read_text()) if m.group("op") in (":?", "?")}
    assert required
    for name in required:
        assert re.search(rf"^{name}=", example, re.MULTILINE), f"{name} missing from .env.example"


def test_grafana_mounts_provisioning_and_dashboards(compose: dict) -> None:
    grafana = compose["services"]["grafana"]
    binds = [v.split(":") for v in grafana["volumes"] if v.startswith(".")]
    mounts = {target: (COMPOSE.parent / source).resolve() for source, target, *_ in binds}
    assert mounts["/etc/grafana/provisioning"] == (GRAFANA / "provisioning").resolve()
    assert mounts["/var/lib/grafana/dashboards"] == (GRAFANA / "dashboards").resolve()
    provider = yaml.safe_load((GRAFANA / "provisioning/dashboards/dashboards.yaml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    datasources = (GRAFANA / "provisioning/datasources/datasources.yaml").read_text()
    for name in re.findall(r"\$\{?([A-Z_]+)\}?", datasources):
        assert name in grafana["environment"], f"datasources.yaml reads {name}, compose does not set it"


def test_prometheus_scrapes_the_gateway(compose: dict) -> None:
    prometheus = compose["services"]["prometheus"]
    source = next(v.split(":")[0] for v in prometheus["volumes"] if v.endswith("prometheus.yml:ro"))
    config_path = (COMPOSE.parent / source).resolve()
    config = yaml.safe_load(config_path.read_text())
    gateway = compose["services"]["gateway"]
    # The metrics have their own port, reachable on the compose network only; the public port has none.
    assert gateway["environment"]["SWITCHYARD_METRICS_PORT"] == str(METRICS_PORT)
    assert not any(str(METRICS_PORT) in str(p) for p in gateway["ports"]), "the metrics port is published"
    targets = [t for j in config["scrape_configs"] for sc in j["static_configs"] for t in sc["targets"]]
    assert f"gateway:{HTTP_PORT}" not in targets, "scraping the public port, where /metrics is 404"
    target = f"gateway:{METRICS_PORT}"
    jobs = [j for j in config["scrape_configs"] if any(target in sc["targets"] for sc in j["static_configs"])]
    assert len(jobs) == 1, "exactly one scrape job for the gateway"
    job = jobs[0]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    result = run_promtool("check", "config", str(config_path))
    assert result.returncode == 0, result.stdout + result.stderr



def test_compose_file_validates_against_the_compose_specification(compose: dict) -> None:
    import json

    import jsonschema

    schema = json.loads((Path(__file__).parent / "schemas" / "compose_spec.json").read_text())
    # The top-level project `name` joined the specification after the vendored (2021-05) copy.
    schema["properties"]["name"] = {"type": "string"}
    validator = jsonschema.Draft201909Validator(schema)
    errors = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(compose)]
    assert errors == []
    # The schema does bite: a misspelt service key is refused.
    misspelt = {**compose["services"]["gateway"], "helthcheck": {}}
    broken = {**compose, "services": {**compose["services"], "gateway": misspelt}}
    assert any(True for _ in validator.iter_errors(broken))
