"""The container image definition: start command, environment, user, health check, context."""

from __future__ import annotations

import fnmatch
import json
import shlex
from dataclasses import dataclass

import pytest

from .helpers import DEPLOY, ROOT, SERVE_COMMAND, gateway_env_names

# Process-level variables the image sets for Python itself, not gateway settings.
RUNTIME_ENV = {
    "PATH",
    "PYTHONUNBUFFERED",
    "PYTHONDONTWRITEBYTECODE",
    "PIP_DISABLE_PIP_VERSION_CHECK",
    "PIP_NO_CACHE_DIR",
}


@dataclass(frozen=True)
class Instruction:
    stage: int
    keyword: str
    args: str


def parse_dockerfile(text: str) -> list[Instruction]:
    instructions: list[Instruction] = []
    stage = -1
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        instructions.append(Instruction(stage, keyword, args.strip()))
    assert not pending, "Dockerfile ends inside a continued line"
    return instructions


@pytest.fixture(scope="module")
def dockerfile() -> list[Instruction]:
    return parse_dockerfile((DEPLOY / "Dockerfile").read_text())


def _final(instructions: list[Instruction], keyword: str) -> Instruction:
    last_stage = max(i.stage for i in instructions)
    found = [i for i in instructions if i.keyword == keyword and i.stage == last_stage]
    assert found, f"no {keyword} in the runtime stage"
    return found[-1]


def _env_pairs(args: str) -> dict[str, str]:
    pairs = {}
    for token in shlex.split(args):
        key, sep, value = token.partition("=")
        assert sep, f"ENV must use KEY=VALUE form, got {token!r}"
        pairs[key] = value
    return pairs


def test_start_command_is_the_serve_command(dockerfile: list[Instruction]) -> None:
    entrypoint = json.loads(_final(dockerfile, "ENTRYPOINT").args)
    cmd = json.loads(_final(dockerfile, "CMD").args)
    assert entrypoint + cmd == SERVE_COMMAND


def test_multi_stage_on_python_311_slim(dockerfile: list[Instruction]) -> None:
    args = {i.keyword: i.args for i in dockerfile if i.keyword == "ARG"}
    assert "PYTHON_IMAGE=python:3.11-slim" in args.values()
    froms = [i.args for i in dockerfile if i.keyword == "FROM"]
    assert froms == ["${PYTHON_IMAGE} AS builder", "${PYTHON_IMAGE} AS runtime"]
    copies = [i.args for i in dockerfile if i.keyword == "COPY" and i.stage == 1]
    assert "--from=builder /opt/venv /opt/venv" in copies


def test_installs_from_the_lock(dockerfile: list[Instruction]) -> None:
    runs = " ".join(i.args for i in dockerfile if i.keyword == "RUN" and i.stage == 0)
    assert "-c requirements.lock" in runs


def test_every_env_name_is_read_by_the_gateway(dockerfile: list[Instruction]) -> None:
    names = set()
    for instruction in dockerfile:
        if instruction.keyword == "ENV":
            names |= set(_env_pairs(instruction.args))
    gateway_names = names - RUNTIME_ENV
    assert gateway_names, "the image sets no gateway variable"
    assert gateway_names <= gateway_env_names(), gateway_names - gateway_env_names()


def test_runs_as_non_root_uid_10001(dockerfile: list[Instruction]) -> None:
    assert _final(dockerfile, "USER").args == "10001:10001"
    created = " ".join(i.args for i in dockerfile if i.keyword == "RUN" and i.stage == 1)
    assert "--uid 10001" in created
    for path in ("/var/lib/switchyard/data", "/var/lib/switchyard/prometheus"):
        assert path in created, f"{path} is not created writable for uid 10001"


def test_writable_dirs_match_the_env(dockerfile: list[Instruction]) -> None:
    env: dict[str, str] = {}
    for instruction in dockerfile:
        if instruction.keyword == "ENV" and instruction.stage == 1:
            env.update(_env_pairs(instruction.args))
    assert env["SWITCHYARD_DATA_DIR"] == "/var/lib/switchyard/data"
    assert env["PROMETHEUS_MULTIPROC_DIR"] == "/var/lib/switchyard/prometheus"
    assert env["PYTHONDONTWRITEBYTECODE"] == "1", "a read-only root cannot take .pyc files"
    assert env["PATH"].startswith("/opt/venv/bin:")


def test_healthcheck_uses_python_against_healthz(dockerfile: list[Instruction]) -> None:
    check = _final(dockerfile, "HEALTHCHECK").args
    options, _, command = check.partition("CMD ")
    argv = json.loads(command)
    assert argv[:2] == ["python", "-c"]
    assert "http://127.0.0.1:8080/healthz" in argv[2]
    compile(argv[2], "<healthcheck>", "exec")
    assert "--timeout=" in options


def test_stop_signal_and_port(dockerfile: list[Instruction]) -> None:
    assert _final(dockerfile, "STOPSIGNAL").args == "SIGTERM"
    assert _final(dockerfile, "EXPOSE").args == "8080"


def _dockerignore_allows(path: str, patterns: list[str]) -> bool:
    allowed = True
    for pattern in patterns:
        negated = pattern.startswith("!")
        glob = pattern[1:] if negated else pattern
        glob = glob.rstrip("/")
        hit = glob == "**" or fnmatch.fnmatch(path, glob) or path.startswith(glob + "/")
        if hit:
            allowed = negated
    return allowed


def test_every_copied_path_exists_and_is_in_the_build_context(dockerfile: list[Instruction]) -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for instruction in dockerfile:
        if instruction.keyword != "COPY" or instruction.args.startswith("--from="):
            continue
        *sources, _destination = instruction.args.split()
        for listed in sources:
            source = listed.rstrip("/")
            assert (ROOT / source).exists(), f"COPY source {source} does not exist in the repository"
            assert _dockerignore_allows(source, patterns), f"{source} is excluded by .dockerignore"
