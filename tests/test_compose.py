"""docker-compose.yml, the three Dockerfiles and .dockerignore: valid, linted, and runnable as written.

No Docker engine is needed. The file is validated against the Compose
Specification, the Dockerfiles are linted with hadolint, and the integration
test runs each service's entrypoint + command with the environment the compose
file gives it, with every container path (volume mount target) mapped to a
temporary folder: the trainer fills the ``models`` volume, the server serves
it, the compose healthcheck sees it SERVING, the client predicts through it and
a retrain with --notify reaches it.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
import tomllib
from pathlib import Path

import pytest
from PIL import Image

try:  # PyYAML if present, else ruamel.yaml (which check-jsonschema, a dev dependency, brings)
    from yaml import safe_load as _yaml_load
except ImportError:  # pragma: no cover - depends on the environment
    from ruamel.yaml import YAML

    def _yaml_load(text: str):
        return YAML(typ="safe", pure=True).load(text)

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
COMPONENTS = {"server": "server", "trainer": "trainer", "client": "clients"}  # service -> package / extra
DOCKERFILES = {package: ROOT / package / "Dockerfile" for package in COMPONENTS.values()}
QUICK = ["--limit", "1500", "--jobs", "1", "--no-report"]
TOKEN = "compose-test-token"


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


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
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


def exec_form(dockerfile: Path, keyword: str) -> list[str] | None:
    """The last ENTRYPOINT or CMD of a Dockerfile, which must be in JSON (exec) form."""
    found = [args for kw, args in instructions(dockerfile) if kw == keyword]
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


@pytest.mark.parametrize("package", sorted(DOCKERFILES))
def test_dockerfile_passes_hadolint(package):
    done = subprocess.run([str(BIN / "hadolint"), "--no-color", str(DOCKERFILES[package])],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_services_are_wired_as_documented():
    compose = load_compose()
    services = compose["services"]
    assert set(COMPONENTS) <= set(services)
    for name, package in COMPONENTS.items():
        build = services[name]["build"]
        assert (build["context"], build["dockerfile"]) == (".", f"{package}/Dockerfile")

    trainer, server, client = services["trainer"], services["server"], services["client"]
    trainer_env, server_env, client_env = environment(trainer), environment(server), environment(client)

    # trainer: trains the default models once into the models volume, then exits
    assert exec_form(DOCKERFILES["trainer"], "ENTRYPOINT") == ["digits-train"]
    assert trainer["command"] == ["--if-missing"]
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
    assert exec_form(DOCKERFILES["server"], "ENTRYPOINT") == ["digits-server"]
    assert server["depends_on"]["trainer"]["condition"] == "service_completed_successfully"
    assert ("models", server_env["DIGITS_MODELS_DIR"], True) in volumes(server)
    assert server_env["DIGITS_LOG_FORMAT"] == "json"
    assert "DIGITS_TOKEN" in server_env and "DIGITS_TOKEN" in trainer_env and "DIGITS_TOKEN" in client_env
    port = server_env.get("DIGITS_PORT") or "50051"
    assert any(str(p).split(":")[-1] == port for p in server["ports"])
    probe = " ".join(server["healthcheck"]["test"])
    assert "grpc_health.v1" in probe and "HealthStub" in probe and "SERVING" in probe and f":{port}" in probe
    assert server["restart"] in ("on-failure", "unless-stopped", "always")

    # client: on demand, talks to the server service
    assert exec_form(DOCKERFILES["clients"], "ENTRYPOINT") == ["digits"]
    assert "client" in client["profiles"]
    host, _, client_port = client_env["DIGITS_SERVER"].rpartition(":")
    assert host == "server" and client_port == port
    assert any(target == "/data" and ro for _, target, ro in volumes(client))

    named = {source for s in services.values() for source, _, _ in volumes(s) if is_named_volume(source)}
    assert named <= set(compose["volumes"])


@pytest.mark.parametrize("package", sorted(DOCKERFILES))
def test_dockerfile_installs_only_its_component(package):
    steps = instructions(DOCKERFILES[package])
    keywords = [kw for kw, _ in steps]
    base = steps[0][1]
    assert steps[0][0] == "FROM" and re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?", base), base

    users = [args for kw, args in steps if kw == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), "must run as a non-root user"
    assert keywords.index("USER") > max(i for i, kw in enumerate(keywords) if kw == "RUN")
    for keyword in ("ENTRYPOINT", "CMD"):
        for kw, args in steps:
            if kw == keyword:
                assert isinstance(json.loads(args), list), f"{keyword} must be in JSON form"

    # only the shared package and this component's code go in
    copies = [args.split()[:-1] for kw, args in steps if kw == "COPY"]
    sources = {s.rstrip("/") for c in copies for s in c if not s.startswith("--")}
    assert sources == {"pyproject.toml", "digitserve", package}, sources
    others = set(DOCKERFILES) - {package}
    for other in others:
        assert f".[{other}]" not in DOCKERFILES[package].read_text()

    # the dependency layer: built from pyproject.toml before any code is copied
    first_code = next(i for i, c in enumerate(copies) if "digitserve" in {s.rstrip("/") for s in c})
    runs = [(i, args) for i, (kw, args) in enumerate(steps) if kw == "RUN" and "pip install" in args]
    copy_steps = [i for i, (kw, _) in enumerate(steps) if kw == "COPY"]
    assert runs[0][0] < copy_steps[first_code] < runs[-1][0]
    assert all("--no-cache-dir" in args for _, args in runs)
    assert re.search(r"pip install --no-cache-dir --no-deps \.(\s|$)", runs[-1][1])

    # run the dependency extraction exactly as written and check it lists base + own extra only
    tokens = shlex.split(next(args for _, args in runs if "tomllib" in args))
    command = tokens[:tokens.index(">")]
    assert command[0] == "python"
    listed = subprocess.run([sys.executable, *command[1:]], cwd=ROOT, capture_output=True, text=True,
                            timeout=30, check=True).stdout.split("\n")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    expected = project["dependencies"] + project["optional-dependencies"][package]
    assert [line for line in listed if line] == expected
    own = {requirement_name(r) for r in expected}
    foreign = {requirement_name(r) for o in others for r in project["optional-dependencies"][o]} - own
    assert foreign, "the extras should differ"
    assert not {requirement_name(r) for r in listed if r} & foreign


def test_dockerignore_keeps_the_build_context_small():
    patterns = dockerignore_patterns()
    for path in (".venv/bin/python", ".git/HEAD", "models/knn.manifest.json", "models/README.md",
                 "tests/test_compose.py", "bench/results.json", "bench/results.md", "mnist/t10k-images-idx3-ubyte.gz",
                 "data/x.png", ".pytest_cache/v/cache", "server/__pycache__/main.cpython-311.pyc",
                 "digitserve.egg-info/PKG-INFO", ".hypothesis/examples", "docker-compose.yml"):
        assert ignored(path, patterns), f"{path} would be sent to the Docker build"
    for path in ("pyproject.toml", "digitserve/v1/digits_pb2.py", "server/main.py", "trainer/main.py",
                 "clients/cli.py"):
        assert not ignored(path, patterns), f"{path} is needed by a Dockerfile but excluded"


# ---------------------------------------------------------------- the services, run as compose would


class Stack:
    """Runs compose services as local processes with container paths mapped to temporary folders."""

    def __init__(self, tmp: Path, host_env: dict[str, str]):
        self.tmp, self.host_env = tmp, host_env
        self.compose = load_compose(host_env)
        self.services = self.compose["services"]
        self.home = tmp / "home"
        self.home.mkdir()

    def local(self, source: str) -> Path:
        if is_named_volume(source):
            path = self.tmp / "volumes" / source
        elif Path(source).is_absolute():
            path = Path(source)
        else:
            path = self.tmp / "host" / source  # e.g. ./data: never the checkout itself
        path.mkdir(parents=True, exist_ok=True)
        return path

    def mounts(self, name: str) -> dict[str, Path]:
        return {target: self.local(source) for source, target, _ in volumes(self.services[name])}

    def map_paths(self, text: str, name: str) -> str:
        for target, local in sorted(self.mounts(name).items(), key=lambda kv: -len(kv[0])):
            text = re.sub(rf"(?<![\w.-]){re.escape(target)}(?=/|,|:|$)", str(local), text)
        return text

    def env(self, name: str, **overrides: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DIGITS_", "MNIST_"))}
        env["HOME"] = str(self.home)
        for key, value in environment(self.services[name]).items():
            if value is None:
                if key in self.host_env:
                    env[key] = self.host_env[key]
            else:
                env[key] = self.map_paths(value, name)
        env.update(overrides)
        return env

    def argv(self, name: str, args: list[str] | None = None) -> list[str]:
        """Entrypoint + command (or the arguments of `docker compose run SERVICE ARGS...`)."""
        service = self.services[name]
        dockerfile = ROOT / service["build"]["dockerfile"]
        entrypoint = service.get("entrypoint") or exec_form(dockerfile, "ENTRYPOINT")
        command = args if args is not None else service.get("command") or exec_form(dockerfile, "CMD") or []
        entrypoint = [str(BIN / entrypoint[0]), *entrypoint[1:]]
        return entrypoint + [self.map_paths(a, name) for a in command]

    def cwd(self, name: str) -> Path:
        workdir = self.services[name].get("working_dir")
        return Path(self.map_paths(workdir, name)) if workdir else self.home

    def run(self, name: str, args: list[str] | None = None, extra: list[str] = (), timeout: float = 120,
            **env: str) -> subprocess.CompletedProcess:
        return subprocess.run(self.argv(name, args) + list(extra), env=self.env(name, **env), cwd=self.cwd(name),
                              capture_output=True, text=True, timeout=timeout)

    def start(self, name: str, **env: str) -> subprocess.Popen:
        return subprocess.Popen(self.argv(name), env=self.env(name, **env), cwd=self.cwd(name),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def healthcheck(self, name: str, port: int) -> subprocess.CompletedProcess:
        test = self.services[name]["healthcheck"]["test"]
        container_port = environment(self.services[name]).get("DIGITS_PORT") or "50051"
        retarget = lambda text: re.sub(rf"(localhost|127\.0\.0\.1|\[::1?\]):{container_port}\b",  # noqa: E731
                                       f"127.0.0.1:{port}", text)
        if isinstance(test, str) or test[0] == "CMD-SHELL":
            shell = test if isinstance(test, str) else test[1]
            command = ["sh", "-c", retarget(re.sub(r"^python3?\b", shlex.quote(sys.executable), shell))]
        else:
            assert test[0] == "CMD"
            command = [sys.executable if test[1] in ("python", "python3") else test[1], *map(retarget, test[2:])]
        return subprocess.run(command, env=self.env(name), capture_output=True, text=True, timeout=30)


def _lines(stream, into: queue.Queue) -> None:
    for line in stream:
        into.put(line)


def _snapshot(folder: Path) -> dict[str, tuple[int, bytes]]:
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(folder.iterdir()) if p.is_file()}


def _models(stack: Stack, port: int) -> dict[str, dict]:
    done = stack.run("client", ["models", "--format", "json"], DIGITS_SERVER=f"127.0.0.1:{port}")
    assert done.returncode == 0, done.stderr
    return {m["name"]: m for m in json.loads(done.stdout)}


@pytest.mark.heavy
@pytest.mark.timeout(180)
def test_compose_services_train_serve_predict_and_reload(tmp_path, mnist_dir, test_digits):
    host_mnist = tmp_path / "host-mnist"
    host_mnist.mkdir()
    for gz in sorted(mnist_dir.glob("*-ubyte.gz")):
        (host_mnist / gz.name).symlink_to(gz.resolve())
    # the host variable that names the MNIST folder, read from the trainer's bind mount
    raw_trainer = _yaml_load((ROOT / "docker-compose.yml").read_text())["services"]["trainer"]
    variables = [m.group(1) for spec in raw_trainer["volumes"] if isinstance(spec, str)
                 for m in [re.match(r"\$\{(\w+)", spec)] if m]
    assert variables, "the host MNIST folder should be configurable through a variable"
    stack = Stack(tmp_path, {variables[0]: str(host_mnist), "DIGITS_TOKEN": TOKEN})
    models_dir = stack.local("models")
    server = None
    try:
        # 1. docker compose up: the trainer fills the empty models volume and exits 0
        done = stack.run("trainer", extra=QUICK)
        assert done.returncode == 0, done.stderr
        manifests = sorted(p.name for p in models_dir.glob("*.manifest.json"))
        assert manifests == sorted(f"{m}.manifest.json" for m in ("knn", "svm", "rf", "ensemble"))
        cache = Path(stack.env("trainer")["DIGITS_CACHE_DIR"]) / "mnist"
        assert sorted(p.name for p in cache.glob("*.gz")) == sorted(p.name for p in host_mnist.iterdir())

        # 2. up again: --if-missing finds the models and leaves them alone
        before = _snapshot(models_dir)
        started = time.monotonic()
        again = stack.run("trainer", extra=QUICK, timeout=60)
        assert again.returncode == 0, again.stderr
        assert _snapshot(models_dir) == before, "--if-missing retrained"
        assert time.monotonic() - started < 30

        # 3. the server on the models volume, on a free port; the compose healthcheck says SERVING
        server = stack.start("server", DIGITS_PORT="0", DIGITS_HOST="127.0.0.1")
        logs: queue.Queue = queue.Queue()
        threading.Thread(target=_lines, args=(server.stderr, logs), daemon=True).start()
        first = json.loads(logs.get(timeout=60))
        assert first["event"] == "server started", first
        port = int(first["address"].rsplit(":", 1)[1])
        deadline = time.monotonic() + 60
        while (probe := stack.healthcheck("server", port)).returncode != 0:
            assert server.poll() is None, "server exited"
            assert time.monotonic() < deadline, f"never SERVING: {probe.stderr}"
            time.sleep(0.5)

        # 4. docker compose run --rm client predict /data/...: one test digit of each class, as PNG
        images, labels = test_digits
        data = stack.mounts("client")["/data"]
        chosen = {}
        for digit in range(10):
            index = int((labels == digit).nonzero()[0][0])
            Image.fromarray(images[index].reshape(28, 28)).save(data / f"digit-{index}.png")
            chosen[f"digit-{index}.png"] = digit
        done = stack.run("client", ["predict", "--format", "json", *(f"/data/{n}" for n in chosen)],
                         DIGITS_SERVER=f"127.0.0.1:{port}")
        assert done.returncode == 0, done.stderr
        answers = {Path(r["source"]).name: r["digit"] for r in json.loads(done.stdout)}
        assert answers == chosen
        assert _snapshot(models_dir) == before, "the server wrote into its read-only models volume"

        # the token reached the server: Reload without it is refused
        env = stack.env("client", DIGITS_SERVER=f"127.0.0.1:{port}")
        env.pop("DIGITS_TOKEN", None)
        refused = subprocess.run(stack.argv("client", ["reload", "--retries", "0"]), env=env, cwd=stack.cwd("client"),
                                 capture_output=True, text=True, timeout=60)
        assert refused.returncode == 3, refused.stdout + refused.stderr

        # 5. docker compose run --rm trainer --force --models svm --notify ...: from the cache alone
        old = _models(stack, port)
        for link in host_mnist.iterdir():
            link.unlink()
        done = stack.run("trainer", ["--force", "--models", "svm", "--seed", "1", *QUICK,
                                     "--notify", f"127.0.0.1:{port}"])
        assert done.returncode == 0, done.stderr
        new = _models(stack, port)
        assert new["svm"]["version"] != old["svm"]["version"]
        assert new["svm"]["state"] == "loaded"
        assert {n: m["version"] for n, m in new.items() if n != "svm"} == \
               {n: m["version"] for n, m in old.items() if n != "svm"}

        # 6. docker compose stop: SIGTERM, clean exit
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
    finally:
        if server is not None and server.poll() is None:
            server.kill()
            server.wait(timeout=10)
