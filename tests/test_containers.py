"""The real stack: the three images built from the Dockerfile and run by compose under podman.

The images are built with the repository as the context (deploy/podman/build-images.sh, on the
stand-in base that deploy/setup-host.sh makes when no registry is reachable) and the stack is
brought up from the repository's docker-compose.yml. An override file adds only what this
machine needs, the image names (deploy/compose/local-images.yml), and for the last test the
TLS override (deploy/compose/tls.yml). Everything is reached from the host
through the port published on 127.0.0.1; podman has no systemd here to run healthchecks, so a
thread of the test runs `podman healthcheck run` the way podman's timer would.

The tests run in order on one stack, which is removed at the end (containers, pod, network,
volumes), whatever happened. Without podman they skip, naming the package, unless
DIGITS_REQUIRE_CONTAINERS=1 (as .ci/run sets) makes that a failure.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
import yaml

from digitserve import exits
from digitserve.v1 import digits_pb2 as pb
from digitserve.v1 import digits_pb2_grpc
from tests.conftest import ROOT, free_port, require_system_package

pytestmark = [pytest.mark.heavy, pytest.mark.timeout(900)]

if os.environ.get("DIGITS_REQUIRE_CONTAINERS") != "1":  # skip the module in one line; else each test fails
    require_system_package(shutil.which("podman") is not None, "podman", "DIGITS_REQUIRE_CONTAINERS",
                           "the container tests")

BIN = Path(sys.executable).parent
BASE_IMAGE = os.environ.get("DIGITS_BASE_IMAGE") or (ROOT / "deploy" / "podman" / "stand-in-base").read_text().strip()
TAG = "test"
SERVICES = ("server", "trainer", "client")
TRAIN_LIMIT = 8000   # enough for >= 97% on the 200 test digits, quick enough to train in a minute
RESULTS = os.environ.get("DIGITS_CONTAINER_RESULTS")  # where bench.containers wants the figures


def podman(*args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
    return done


def _started_at(text: str) -> float:
    """podman's start time as a Unix time: '2026-12-02 13:15:59.1724508 +0000 UTC' or '2026-12-02T13:15:59.17Z'."""
    found = re.match(r"(\d{4}-\d\d-\d\d)[T ](\d\d:\d\d:\d\d)(?:\.(\d+))?\s*(Z|[+-]\d{4})?", text)
    assert found, f"unexpected time {text!r}"
    day, clock, fraction, offset = found.groups()
    offset = "+0000" if offset in (None, "Z") else offset
    stamp = datetime.datetime.strptime(f"{day} {clock} {offset}", "%Y-%m-%d %H:%M:%S %z")
    return stamp.timestamp() + float(f"0.{fraction or 0}")


@dataclass
class Stack:
    """One compose project: its files, its environment, and the podman names of its parts."""

    project: str
    folder: Path
    port: int
    overrides: list[Path]
    env: dict[str, str]
    healthy_at: dict[str, float] = field(default_factory=dict)

    def compose(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        files = [ROOT / "docker-compose.yml", *self.overrides]
        # podman-compose, unlike docker compose, runs a service of a profile only with that profile on
        profile = ["--profile", "client"] if args[:1] == ("run",) and "client" in args else []
        command = [str(BIN / "podman-compose"), "--project-name", self.project, *profile,
                   *(arg for f in files for arg in ("--file", str(f))), *args]
        done = subprocess.run(command, cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=timeout)
        assert done.returncode == 0, f"podman-compose {' '.join(args)}: {done.stdout[-2000:]}{done.stderr[-3000:]}"
        return done

    def container(self, service: str) -> str:
        return f"{self.project}_{service}_1"

    def state(self, service: str) -> dict:
        return json.loads(podman("inspect", "--format", "{{json .State}}", self.container(service)).stdout)

    def drive_healthcheck(self, stop: threading.Event) -> None:
        """What podman's systemd timer would do: run the server's healthcheck, each second while it is
        not healthy. (Each check starts a process in the container: checking more often slows the
        start it measures on two busy cores.)"""
        name = self.container("server")
        while not stop.is_set():
            healthy = podman("healthcheck", "run", name, timeout=30, check=False).returncode == 0
            if healthy:
                checked = time.time()
                started = podman("inspect", "--format", "{{.State.StartedAt}}", name, check=False)
                if started.returncode == 0:
                    self.healthy_at.setdefault(started.stdout.strip(), checked)
            stop.wait(2.0 if healthy else 1.0)

    def wait_healthy(self, timeout: float) -> float:
        """Seconds from the server container's start to its first healthy check."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status, started = podman("inspect", "--format", "{{.State.Status}}|{{.State.StartedAt}}",
                                     self.container("server")).stdout.strip().split("|")
            assert status == "running", f"server container is {status}: {self.logs('server')[-2000:]}"
            for _ in range(25):  # the driver thread does the checking; look at its findings meanwhile
                if started in self.healthy_at:
                    return self.healthy_at[started] - _started_at(started)
                time.sleep(0.2)
        raise AssertionError(f"server not healthy within {timeout} s: {self.logs('server')[-2000:]}")

    def start_to_serving(self) -> float:
        """Seconds from the server container's start to its log's first 'reload finished' (SERVING)."""
        started = _started_at(self.state("server")["StartedAt"])
        for line in self.logs("server").splitlines():
            event = json.loads(line) if line.startswith("{") else {}
            at = datetime.datetime.fromisoformat(event.get("time", "1970-01-01T00:00:00+00:00")).timestamp()
            if event.get("event") == "reload finished" and at >= started - 1:  # not a previous run's
                return at - started
        raise AssertionError(f"no 'reload finished' in the server's log: {self.logs('server')[-2000:]}")

    def wait_exited(self, service: str, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while (state := self.state(service))["Status"] != "exited":
            assert time.monotonic() < deadline, f"{service} still {state['Status']} after {timeout} s"
            time.sleep(0.5)
        return state["ExitCode"]

    def logs(self, service: str) -> str:
        done = podman("logs", self.container(service), check=False)
        return done.stdout + done.stderr

    def digits(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        """The host's client, through the published port."""
        return subprocess.run([str(BIN / "digits"), args[0], "--server", f"127.0.0.1:{self.port}", *args[1:]],
                              capture_output=True, text=True, timeout=timeout)

    def models(self, *args: str) -> dict[str, dict]:
        done = self.digits("models", "--format", "json", *args)
        assert done.returncode == 0, done.stderr
        return {m["name"]: m for m in json.loads(done.stdout)}

    def versions(self) -> dict[str, str]:
        return {name: model["version"] for name, model in self.models().items()}

    def remove(self) -> None:
        """Everything of the project, even when compose itself is what failed."""
        label = f"label=io.podman.compose.project={self.project}"
        ids = podman("ps", "--all", "--quiet", "--filter", label, check=False).stdout.split()
        if ids:
            podman("rm", "--force", "--time", "2", *ids, timeout=120, check=False)
        podman("pod", "rm", "--force", f"pod_{self.project}", timeout=60, check=False)
        volumes = podman("volume", "ls", "--quiet", "--filter", label, check=False).stdout.split()
        if volumes:
            podman("volume", "rm", "--force", *volumes, check=False)
        podman("network", "rm", "--force", f"{self.project}_default", check=False)


@pytest.fixture(scope="module")
def figures(request):
    """What the tests measure; printed at the end, and written for bench.containers when it asks."""
    found: dict = {"load_average_before": [round(x, 2) for x in os.getloadavg()]}
    yield found
    found["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    with request.config.pluginmanager.getplugin("capturemanager").global_and_fixture_disabled():
        print("\ncontainer figures:", json.dumps(found))
    if RESULTS:
        Path(RESULTS).write_text(json.dumps(found, indent=1) + "\n")


@pytest.fixture(scope="module")
def images(figures) -> dict[str, str]:
    require_system_package(shutil.which("podman") is not None, "podman", "DIGITS_REQUIRE_CONTAINERS",
                           "the container tests")
    require_system_package(podman("image", "exists", BASE_IMAGE, check=False).returncode == 0,
                           f"debootstrap (to build the base image {BASE_IMAGE})", "DIGITS_REQUIRE_CONTAINERS",
                           "the container tests")
    started = time.monotonic()
    done = subprocess.run([str(ROOT / "deploy/podman/build-images.sh"), TAG], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    figures["build_seconds"] = round(time.monotonic() - started, 1)
    names = {service: f"localhost/digitserve-{service}:{TAG}" for service in SERVICES}
    sizes = {service: int(podman("image", "inspect", "--format", "{{.Size}}", name).stdout)
             for service, name in {"base": BASE_IMAGE, **names}.items()}
    figures["image_mb"] = {service: round(size / 1e6, 1) for service, size in sizes.items()}
    return names


@pytest.fixture(scope="module")
def stack(images, mnist_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("stack")
    (folder / "data").mkdir()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DIGITS_", "MNIST_"))}
    env.update(MNIST_DIR=str(mnist_dir), DIGITS_DATA_DIR=str(folder / "data"), DIGITS_JOBS="2", DIGITS_IMAGE_TAG=TAG,
               DIGITS_TRAIN_LIMIT=str(TRAIN_LIMIT), DIGITS_PUBLISH_PORT=f"127.0.0.1:{port}")
    project = f"digitstest{uuid.uuid4().hex[:8]}"
    stack = Stack(project, folder, port, [ROOT / "deploy/compose/local-images.yml"], env)
    stop = threading.Event()
    driver = threading.Thread(target=stack.drive_healthcheck, args=(stop,), daemon=True)
    driver.start()
    try:
        yield stack
    finally:
        stop.set()
        driver.join(timeout=60)
        try:
            stack.compose("down", "--volumes", "--timeout", "5", timeout=180)
        except (AssertionError, subprocess.TimeoutExpired):
            pass
        stack.remove()


# ---------------------------------------------------------------- the tests, in order


def test_each_image_is_its_runtime_alone_without_shell_apt_or_pip(images):
    """The images start FROM scratch with what deploy/runtime_root.py gathered: Python runs, the rest is gone."""
    probe = ("import importlib.util, json, os; print(json.dumps({'shell': os.path.exists('/bin/sh'), "
             "'apt': os.path.exists('/usr/bin/apt-get'), 'pip': importlib.util.find_spec('pip') is not None}))")
    for service, name in images.items():
        done = podman("run", "--rm", "--network", "none", "--entrypoint", "python", name, "-c", probe)
        assert json.loads(done.stdout) == {"shell": False, "apt": False, "pip": False}, service


def test_the_kubernetes_pre_stop_hook_runs_in_the_server_image(images):
    """The Deployment's preStop command exists in the image (it has no sleep command) and waits."""
    manifest = yaml.safe_load((ROOT / "deploy/kubernetes/base/server-deployment.yaml").read_text())
    command = manifest["spec"]["template"]["spec"]["containers"][0]["lifecycle"]["preStop"]["exec"]["command"]
    started = time.monotonic()
    podman("run", "--rm", "--network", "none", "--entrypoint", command[0], images["server"], *command[1:])
    assert time.monotonic() - started >= 5


def test_up_trains_on_the_subset_then_serves_healthy(stack):
    started = time.monotonic()
    stack.compose("up", "--detach", "--no-build", timeout=300)
    assert stack.wait_exited("trainer", timeout=420) == 0, stack.logs("trainer")
    stack.wait_healthy(timeout=60)
    models = stack.models()
    assert sorted(models) == ["ensemble", "knn", "rf", "svm"]
    assert all(m["state"] == "loaded" for m in models.values())
    print(f"compose up to healthy, training included: {time.monotonic() - started:.0f} s")


def test_the_host_client_recognises_200_test_digits_through_the_published_port(stack, test_digits):
    from PIL import Image

    images, labels = test_digits
    folder = stack.folder / "test-digits"
    folder.mkdir()
    for i in range(200):
        Image.fromarray(images[i].reshape(28, 28)).save(folder / f"{i:03d}-{labels[i]}.png")
    done = stack.digits("predict", "--format", "json", str(folder))
    assert done.returncode == 0, done.stderr
    answers = json.loads(done.stdout)
    assert len(answers) == 200
    right = sum(a["digit"] == int(Path(a["source"]).stem.split("-")[1]) for a in answers)
    assert right >= 194, f"{right} of 200 right"


def test_the_client_service_predicts_a_file_from_the_data_folder(stack, test_digits):
    from PIL import Image

    images, labels = test_digits
    Image.fromarray(images[0].reshape(28, 28)).save(stack.folder / "data" / "digit.png")
    done = stack.compose("run", "--rm", "-T", "client", "predict", "--format", "json", "digit.png", timeout=180)
    answer = json.loads(done.stdout[done.stdout.index("["):])
    assert [(a["source"], a["digit"]) for a in answer] == [("digit.png", int(labels[0]))]


def test_a_retrain_is_served_by_itself_within_10_s_while_a_client_sees_no_failure(stack, test_digits):
    images, _ = test_digits
    before = stack.versions()
    stop, failures, answered = threading.Event(), [], []

    def client() -> None:
        with grpc.insecure_channel(f"127.0.0.1:{stack.port}") as channel:
            stub = digits_pb2_grpc.DigitsStub(channel)
            deadline = time.monotonic() + 400
            while not stop.is_set() and time.monotonic() < deadline and len(answered) < 200_000:
                k = len(answered) % 1000
                try:
                    stub.Predict(pb.PredictRequest(u8=images[k].tobytes()), timeout=10)
                    answered.append(k)
                except grpc.RpcError as exc:
                    failures.append(f"{exc.code().name}: {exc.details()}")
                time.sleep(0.01)

    sender = threading.Thread(target=client)
    sender.start()
    try:
        stack.compose("run", "--rm", "-T", "trainer", "--force", "--seed", "1", "--limit", "3000", "--no-report",
                      timeout=420)
        trained = time.monotonic()
        # the watch may have taken some of the models while the trainer was still writing the rest
        while set((after := stack.versions()).items()) & set(before.items()):
            assert time.monotonic() - trained < 10, f"not all new models served within 10 s: {after} {before}"
            time.sleep(0.2)
        waited = time.monotonic() - trained
        time.sleep(1)
    finally:
        stop.set()
        sender.join(timeout=30)
    assert set(after) == set(before)
    assert answered and not failures, f"{len(failures)} failures, first: {failures[:3]}"
    print(f"new models served {waited:.1f} s after the trainer exited; {len(answered)} requests, none failed")


def test_down_then_up_reuses_the_models_volume(stack, figures):
    before = stack.versions()
    stack.compose("down", "--timeout", "15", timeout=120)
    stack.compose("up", "--detach", "--no-build", timeout=300)
    assert stack.wait_exited("trainer", timeout=120) == 0, stack.logs("trainer")
    # podman-compose starts the server beside the trainer's check (docker compose would wait for it)
    figures["up_to_healthy_seconds"] = round(stack.wait_healthy(timeout=60), 2)
    assert stack.versions() == before, "the models were retrained"
    assert "already present; nothing to do" in stack.logs("trainer")


def test_stopping_the_server_exits_0_within_its_grace_and_its_log_is_json_lines(stack):
    started = time.monotonic()
    stack.compose("stop", "server", timeout=60)
    elapsed = time.monotonic() - started
    state = stack.state("server")
    assert (state["Status"], state["ExitCode"]) == ("exited", 0)
    assert elapsed < 15, f"stop took {elapsed:.1f} s"
    logs = podman("logs", stack.container("server"))
    events = [json.loads(line)["event"] for line in (logs.stderr or logs.stdout).splitlines()]
    assert events[0] == "server started" and events[-1] == "server stopped"


def test_the_server_alone_is_healthy_within_seconds_of_its_start(stack, figures):
    stack.compose("start", "server", timeout=60)
    figures["start_to_healthy_seconds"] = round(stack.wait_healthy(timeout=60), 2)
    figures["start_to_serving_seconds"] = round(stack.start_to_serving(), 2)


def test_with_tls_the_stack_is_healthy_and_the_host_client_needs_the_ca(stack, figures, tmp_path):
    from tests.test_hardening import _certificates

    certificates = _certificates(tmp_path)
    for path in (tmp_path, *certificates.values()):
        path.chmod(0o755 if path.is_dir() else 0o644)  # read by the server's unprivileged user
    stack.env["DIGITS_TLS_DIR"] = str(tmp_path)
    stack.overrides.append(ROOT / "deploy/compose/tls.yml")
    stack.compose("up", "--detach", "--no-build", timeout=300)
    figures["tls_start_to_healthy_seconds"] = round(stack.wait_healthy(timeout=60), 2)
    done = stack.digits("models", "--ca-cert", str(certificates["ca"]), "--format", "json")
    assert done.returncode == 0, done.stderr
    assert sorted(m["name"] for m in json.loads(done.stdout)) == ["ensemble", "knn", "rf", "svm"]
    plaintext = stack.digits("models", "--retries", "0", "--timeout", "3")
    assert plaintext.returncode == exits.UNREACHABLE, plaintext.stdout + plaintext.stderr
