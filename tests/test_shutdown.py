"""The server process: signals at any moment, SIGTERM within its grace, start-up errors in one line."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import threading
import time

import grpc
import pytest

from bench.process import BIN, ServerProcess
from digitserve import exits
from tests.test_hardening import _certificates

REFLECTION = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"


@pytest.mark.heavy
def test_sigterm_ends_the_process_within_grace_even_with_bad_streams_open(trained_models):
    server = ServerProcess(trained_models, "--grace", "2")
    release = threading.Event()
    endings = []

    def bad_stream() -> None:
        def requests():
            for _ in range(3):
                yield b"\xff\xfe" * 300
            release.wait(30)  # and keep the stream open
        try:
            list(server.channel.stream_stream(REFLECTION)(requests(), timeout=30))
            endings.append(grpc.StatusCode.OK)
        except grpc.RpcError as exc:
            endings.append(exc.code())

    streams = [threading.Thread(target=bad_stream) for _ in range(5)]
    for t in streams:
        t.start()
    time.sleep(1.0)
    started = time.perf_counter()
    server.proc.send_signal(signal.SIGTERM)
    try:
        code = server.proc.wait(timeout=3)  # --grace 2 plus a second
    finally:
        release.set()
        server.proc.kill()
        for t in streams:
            t.join(timeout=10)
    print(f"exited {time.perf_counter() - started:.2f} s after SIGTERM with code {code}")
    assert code == 0
    assert endings == [grpc.StatusCode.INVALID_ARGUMENT] * 5


@pytest.mark.heavy
def test_a_sighup_while_the_models_load_does_not_kill_the_server(trained_models):
    proc = subprocess.Popen([str(BIN / "digits-server"), "--models-dir", str(trained_models), "--host", "127.0.0.1",
                             "--port", "0", "--log-format", "json"], stderr=subprocess.PIPE, text=True)
    try:
        started = json.loads(proc.stderr.readline())
        assert started["event"] == "server started"  # the port is bound, the models are loading now
        proc.send_signal(signal.SIGHUP)
        events = []
        deadline = time.time() + 30
        while "reload finished" not in events or events.count("reload finished") < 2:
            assert time.time() < deadline and proc.poll() is None, f"server died: {proc.poll()}"
            events.append(json.loads(proc.stderr.readline())["event"])
        proc.terminate()
        assert proc.wait(timeout=15) == 0
    finally:
        proc.kill()


def _start_and_fail(models_dir, *flags: str) -> tuple[int, list[str]]:
    result = subprocess.run([str(BIN / "digits-server"), "--models-dir", str(models_dir), "--host", "127.0.0.1",
                             "--log-format", "text", *flags], capture_output=True, text=True, timeout=60)
    return result.returncode, result.stderr.strip().splitlines()


@pytest.fixture
def busy_port():
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def test_start_up_errors_are_one_line_and_a_documented_exit_code(trained_models, tmp_path, busy_port):
    certs = _certificates(tmp_path)
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")
    cases = {
        "port in use": (["--port", str(busy_port)], f"cannot listen on 127.0.0.1:{busy_port}", exits.FAILED),
        "garbage PEM": (["--port", "0", "--tls-cert", str(garbage), "--tls-key", str(certs["server_key"])],
                        "not a PEM certificate chain", exits.LOCAL_FILE),
        "key of another certificate": (["--port", "0", "--tls-cert", str(certs["server_cert"]),
                                        "--tls-key", str(certs["client_key"])], "not a PEM certificate chain",
                                       exits.LOCAL_FILE),
        "missing key file": (["--port", "0", "--tls-cert", str(certs["server_cert"]),
                              "--tls-key", str(tmp_path / "nope.key")], "cannot read", exits.LOCAL_FILE),
        "garbage client CA": (["--port", "0", "--tls-cert", str(certs["server_cert"]), "--tls-key",
                               str(certs["server_key"]), "--tls-client-ca", str(garbage)], "--tls-client-ca",
                              exits.LOCAL_FILE),
    }
    for case, (flags, words, expected) in cases.items():
        code, lines = _start_and_fail(trained_models, *flags)
        assert code == expected, (case, lines)
        assert len(lines) == 1 and words in lines[0] and "server failed to start" in lines[0], (case, lines)


def test_bad_settings_are_a_usage_error(trained_models):
    code, lines = _start_and_fail(trained_models, "--max-batch", "8192", "--max-message-mb", "8")
    assert code == 2 and "raise --max-message-mb to 25 or lower --max-batch to 2654" in lines[-1]
    result = subprocess.run([str(BIN / "digits-server")], capture_output=True, text=True, timeout=60,
                            env={"DIGITS_PORT": "fifty"})
    assert result.returncode == 2 and "DIGITS_PORT='fifty': expected a whole number" in result.stderr
