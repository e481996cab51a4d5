"""Clients over many replicas: three real digits-server processes on loopback, balanced by gRPC's round_robin.

The tests that start replicas are ``heavy`` (three server processes, some killed mid-run).

Each replica serves the same trained models under its own version label, so
every answer says which replica gave it.
"""

from __future__ import annotations

import csv
import io
import json
import queue
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from bench.process import ServerProcess
from clients.connection import (Connection, ConnectionOptions, ServerUnavailable, UsageError, channel_target,
                                parse_server)
from clients.draw.worker import Failed, Predicted, Readiness, Request, Worker
from tests.conftest import free_port, run_digits

BIN = Path(sys.executable).parent
REPLICAS = 3
MODEL = "svm"


@pytest.mark.parametrize("given, parsed", [
    ("127.0.0.1:5001,127.0.0.1:5002", "127.0.0.1:5001,127.0.0.1:5002"),
    ("box-a, box-b:7000", "box-a:50051,box-b:7000"),
    ("[::1]:5001,::1", "[::1]:5001,[::1]:50051"),
    ("dns:///digits.default.svc", "dns:///digits.default.svc:50051"),
    ("dns:///digits-headless:7000", "dns:///digits-headless:7000"),
    ("dns://10.0.0.10/digits:7000", "dns://10.0.0.10/digits:7000"),
])
def test_a_list_or_a_dns_target_names_every_replica_with_its_port(given, parsed):
    assert parse_server(given) == parsed


@pytest.mark.parametrize("bad, named", [
    ("127.0.0.1:5001,host:notaport", "host:notaport"),
    ("127.0.0.1:5001,,127.0.0.1:5002", "empty address"),
    ("127.0.0.1:5001,unix:/run/d.sock", "unix:"),
    ("dns:///", "dns:///NAME"),
])
def test_a_malformed_entry_is_a_usage_error_naming_it(bad, named):
    with pytest.raises(UsageError, match=named):
        ConnectionOptions(address=bad)


def test_a_list_becomes_one_ipv4_or_ipv6_target_with_names_resolved():
    assert channel_target("127.0.0.1:5001,localhost:5002") == "ipv4:127.0.0.1:5001,127.0.0.1:5002"
    assert channel_target("[::1]:5001,[::1]:5002") == "ipv6:[::1]:5001,[::1]:5002"
    assert channel_target("dns:///localhost:5001") == "dns:///localhost:5001"  # gRPC resolves it, and follows it
    with pytest.raises(UsageError, match="mixes IPv4 and IPv6"):
        channel_target("127.0.0.1:5001,[::1]:5002")
    with pytest.raises(ServerUnavailable, match="nowhere.invalid"):
        channel_target("127.0.0.1:5001,nowhere.invalid:5002")


def test_parallel_streams_answer_in_order_then_raise_the_inputs_own_error(server, test_digits):
    """An error raised while reading the input comes after the answers for everything read before it."""
    images = test_digits[0][:1000]

    def chunks():
        yield from (images[i:i + 50] for i in range(0, 500, 50))
        raise ValueError("unreadable input")

    answers = []
    with Connection(ConnectionOptions(address=",".join([server.address] * 3))) as connection:
        with pytest.raises(ValueError, match="unreadable input"):
            for answer in connection.predict_streams(chunks(), MODEL, streams=3):
                answers.append(answer)
        alone = list(connection.predict_stream([images[:500]], MODEL))[0]
    assert len(answers) == 10 and (np.concatenate([a.digits for a in answers]) == alone.digits).all()


def _labelled(models: Path, folder: Path, label: str) -> Path:
    """A copy of the models whose manifests carry ``label`` as their version."""
    shutil.copytree(models, folder)
    for manifest in folder.glob("*.manifest.json"):
        data = json.loads(manifest.read_text())
        manifest.write_text(json.dumps({**data, "version": label}))
    return folder


@pytest.fixture
def replicas(trained_models, tmp_path):
    servers = [ServerProcess(_labelled(trained_models, tmp_path / f"replica-{k}", f"replica-{k}"))
               for k in range(REPLICAS)]
    yield servers
    for server in servers:
        server.stop()


def _list(servers: list) -> str:
    """The servers' addresses as one --server list (ServerProcess or the serve fixture's Serving)."""
    return ",".join(server.address for server in servers)


def _kill(server: ServerProcess) -> None:
    server.proc.kill()  # SIGKILL: no goodbye, connections cut mid-call
    server.proc.wait(timeout=10)


def _within_a_fifth_of_even(counts: Counter, total: int) -> bool:
    even = total / REPLICAS
    return len(counts) == REPLICAS and all(abs(n - even) <= 0.2 * even for n in counts.values())


@pytest.fixture(scope="module")
def reference(test_digits, trained_models) -> np.ndarray:
    """The digits one server gives for the 10,000 test images, in order."""
    server = ServerProcess(trained_models)
    try:
        with Connection(ConnectionOptions(address=server.address)) as connection:
            chunks = (test_digits[0][i:i + 1000] for i in range(0, 10000, 1000))
            return np.concatenate([a.digits for a in connection.predict_stream(chunks, MODEL)])
    finally:
        server.stop()


@pytest.mark.heavy
def test_single_requests_and_streams_spread_evenly_over_the_replicas(replicas, test_digits, reference):
    images = test_digits[0]
    with Connection(ConnectionOptions(address=_list(replicas))) as connection:
        singles = Counter(connection.predict(images[k:k + 1], MODEL).version for k in range(600))
        chunks = (images[i:i + 100] for i in range(0, 10000, 100))
        answers = list(connection.predict_streams(chunks, MODEL, streams=REPLICAS))
    streamed = Counter()
    for answer in answers:
        streamed[answer.version] += len(answer.digits)
    print(f"single requests per replica: {dict(singles)}; streamed images per replica: {dict(streamed)}")
    assert _within_a_fifth_of_even(singles, 600), singles
    # Streams take chunks as fast as their replica answers, so on a busy machine the share follows
    # each replica's speed; every replica still gets a full part of it.
    assert len(streamed) == REPLICAS and min(streamed.values()) >= 0.5 * 10000 / REPLICAS, streamed
    assert (np.concatenate([a.digits for a in answers]) == reference).all()  # in order, each once


@pytest.mark.heavy
def test_a_replica_killed_mid_stream_loses_nothing(replicas, test_digits, reference):
    images, victim = test_digits[0], replicas[0]
    answered_by: list[str] = []
    digits: list[np.ndarray] = []
    killed_at = None
    started = time.monotonic()
    with Connection(ConnectionOptions(address=_list(replicas), timeout=20)) as connection:
        chunks = (images[i:i + 100] for i in range(0, 10000, 100))
        for answer in connection.predict_streams(chunks, MODEL, streams=REPLICAS):
            answered_by.append(answer.version)
            digits.append(answer.digits)
            if killed_at is None and answered_by.count("replica-0") >= 5:
                _kill(victim)
                killed_at = len(answered_by)
    elapsed = time.monotonic() - started
    after = Counter(answered_by[killed_at + REPLICAS * 4:])  # past the chunks already answered in flight
    print(f"killed replica-0 after {killed_at} of 100 chunks; {elapsed:.1f} s in all; "
          f"answers per replica before: {dict(Counter(answered_by[:killed_at]))}, after: {dict(Counter(answered_by[killed_at:]))}")
    assert killed_at is not None and killed_at < 60
    assert len(digits) == 100 and (np.concatenate(digits) == reference).all()  # every image once, in order
    assert "replica-0" not in after and set(after) == {"replica-1", "replica-2"}


@pytest.mark.heavy
def test_digits_predict_survives_kill_9_of_a_replica_in_a_10000_image_run(replicas, mnist_dir, reference):
    cli = subprocess.Popen([str(BIN / "digits"), "predict", "--server", _list(replicas), "--model", MODEL,
                            "--batch", "100", "--format", "csv", str(mnist_dir / "t10k-images-idx3-ubyte.gz")],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = threading.Timer(120, cli.kill)  # a hung run fails the test instead of stalling it
    deadline.start()
    try:
        lines = [cli.stdout.readline() for _ in range(2001)]  # the header and 2,000 answers: the run is under way
        _kill(replicas[1])
        lines.append(cli.stdout.read())
        err = cli.stderr.read()
        cli.wait()
    finally:
        deadline.cancel()
        cli.kill()
    assert cli.returncode == 0, err
    rows = list(csv.DictReader(io.StringIO("".join(lines))))
    assert [int(r["index"]) for r in rows] == list(range(10000))  # every answer once, in order
    assert (np.array([int(r["digit"]) for r in rows]) == reference).all()


def test_every_replica_down_is_exit_4_naming_each_address(capsys):
    down = [f"127.0.0.1:{free_port()}" for _ in range(REPLICAS)]
    done = run_digits(capsys, "models", "--server", ",".join(down), "--retries", "1")
    assert done.returncode == 4
    assert all(address in done.stderr for address in down)


def test_a_malformed_entry_on_the_command_line_is_exit_2_naming_it(capsys):
    done = run_digits(capsys, "models", "--server", f"127.0.0.1:{free_port()},host:notaport")
    assert done.returncode == 2 and "host:notaport" in done.stderr


def test_reload_reaches_every_listed_replica_and_names_the_one_that_is_down(serve, trained_models, tmp_path,
                                                                            capsys):
    # In-process servers: reload needs nothing of a separate process, and starting three costs seconds.
    replicas = [serve(_labelled(trained_models, tmp_path / f"replica-{k}", f"replica-{k}")) for k in range(REPLICAS)]
    down = f"127.0.0.1:{free_port()}"
    done = run_digits(capsys, "reload", "--format", "json", "--retries", "0", "--timeout", "5",
                      "--server", f"{_list(replicas)},{down}")
    results = json.loads(done.stdout)
    assert [r["server"] for r in results] == [*(r.address for r in replicas), down]
    assert all("unchanged" in r for r in results[:-1]) and "error" in results[-1]
    assert done.returncode == 4 and down in done.stderr
    refused = run_digits(capsys, "reload", "--server", "dns:///localhost:5001")
    assert refused.returncode == 2 and "--watch" in refused.stderr


@pytest.mark.heavy
def test_the_drawing_window_keeps_answering_when_a_replica_dies(replicas, test_digits):
    """The window's worker (one Connection) after kill -9 of a replica: every drawing answered, never disconnected."""
    events: queue.Queue = queue.Queue()
    worker = Worker(ConnectionOptions(address=_list(replicas), timeout=10), events, refresh_seconds=60)
    images = test_digits[0]

    def ask(k: int) -> Predicted | Failed:
        worker.predict(Request(images[k], MODEL, epoch=k))
        while True:
            event = events.get(timeout=30)
            if isinstance(event, (Predicted, Failed)) and event.request is not None:
                return event
            seen.append(event)

    seen: list = []
    try:
        before = [ask(0)]
        while len({e.answer.version for e in before if isinstance(e, Predicted)}) < REPLICAS and len(before) < 100:
            before.append(ask(len(before)))  # until every replica has answered (each connects on its own time)
        _kill(replicas[2])
        after = [ask(k) for k in range(100, 130)]
    finally:
        worker.stop()
    assert all(isinstance(e, Predicted) for e in before + after), [e for e in before + after if isinstance(e, Failed)]
    assert {e.answer.version for e in before} == {"replica-0", "replica-1", "replica-2"}
    assert {e.answer.version for e in after[3:]} == {"replica-0", "replica-1"}
    assert Readiness(False) not in seen  # the survivors kept the channel ready throughout


def test_a_list_over_tls_checks_each_replicas_certificate_for_the_first_entrys_name(serve, trained_models, tmp_path,
                                                                                   test_digits):
    from tests.test_hardening import _certificates

    certs = _certificates(tmp_path)  # the server certificate is for localhost (and 127.0.0.1)
    tls = {"tls_cert": str(certs["server_cert"]), "tls_key": str(certs["server_key"])}
    ports = [serve(_labelled(trained_models, tmp_path / f"tls-{k}", f"tls-{k}"), **tls).running.port for k in range(2)]
    options = ConnectionOptions(address=",".join(f"localhost:{port}" for port in ports), ca_cert=str(certs["ca"]),
                                retries=0, timeout=10)
    versions: set[str] = set()
    with Connection(options) as connection:
        for _ in range(50):  # until both have answered (each connects on its own time)
            versions.add(connection.predict(test_digits[0][:1], MODEL).version)
            if len(versions) == 2:
                break
    assert versions == {"tls-0", "tls-1"}
