"""docker-compose.yml, the Dockerfile and .dockerignore, checked without a container engine.

The compose file is validated against the Compose Specification and its wiring read as data, the
Dockerfile is linted with hadolint and each of its targets read as the stages it builds, and the
compose healthcheck's command is run against a real server with TLS on. tests/test_containers.py
builds the images and runs the stack for real.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.conftest import free_port

try:  # PyYAML if present, else ruamel.yaml (which check-jsonschema, a dev dependency, brings)
    from yaml import safe_load as _yaml_load
except ImportError:  # pragma: no cover - depends on the environment
    from ruamel.yaml import YAML

    def _yaml_load(text: str):
        return YAML(typ="safe", pure=True).load(text)

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
COMPONENTS = {"server": "server", "trainer": "trainer", "client": "clients"}  # service = target -> package / extra
DOCKERFILE = ROOT / "Dockerfile"
BUILD_STAGE = ROOT / "deploy" / "build-stage.sh"
ALSO_COPIED = {"trainer": ("clients",)}  # digits-train --notify talks to the server through clients.connection


# ---------------------------------------------------------------- helpers: compose


def interpolate(value, env: dict[str, str]):
    """Compose variable interpolation (${VAR}, ${VAR:-default}, ${VAR-default}, $VAR, $$) over a YAML tree."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group("braced") or match.group("plain")
        operator, default = match.group("op"), match.group("default") or ""
        if operator == ":-":
            return env.get(name) or default
        if operator == "-":
            return env.get(name, default)
        return env.get(name, "")

    return re.sub(r"\$\$|\$\{(?P<braced>\w+)(?:(?P<op>:?-)(?P<default>[^}]*))?\}|\$(?P<plain>\w+)", replace, value)


def load_compose(host_env: dict[str, str] | None = None) -> dict:
    return interpolate(_yaml_load((ROOT / "docker-compose.yml").read_text()), host_env or {})


def environment(service: dict) -> dict[str, str | None]:
    """A service's environment as a mapping; None means 'passed through from the host if set there'."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return {k: None if v is None else str(v) for k, v in env.items()}


def volumes(service: dict) -> list[tuple[str, str, bool]]:
    """(source, target, read_only) of each short-syntax volume."""
    mounts = []
    for spec in service.get("volumes") or []:
        if isinstance(spec, dict):
            mounts.append((spec.get("source", ""), spec["target"], bool(spec.get("read_only"))))
            continue
        parts = spec.split(":")
        source, target = parts[0], parts[1]
        mounts.append((source, target, len(parts) > 2 and "ro" in parts[2].split(",")))
    return mounts


def is_named_volume(source: str) -> bool:
    return bool(source) and not source.startswith((".", "/", "~", "$"))


# ---------------------------------------------------------------- helpers: Dockerfiles


def instructions(dockerfile: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) per instruction, continuation lines joined, comments dropped."""
    result, pending = [], ""
    for line in dockerfile.read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("#") or not stripped:
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, args = (pending + stripped).partition(" ")
        result.append((keyword.upper(), args.strip()))
        pending = ""
    return result


def stages(steps: list[tuple[str, str]]) -> dict[str, tuple[str, list[tuple[str, str]]]]:
    """Each named stage: (what it is FROM, its instructions)."""
    named: dict[str, tuple[str, list[tuple[str, str]]]] = {}
    for keyword, args in steps:
        if keyword == "FROM":
            parent, _, name = args.partition(" AS ")
            named[name] = (parent, [])
        elif named:
            named[name][1].append((keyword, args))
    return named


def target(name: str) -> list[tuple[str, str]]:
    """The instructions that build a target, its ancestors' first (what `docker build --target` runs
    for the image itself; stages it only copies from are built apart)."""
    named = stages(instructions())
    parent, steps = named[name]
    return (target(parent) if parent in named else [("FROM", parent)]) + steps


def exec_form(name: str, keyword: str) -> list[str] | None:
    """The last ENTRYPOINT or CMD of a target, which must be in JSON (exec) form."""
    found = [args for kw, args in target(name) if kw == keyword]
    return json.loads(found[-1]) if found else None


def requirement_name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[(]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


# ---------------------------------------------------------------- helpers: .dockerignore


def _glob_regex(pattern: str) -> re.Pattern:
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out, i = out + pattern[i:end + 1], end + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + r"\Z")


def ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parent folders decides."""
    parts = path.split("/")
    candidates = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    excluded = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        regex = _glob_regex(os.path.normpath(pattern.lstrip("!").strip()).lstrip("/"))
        if any(regex.match(c) for c in candidates):
            excluded = not negate
    return excluded


def dockerignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


# ---------------------------------------------------------------- static checks


def test_compose_file_follows_the_compose_specification():
    schema = Path(__import__("check_jsonschema").__file__).parent / "builtin_schemas/vendor/compose-spec.json"
    assert schema.is_file(), "check-jsonschema's vendored compose schema is missing: validation would need the network"
    done = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec",
                           "docker-compose.yml"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "version" not in _yaml_load((ROOT / "docker-compose.yml").read_text()), "obsolete 'version:' key"


def test_dockerfile_passes_hadolint():
    done = subprocess.run([str(BIN / "hadolint"), "--no-color", str(DOCKERFILE)],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_services_are_wired_as_documented():
    compose = load_compose()
    services = compose["services"]
    assert set(COMPONENTS) <= set(services)
    for name in COMPONENTS:
        build = services[name]["build"]
        assert (build["context"], build.get("dockerfile", "Dockerfile"), build["target"]) == (".", "Dockerfile", name)

    trainer, server, client = services["trainer"], services["server"], services["client"]
    trainer_env, server_env, client_env = environment(trainer), environment(server), environment(client)

    # trainer: trains the default models once into the models volume, then exits
    assert exec_form("trainer", "ENTRYPOINT") == ["digits-train"]
    assert trainer["command"] == ["--if-missing", "--limit", "0"], "the default trains on all 60,000 images"
    assert load_compose({"DIGITS_TRAIN_LIMIT": "5000"})["services"]["trainer"]["command"][-1] == "5000"
    assert str(trainer["restart"]) == "no"
    trainer_mounts = {target: (source, ro) for source, target, ro in volumes(trainer)}
    assert trainer_mounts[trainer_env["DIGITS_MODELS_DIR"]] == ("models", False)
    cache = trainer_env["DIGITS_CACHE_DIR"]
    assert is_named_volume(trainer_mounts[cache][0]) and not trainer_mounts[cache][1], "MNIST cache volume"
    assert "MNIST_DIR" not in trainer_env, "MNIST_DIR in the container turns off the download fallback"
    # MNIST: the host folder first (as a file:// mirror), then the trainer's own download mirrors
    from trainer.mnist import MIRRORS

    mirrors = [m.strip() for m in trainer_env["DIGITS_MNIST_MIRRORS"].split(",")]
    assert mirrors[0].startswith("file:///") and mirrors[1:] == list(MIRRORS)
    host_folder = mirrors[0][len("file://"):].rstrip("/")
    assert host_folder in trainer_mounts and trainer_mounts[host_folder][1], "host MNIST folder, read-only"
    assert not is_named_volume(trainer_mounts[host_folder][0])

    # server: after a successful training, models read-only, gRPC health check, restarts
    assert exec_form("server", "ENTRYPOINT") == ["digits-server"]
    assert server["depends_on"]["trainer"]["condition"] == "service_completed_successfully"
    assert ("models", server_env["DIGITS_MODELS_DIR"], True) in volumes(server)
    assert server_env["DIGITS_LOG_FORMAT"] == "json"
    assert "DIGITS_TOKEN" in server_env and "DIGITS_TOKEN" in trainer_env and "DIGITS_TOKEN" in client_env
    port = server_env.get("DIGITS_PORT") or "50051"
    assert any(str(p).split(":")[-1] == port for p in server["ports"])
    # the healthcheck asks the plaintext health port, so that it works with TLS on the main port too
    assert server["healthcheck"]["test"] == ["CMD", "python", "-m", "server.healthcheck"]
    assert server_env["DIGITS_HEALTH_PORT"] not in ("", "0", port)
    assert server["restart"] in ("on-failure", "unless-stopped", "always")

    # client: on demand, talks to the server service
    assert exec_form("client", "ENTRYPOINT") == ["digits"]
    assert "client" in client["profiles"]
    host, _, client_port = client_env["DIGITS_SERVER"].rpartition(":")
    assert host == "server" and client_port == port
    assert any(target == "/data" and ro for _, target, ro in volumes(client))

    named = {source for s in services.values() for source, _, _ in volumes(s) if is_named_volume(source)}
    assert named <= set(compose["volumes"])


@pytest.mark.parametrize("service", sorted(COMPONENTS))
def test_each_target_installs_only_its_component(service):
    package = COMPONENTS[service]
    steps = instructions()
    # the build stages' base comes from a build argument whose default is the official image
    assert steps[0][0] == "ARG" and steps[1] == ("FROM", "${BASE_IMAGE} AS base"), steps[:2]
    name, _, default = steps[0][1].partition("=")
    assert name == "BASE_IMAGE" and re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?", default), default
    named = stages(steps)
    assert named[f"{service}-build"][0] == "base"

    # the image itself starts from nothing and takes only the runtime its build stage gathered
    image = target(service)
    assert image[0] == ("FROM", "scratch"), image[0]
    assert [args for kw, args in image if kw == "COPY"] == [f"--from={service}-build /runtime /"]
    users = [args for kw, args in image if kw == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), "must run as a non-root user"
    for keyword in ("ENTRYPOINT", "CMD"):
        for kw, args in image:
            if kw == keyword:
                assert isinstance(json.loads(args), list), f"{keyword} must be in JSON form"
    # the build stage: deploy/build-stage.sh's two steps, the dependencies from pyproject.toml
    # before any code is copied (their layer survives code changes), then the code;
    # pip's downloads stay in a build cache mount, out of the image
    build = target(f"{service}-build")
    calls = [(i, shlex.split(args)) for i, (kw, args) in enumerate(build) if kw == "RUN" and "build-stage.sh" in args]
    assert all(words[0] == "--mount=type=cache,target=/root/.cache/pip" for _, words in calls)
    (first, dependencies), (last, code) = calls
    assert dependencies[1:3] == ["deploy/build-stage.sh", "dependencies"]
    assert code[1:3] == ["deploy/build-stage.sh", "code"]
    first_code = next(i for i, (kw, args) in enumerate(build) if kw == "COPY" and args.startswith("digitserve"))
    assert first < first_code < last
    # the import check runs again in the image, on the modules the build stage checked
    assert ("RUN", json.dumps(["python", "-I", "-B", "-c", f"import {code[3]}"])) in image

    # only the shared package and this component's code go in
    copies = [args.split()[:-1] for kw, args in build if kw == "COPY"]
    sources = {s.rstrip("/") for c in copies for s in c if not s.startswith("--")}
    assert sources == {"pyproject.toml", "deploy/build-stage.sh", "deploy/runtime_root.py", "digitserve", package,
                       *ALSO_COPIED.get(package, ())}, sources
    extra = dependencies[3]
    assert extra == package

    # run the dependency listing as the build stage does and check it lists base + own extra only
    listed = subprocess.run([str(BUILD_STAGE), "requirements", extra], cwd=ROOT, capture_output=True, text=True,
                            env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"},
                            timeout=30, check=True).stdout.split("\n")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    expected = project["dependencies"] + project["optional-dependencies"][package]
    assert [line for line in listed if line] == expected
    own = {requirement_name(r) for r in expected}
    others = set(COMPONENTS.values()) - {package}
    foreign = {requirement_name(r) for o in others for r in project["optional-dependencies"][o]} - own
    assert foreign, "the extras should differ"
    assert not {requirement_name(r) for r in listed if r} & foreign


def test_the_build_stage_script_installs_the_code_alone_and_gathers_the_runtime():
    script = BUILD_STAGE.read_text()
    assert re.search(r"pip install --no-deps \.(\s|$)", script, re.M), "the code, with no dependency of its own"
    assert "pip check" in script and "deploy/runtime_root.py /runtime" in script
    done = subprocess.run([str(BUILD_STAGE), "unknown", "x"], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and "usage:" in done.stderr


def test_dockerignore_keeps_the_build_context_small():
    patterns = dockerignore_patterns()
    for path in (".venv/bin/python", ".git/HEAD", "models/knn.manifest.json", "models/README.md",
                 "tests/test_compose.py", "bench/results.json", "bench/results.md", "mnist/t10k-images-idx3-ubyte.gz",
                 "data/x.png", ".pytest_cache/v/cache", "server/__pycache__/main.cpython-311.pyc",
                 "digitserve.egg-info/PKG-INFO", ".hypothesis/examples", "docker-compose.yml"):
        assert ignored(path, patterns), f"{path} would be sent to the Docker build"
    for path in ("pyproject.toml", "digitserve/v1/digits_pb2.py", "server/main.py", "trainer/main.py",
                 "clients/cli.py", "deploy/runtime_root.py", "deploy/build-stage.sh"):
        assert not ignored(path, patterns), f"{path} is needed by the Dockerfile but excluded"


def test_the_compose_healthcheck_reports_a_tls_server_healthy_through_its_health_port(serve, models_copy, tmp_path):
    from tests.test_hardening import _certificates

    certificates = _certificates(tmp_path)
    server = serve(models_copy, tls_cert=str(certificates["server_cert"]), tls_key=str(certificates["server_key"]),
                   health_port=free_port())
    env = {**os.environ, "DIGITS_HEALTH_PORT": str(server.settings.health_port)}
    test = load_compose()["services"]["server"]["healthcheck"]["test"]
    command = [sys.executable, *test[2:]]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and "SERVING" in done.stdout, done.stdout + done.stderr

    server.running.health.enter_graceful_shutdown()  # what SIGTERM does: NOT_SERVING from then on
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 1 and "NOT_SERVING" in done.stdout, done.stdout + done.stderr

    unset = subprocess.run(command, env={**env, "DIGITS_HEALTH_PORT": "0"}, capture_output=True, text=True,
                           timeout=30)
    assert unset.returncode == 2 and "DIGITS_HEALTH_PORT" in unset.stderr
