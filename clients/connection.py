"""A client's connection to a digits server: address, TLS, token, deadlines and retries.

Every client of the server — the command line, the Tk window and the
trainer's ``--notify`` — talks to it only through ``Connection``, so they
connect, authenticate, retry, time out and report errors alike.

One reconnect strategy: the channel reconnects by itself, with a backoff
capped at two seconds, and gRPC retries calls that found the server
unavailable, following the retry policy in the channel's service config.

Many replicas: the address may be a comma-separated list or a ``dns:///``
target, and the channel's ``round_robin`` policy sends each call to the next
replica that is up, so a replica that goes away simply drops out of the turn.
"""

from __future__ import annotations

import argparse
import ipaddress
import itertools
import json
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterable, Iterator

import grpc
import numpy as np

from clients.prediction import Prediction
from digitserve.contract import CLASSES, DEFAULT_PORT, PIXELS
from digitserve.settings import Setting, add_settings
from digitserve.v1 import digits_pb2 as pb
from digitserve.v1 import digits_pb2_grpc

DEFAULT_ADDRESS = f"localhost:{DEFAULT_PORT}"
SERVICE = "digitserve.v1.Digits"
# gRPC caps a retry policy at five attempts, whatever it asks for.
MAX_ATTEMPTS = 5
# The longest the channel waits between two attempts to reach the server: gRPC's default
# grows to two minutes, but a restarted server should be noticed within seconds.
RECONNECT_MAX_SECONDS = 2.0
RETRY_BACKOFF_SECONDS = 0.25  # the first pause before trying again; it doubles up to RECONNECT_MAX_SECONDS
NO_MODEL_LOADED = "NO_MODEL_LOADED"  # google.rpc.ErrorInfo reason on UNAVAILABLE: the server runs, empty
TOO_MANY_STREAMS = "TOO_MANY_STREAMS"  # the reason on RESOURCE_EXHAUSTED: the server's streams are all taken
# A stream of a parallel run carries this many chunks before a new one, opened on the next replica, takes over.
CHUNKS_PER_STREAM = 2
DNS_STREAMS = 4  # streams at once for a dns:/// target, whose number of replicas the client cannot know


class UsageError(ValueError):
    """Connection options that contradict each other; the message says which flags."""


class LocalFileError(OSError):
    """A file the client needs (a certificate, a key) could not be read."""


class ServerUnavailable(Exception):
    """The server could not be reached, or did not answer in time (after retries)."""

    def __init__(self, address: str, detail: str):
        where = [address] if address.startswith("dns:") else addresses(address)
        at = f"the digits server at {where[0]}" if len(where) == 1 else f"any of the digits servers at {', '.join(where)}"
        super().__init__(f"cannot reach {at} ({detail}); check that digits-server runs there, the addresses "
                         "and ports (--server or DIGITS_SERVER), and TLS options (--ca-cert)")
        self.address = address


class ServerError(Exception):
    """The server answered with an error status."""

    def __init__(self, code: grpc.StatusCode, details: str, reason: str = ""):
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details
        self.reason = reason  # google.rpc.ErrorInfo reason, when the server attached one


def parse_server(text: str) -> str:
    """``--server`` as gRPC wants it: one address, a comma-separated list of them, or a ``dns:`` target.

    Each address gets the default port when it has none (see ``parse_address``),
    and so does a ``dns:`` target (gRPC would otherwise assume 443).
    """
    text = text.strip()
    if text.startswith("dns:"):
        authority, name = ("", text[4:]) if not text.startswith("dns://") else text[6:].partition("/")[::2]
        if not name or "," in name:
            raise UsageError(f"--server {text!r}: expected dns:///NAME[:PORT]")
        return f"dns://{authority}/{parse_address(name)}" if text.startswith("dns://") else f"dns:{parse_address(name)}"
    if "," not in text:
        return parse_address(text)
    entries = [parse_address(entry) for entry in text.split(",")]
    if any(entry.startswith("unix:") for entry in entries):
        raise UsageError(f"--server {text!r}: a list holds HOST[:PORT] entries, not unix: sockets")
    return ",".join(entries)


def parse_address(text: str) -> str:
    """``HOST[:PORT]`` as gRPC wants it: the default port when none is given.

    ``localhost``, ``10.0.0.5``, ``::1`` and ``[::1]`` all get port 50051;
    ``unix:`` socket addresses pass unchanged.
    """
    text = text.strip()
    if not text:
        raise UsageError("--server: empty address; expected HOST or HOST:PORT")
    if text.startswith("unix:"):
        return text
    if text.startswith("["):  # [v6] or [v6]:port
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
        if rest and not rest.startswith(":"):
            raise UsageError(f"--server {text!r}: expected [IPV6]:PORT")
        return f"[{host}]:{_port(text, port)}"
    if text.count(":") > 1:  # a bare IPv6 address has no room for a port
        return f"[{text}]:{DEFAULT_PORT}"
    host, _, port = text.partition(":")
    if not host:
        raise UsageError(f"--server {text!r}: no host; expected HOST or HOST:PORT")
    return f"{host}:{_port(text, port)}"


def _port(text: str, port: str) -> int:
    if not port:
        return DEFAULT_PORT
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--server {text!r}: port {port!r} is not a number from 1 to 65535")
    return int(port)


def addresses(server: str) -> list[str]:
    """The ``HOST:PORT`` entries of a parsed ``--server``: the list's, or a ``dns:`` target's one name."""
    if server.startswith("dns:"):
        return [server.rsplit("/", 1)[-1] if server.startswith("dns://") else server[4:]]
    return server.split(",")


def stream_count(server: str) -> int:
    """Streams a large input runs at once: one per listed replica, a few for a ``dns:`` target."""
    return DNS_STREAMS if server.startswith("dns:") else len(addresses(server))


def _host(address: str) -> str:
    return address.rsplit(":", 1)[0].strip("[]")


def is_loopback(address: str) -> bool:
    """Whether a parsed address stays on this machine (no resolver is asked)."""
    if address.startswith("unix:"):
        return True
    host = _host(address)
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def channel_target(server: str) -> str:
    """The target the channel opens: a list becomes an ``ipv4:``/``ipv6:`` URI, anything else is kept.

    gRPC resolves a list of addresses by itself only in that form, one address
    family per list; host names in a list are therefore resolved here, once,
    when the connection opens (a ``dns:///`` target is resolved by gRPC and
    followed as it changes).
    """
    entries = addresses(server)
    if server.startswith("dns:") or len(entries) == 1:
        return server
    versions = {_ip_version(_host(entry)) for entry in entries} - {None}
    if len(versions) > 1:
        raise UsageError(f"--server {server!r}: a list mixes IPv4 and IPv6 addresses; gRPC balances over one "
                         "family at a time: list one family, or use a dns:///NAME:PORT target")
    family = socket.AF_INET6 if versions == {6} else socket.AF_INET
    resolved = [_resolve(entry, family) for entry in entries]
    return ("ipv6:" if family == socket.AF_INET6 else "ipv4:") + ",".join(resolved)


def _ip_version(host: str) -> int | None:
    try:
        return ipaddress.ip_address(host).version
    except ValueError:
        return None


def _resolve(entry: str, family: socket.AddressFamily) -> str:
    host, port = _host(entry), int(entry.rsplit(":", 1)[1])
    if _ip_version(host) is None:
        try:
            host = socket.getaddrinfo(host, port, family, socket.SOCK_STREAM)[0][4][0]
        except socket.gaierror as exc:
            kind = "IPv6" if family == socket.AF_INET6 else "IPv4"
            raise ServerUnavailable(entry, f"no {kind} address for {_host(entry)!r}: {exc.strerror}") from None
    return f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"


@dataclass(frozen=True)
class ConnectionOptions:
    address: str = DEFAULT_ADDRESS
    timeout: float = 30.0
    retries: int = 4
    ca_cert: str = ""
    client_cert: str = ""
    client_key: str = ""
    token: str = ""
    insecure: bool = False  # allow the token over plaintext to another machine

    def __post_init__(self):
        object.__setattr__(self, "address", parse_server(self.address))
        if bool(self.client_cert) != bool(self.client_key):
            given, missing = ("--client-cert", "--client-key") if self.client_cert else ("--client-key", "--client-cert")
            raise UsageError(f"{given} needs {missing} too (a client certificate and its private key go together)")
        if self.timeout <= 0 or self.retries < 0:
            raise UsageError("--timeout must be above 0 and --retries 0 or more")
        if self.token and not self.tls and not self.insecure and not all(map(is_loopback, addresses(self.address))):
            raise UsageError(f"refusing to send the operator token in clear to {self.address}: use TLS "
                             "(--ca-cert), or --insecure if the network between is trusted")

    @property
    def tls(self) -> bool:
        return bool(self.ca_cert or self.client_cert)

    def channel_credentials(self) -> grpc.ChannelCredentials | None:
        """TLS credentials (with the token as call credentials), or None for plaintext."""
        if not self.tls:
            return None
        credentials = grpc.ssl_channel_credentials(
            root_certificates=_read(self.ca_cert, "--ca-cert"), private_key=_read(self.client_key, "--client-key"),
            certificate_chain=_read(self.client_cert, "--client-cert"))
        if self.token:
            credentials = grpc.composite_channel_credentials(
                credentials, grpc.access_token_call_credentials(self.token))
        return credentials


def each_replica(options: ConnectionOptions) -> list[ConnectionOptions]:
    """One set of options per listed server, for a call every replica must get (Reload).

    round_robin carries each call to one replica only; a ``dns:`` name hides
    how many there are, so it is refused: serve those with ``--watch``.
    """
    if options.address.startswith("dns:"):
        raise UsageError(f"{options.address!r}: a dns: name reaches one replica of many; list the replicas "
                         "(host:port,host:port) or start the servers with --watch, which reload by themselves")
    return [replace(options, address=address) for address in addresses(options.address)]


def _read(path: str, flag: str) -> bytes | None:
    if not path:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise LocalFileError(f"{flag} {path}: cannot read it ({exc.strerror or exc})") from exc


RETRIES = Setting("--retries", "", 4, "how often to try again while the server is unavailable: each call at most "
                  f"{MAX_ATTEMPTS - 1} times (gRPC's limit), a stream resumes up to this many times", minimum=0)

SECURITY = (
    Setting("--ca-cert", "DIGITS_CA_CERT", "", "PEM CA certificate: connect with TLS and verify the server"),
    Setting("--client-cert", "DIGITS_CLIENT_CERT", "", "PEM client certificate, for servers that ask for one"),
    Setting("--client-key", "DIGITS_CLIENT_KEY", "", "PEM private key of --client-cert"),
    Setting("--token", "DIGITS_TOKEN", "", "operator token, for servers that protect Reload"),
    Setting("--insecure", "DIGITS_INSECURE", False,
            "allow sending --token without TLS to a server on another machine, over a network you trust"),
)


def add_security_flags(group: argparse._ArgumentGroup) -> None:
    """The TLS and token flags every client shares, with their environment variables."""
    add_settings(group, SECURITY)


def security_options(args: argparse.Namespace) -> dict:
    """The ``add_security_flags`` values as ``ConnectionOptions`` keywords."""
    return {"ca_cert": args.ca_cert, "client_cert": args.client_cert, "client_key": args.client_key,
            "token": args.token, "insecure": args.insecure}


@dataclass(frozen=True)
class Answer:
    """The server's answer for a batch of images."""

    model: str
    version: str
    probabilities: np.ndarray  # (n, 10)
    # Why the server doubts each answer ("" for none: Prediction.unsure_reason).
    doubts: tuple[str, ...] = ()

    @property
    def digits(self) -> np.ndarray:
        return self.probabilities.argmax(axis=1)

    def predictions(self) -> list[Prediction]:
        """One ``Prediction`` per image, in the order they were sent."""
        doubts = self.doubts or ("",) * len(self.probabilities)
        return [Prediction(p, doubt, self.model) for p, doubt in zip(self.probabilities, doubts)]


def _answer(reply: pb.PredictResponse) -> Answer:
    probabilities = np.array([p.probabilities for p in reply.predictions], dtype=np.float32).reshape(-1, len(CLASSES))
    return Answer(reply.model, reply.version, probabilities, tuple(p.unsure_reason for p in reply.predictions))


def _request(images: np.ndarray, model: str, sequence: int | None = None) -> pb.PredictRequest:
    pixels = np.ascontiguousarray(images, dtype=np.uint8).reshape(-1, PIXELS)
    return pb.PredictRequest(u8=pixels.tobytes(), model=model, sequence=sequence)


def _service_config(retries: int) -> str:
    """Each call to the next replica that is up (round_robin: per call, not per connection), and unary
    calls retried by gRPC while the server is UNAVAILABLE, with exponential backoff."""
    config: dict = {"loadBalancingConfig": [{"round_robin": {}}]}
    if retries:
        policy = {"maxAttempts": min(retries + 1, MAX_ATTEMPTS), "initialBackoff": f"{RETRY_BACKOFF_SECONDS}s",
                  "maxBackoff": f"{RECONNECT_MAX_SECONDS}s", "backoffMultiplier": 2,
                  "retryableStatusCodes": ["UNAVAILABLE"]}
        methods = [{"service": SERVICE, "method": m} for m in ("Predict", "ListModels", "Reload")]
        config["methodConfig"] = [{"name": methods, "retryPolicy": policy}]
    return json.dumps(config)


def error_reason(exc: grpc.RpcError) -> str:
    """The google.rpc.ErrorInfo reason the server attached to an error, or ''."""
    try:
        from google.rpc import error_details_pb2
        from grpc_status import rpc_status

        status = rpc_status.from_call(exc)
    except (ImportError, ValueError, AttributeError):  # no grpcio-status, or details that do not match
        return ""
    for detail in status.details if status else []:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return info.reason
    return ""


class Connection:
    """One channel to a server. Use as a context manager or call ``close``."""

    def __init__(self, options: ConnectionOptions):
        self.options = options
        self._subscribed = False
        self.channel = self._open_channel()
        self.stub = digits_pb2_grpc.DigitsStub(self.channel)
        self._watchers: list[Callable[[grpc.ChannelConnectivity], None]] = []

    def _open_channel(self) -> grpc.Channel:
        o = self.options
        settings = [("grpc.max_receive_message_length", 64 << 20), ("grpc.max_send_message_length", 64 << 20),
                    # Not grpc.min_reconnect_backoff_ms: it also bounds each connection attempt,
                    # and a TLS handshake on a busy machine needs longer than a backoff step.
                    ("grpc.initial_reconnect_backoff_ms", int(RETRY_BACKOFF_SECONDS * 1000)),
                    ("grpc.max_reconnect_backoff_ms", int(RECONNECT_MAX_SECONDS * 1000)), ("grpc.enable_retries", 1),
                    ("grpc.service_config", _service_config(o.retries))]
        target = channel_target(o.address)
        credentials = o.channel_credentials()
        if credentials is None:
            return grpc.insecure_channel(target, options=settings)
        if target != o.address:
            # A resolved list names no host; every replica's certificate is checked against the first
            # entry's name (replicas of one service share their certificate).
            settings.append(("grpc.ssl_target_name_override", _host(addresses(o.address)[0])))
        return grpc.secure_channel(target, credentials, options=settings)

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for watcher in self._watchers:
            self.channel.unsubscribe(watcher)
        if self._subscribed:
            # grpc polls a watched channel's state every 0.2 s and fails loudly in its own
            # thread if the channel closes before the poller has noticed nobody watches.
            time.sleep(0.25)
        self.channel.close()

    def watch(self, on_change: Callable[[grpc.ChannelConnectivity], None]) -> None:
        """Tell ``on_change`` (on a gRPC thread) each connectivity state of the channel, and keep it connecting.

        A channel whose server went away falls IDLE and would wait there for
        the next call; a watcher wants to know when the server is back, so an
        IDLE channel is asked to connect again and the channel's own reconnect
        backoff (capped above) does the retrying.
        """
        last: list[grpc.ChannelConnectivity | None] = [None]

        def changed(state: grpc.ChannelConnectivity) -> None:
            if state == last[0]:
                return
            last[0] = state
            on_change(state)
            if state == grpc.ChannelConnectivity.IDLE:
                # Subscribing with try_to_connect is grpcio's public way to ask for a connection.
                self.channel.unsubscribe(changed)
                self.channel.subscribe(changed, try_to_connect=True)

        self._watchers.append(changed)
        self._subscribed = True
        self.channel.subscribe(changed, try_to_connect=True)

    @property
    def _metadata(self):
        """Over TLS the token travels as call credentials; in plaintext (loopback or --insecure) as metadata."""
        if self.options.token and not self.options.tls:
            return [("authorization", f"Bearer {self.options.token}")]
        return None

    def wait_for_ready(self, timeout: float) -> bool:
        """Ask the channel to connect; True once it is connected, False after ``timeout`` seconds."""
        self._subscribed = True
        try:
            grpc.channel_ready_future(self.channel).result(timeout=timeout)
            return True
        except grpc.FutureTimeoutError:
            return False

    def _call(self, method, request):
        """A unary call with a deadline; gRPC retries it while the server is UNAVAILABLE."""
        try:
            return method(request, timeout=self.options.timeout, metadata=self._metadata)
        except grpc.RpcError as exc:
            raise self._error(exc) from None

    def _error(self, exc: grpc.RpcError) -> Exception:
        code, details = exc.code(), exc.details() or ""
        reason = error_reason(exc)
        if code == grpc.StatusCode.UNAVAILABLE and reason != NO_MODEL_LOADED:
            return ServerUnavailable(self.options.address, details.splitlines()[0] if details else code.name)
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return ServerUnavailable(self.options.address, f"no answer within {self.options.timeout:g}s (--timeout)")
        if code == grpc.StatusCode.UNAUTHENTICATED:
            details = "the server needs the operator token: pass --token or set DIGITS_TOKEN"
        elif code == grpc.StatusCode.PERMISSION_DENIED:
            details = "the server refused the operator token: check --token or DIGITS_TOKEN"
        elif code == grpc.StatusCode.CANCELLED:  # our own cancels never get here: the server's give no reason
            details = ("the server cancelled the call: it was stopping, or a stream waited longer than the "
                       "server's --stream-idle-timeout for the next images")
        return ServerError(code, details, reason)

    def predict(self, images: np.ndarray, model: str = "") -> Answer:
        return _answer(self._call(self.stub.Predict, _request(images, model)))

    def list_models(self) -> pb.ListModelsResponse:
        return self._call(self.stub.ListModels, pb.ListModelsRequest())

    def reload(self) -> pb.ReloadResponse:
        return self._call(self.stub.Reload, pb.ReloadRequest())

    def predict_stream(self, chunks: Iterable[np.ndarray], model: str = "", window: int = 4) -> Iterator[Answer]:
        """Answers for each chunk of images, in order, through PredictStream.

        At most ``window`` chunks are in flight, so memory stays bounded however
        long the input. A stream that waits longer than the timeout for an
        answer is cancelled. An exception raised by ``chunks`` ends the stream
        and is raised here, as it was.
        """
        # gRPC cannot retry a stream once an answer has arrived (the call is committed), and
        # our chunks outgrow its replay buffer anyway; so when the server goes away mid-stream,
        # the chunks it has not answered are replayed here, on a new stream once the channel
        # has reconnected, after the retry policy's pause.
        source = iter(chunks)
        pending: deque[np.ndarray] = deque()  # sent or to be sent, not yet answered
        to_send: deque[np.ndarray] = deque()  # not yet sent on the current stream
        current = [0]  # the attempt whose stream is open
        lock = threading.Lock()
        reading = threading.Lock()  # gRPC reads the requests on a thread of its own, per stream
        failure: list[BaseException] = []
        watchdog = _Watchdog(self.options.timeout)  # its clock runs on across replays
        no_answer = f"no answer within {self.options.timeout:g}s (--timeout)"

        def requests(attempt: int, slots: threading.Semaphore) -> Iterator[pb.PredictRequest]:
            while True:
                slots.acquire()
                with reading:
                    with lock:
                        if attempt != current[0]:
                            return
                        chunk = to_send.popleft() if to_send else None
                    if chunk is None:
                        try:
                            chunk = next(source)
                        except StopIteration:
                            return
                        except BaseException as exc:  # the caller's error, not the server's: hand it back
                            failure.append(exc)
                            return
                        with lock:
                            pending.append(chunk)
                            watchdog.sent()
                            if attempt != current[0]:  # the stream ended while this chunk was read
                                to_send.append(chunk)
                                return
                yield _request(chunk, model)

        for attempt in range(self.options.retries + 1):
            slots = threading.Semaphore(window)
            with lock:
                current[0] = attempt
                to_send.clear()
                to_send.extend(pending)
            call = self.stub.PredictStream(requests(attempt, slots), metadata=self._metadata)
            watchdog.watch(call)
            try:
                for reply in call:
                    with lock:
                        pending.popleft()
                        watchdog.answered(bool(pending))
                    slots.release()
                    yield _answer(reply)
                if failure:
                    raise failure[0]
                return
            except grpc.RpcError as exc:
                if failure:
                    raise failure[0] from None
                if watchdog.overdue():
                    raise ServerUnavailable(self.options.address, no_answer) from None
                error = self._error(exc)
                # A server whose streams are all taken is busy, not wrong: the next stream waits a
                # little and goes, through round_robin, to the next replica.
                busy = isinstance(error, ServerError) and error.reason == TOO_MANY_STREAMS
                if not (isinstance(error, ServerUnavailable) or busy) or attempt == self.options.retries:
                    raise error from None
                # The retry policy's schedule: a server that is up but unavailable (still loading,
                # shutting down) leaves the channel ready, so waiting for the channel alone would not pause.
                time.sleep(min(RETRY_BACKOFF_SECONDS * 2 ** attempt, RECONNECT_MAX_SECONDS, watchdog.remaining()))
                self.wait_for_ready(min(watchdog.remaining(), RECONNECT_MAX_SECONDS))
                if watchdog.overdue():
                    raise ServerUnavailable(self.options.address, no_answer) from None
            finally:
                watchdog.stop()
                call.cancel()
                slots.release(window)  # a request thread still waiting for room sees the stream is over

    def predict_streams(self, chunks: Iterable[np.ndarray], model: str = "", streams: int = 1,
                        window: int = 4) -> Iterator[Answer]:
        """Answers for each chunk, in order, from ``streams`` PredictStreams at once.

        A stream takes the next chunk whenever its window has room, so a faster
        replica takes more; the answers are put back in input order, with at
        most ``streams * window`` chunks read ahead of the caller. Each stream
        carries ``CHUNKS_PER_STREAM`` chunks, then a fresh one takes over while
        it drains (sooner when the read-ahead is full: a stream does not sit
        open and idle, holding one of its server's stream slots):
        round_robin opens every stream on the next replica that is up, so the
        streams spread evenly however many replicas were connected when the
        run began, and reach replicas that come back. A stream whose
        replica goes away replays its unanswered chunks on a new stream
        (``predict_stream``), which round_robin opens on a replica still up.
        """
        if streams <= 1:
            yield from self.predict_stream(chunks, model, window)
            return
        source = iter(chunks)
        room = threading.Semaphore(streams * window)  # chunks read but not yet handed to the caller
        reading = threading.Lock()  # the source is read by one stream at a time, in input order
        done = threading.Condition()
        answers: dict[int, Answer] = {}
        state = {"read": 0, "streams": 0, "stopped": False, "exhausted": False}
        errors: list[BaseException] = []  # a stream's failure, raised at once
        source_error: list[BaseException] = []  # the caller's, raised after the answers before it

        def stream_chunks(mine: deque[int]) -> Iterator[np.ndarray]:
            """The stream's chunks; it holds room for its first one before it opens."""
            for sent in range(CHUNKS_PER_STREAM):
                # A stream never waits for room open and idle, holding one of its server's
                # --max-streams slots: it ends instead.
                if sent and not room.acquire(blocking=False):
                    break
                with reading:
                    if state["stopped"] or state["exhausted"]:
                        room.release()
                        return
                    try:
                        chunk = next(source)
                    except BaseException as exc:
                        state["exhausted"] = True
                        room.release()
                        if not isinstance(exc, StopIteration):
                            source_error.append(exc)
                        return
                    with done:
                        mine.append(state["read"])
                        state["read"] += 1
                yield chunk
            start_stream()  # the successor reads on while this stream drains

        def stream() -> None:
            mine: deque[int] = deque()
            try:
                while not room.acquire(timeout=0.1):
                    if state["stopped"]:
                        return
                if state["exhausted"]:  # nothing left to send: open no stream
                    room.release()
                    return
                for answer in self.predict_stream(stream_chunks(mine), model, window):
                    with done:
                        answers[mine.popleft()] = answer
                        done.notify_all()
            except BaseException as exc:  # handed to the caller's thread below
                errors.append(exc)
            finally:
                with done:
                    state["streams"] -= 1
                    done.notify_all()

        def start_stream() -> None:
            if not (state["stopped"] or state["exhausted"]):
                with done:
                    state["streams"] += 1
                threading.Thread(target=stream, name="digits-stream", daemon=True).start()

        for _ in range(streams):
            start_stream()
        try:
            for position in itertools.count():
                with done:
                    done.wait_for(lambda: position in answers or errors or (
                        state["streams"] == 0 and position >= state["read"]))
                    if errors:
                        raise errors[0]
                    if position not in answers:
                        break
                    answer = answers.pop(position)
                room.release()
                yield answer
            if source_error:
                raise source_error[0]
        finally:
            state["stopped"] = True


class _Watchdog:
    """Cancels a stream when an answer it waits for is ``timeout`` seconds late."""

    def __init__(self, timeout: float):
        self.timeout = timeout
        self._since: float | None = None  # when the wait for the oldest unanswered chunk began
        self._stop = threading.Event()

    def overdue(self) -> bool:
        since = self._since
        return since is not None and time.monotonic() - since > self.timeout

    def remaining(self) -> float:
        since = self._since
        return self.timeout if since is None else max(0.0, self.timeout - (time.monotonic() - since))

    def watch(self, call: grpc.Call) -> None:
        """Cancel this call once an answer is overdue (until ``stop``)."""
        self._stop = stop = threading.Event()

        def watch() -> None:
            while not stop.wait(min(self.timeout, 0.25)):
                if self.overdue():
                    call.cancel()
                    return

        threading.Thread(target=watch, name="digits-stream-watchdog", daemon=True).start()

    def sent(self) -> None:
        """A chunk went out; if nothing else was waiting, the clock starts now."""
        if self._since is None:
            self._since = time.monotonic()

    def answered(self, still_waiting: bool) -> None:
        self._since = time.monotonic() if still_waiting else None

    def stop(self) -> None:
        self._stop.set()
