"""digits: predict digits, list models, reload them, or draw one, against a digits server.

Exit codes: 0 done; 1 some inputs could not be read (each is named, the rest
were predicted), or a reload left models unloaded; 2 the command line is wrong;
3 the server refused the request (the message says why); 4 the server could
not be reached or did not answer within --timeout; 5 a local file (--labels,
a certificate or key, --output) could not be read or written.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import deque
from pathlib import Path
from typing import Iterator

import numpy as np

from clients.connection import (DEFAULT_ADDRESS, RETRIES, Connection, ConnectionOptions, ServerError,
                                ServerUnavailable, UsageError, add_security_flags, each_replica, security_options,
                                stream_count)
from clients.inputs import Item, Piped, count_digits, piped_file, read_items, read_labels, save_inputs
from clients.number_results import (NUMBER_WRITERS, LabelsError, NumberScoreboard, digits_seen_warning,
                                    read_number_labels, read_numbers)
from clients.output import WRITERS, Result, Scoreboard
from digitserve import exits, version
from digitserve.contract import CLASSES, IMAGE_SIDE, PIXELS
from digitserve.idx import IdxError
from digitserve.settings import Setting, add_settings


CONNECTION = (
    Setting("--server", "DIGITS_SERVER", DEFAULT_ADDRESS,
            "HOST[:PORT] of the digits server, port 50051 when none is given; or replicas: "
            "HOST[:PORT],HOST[:PORT],... or dns:///NAME[:PORT], each call to the next one up"),
    Setting("--timeout", "", 30.0, "seconds to wait for each answer, also inside a stream"),
    RETRIES,
)


def _connection_flags() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("connection")
    add_settings(group, CONNECTION)
    add_security_flags(group)
    return common


def build_parser() -> argparse.ArgumentParser:
    common = _connection_flags()
    parser = argparse.ArgumentParser(prog="digits", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    predict = commands.add_parser(
        "predict", parents=[common], help="recognise the digits in images, stroke files, folders, IDX or .npy files",
        description="Recognise digits. PATH may be an image (PNG, JPEG, BMP, GIF, ...), a stroke file (.json, "
                    "saved by digits draw), a folder (searched recursively, in sorted order; DIGIT/ subfolders "
                    f"give labels), an MNIST IDX file or a .npy array of shape (N, {IMAGE_SIDE}, {IMAGE_SIDE}) or "
                    f"(N, {PIXELS}); "
                    "'-' reads more paths from standard input, one a line.")
    predict.add_argument("paths", nargs="+", metavar="PATH")
    predict.add_argument("--model", default="", help="model name (default: the server's default model)")
    predict.add_argument("--format", choices=sorted(WRITERS), default="table", help="output format (default: table)")
    predict.add_argument("--output", "-o", help="write results to this file instead of standard output ('-')")
    predict.add_argument("--top", type=int, default=0, metavar="K", help="also show the K most likely digits")
    predict.add_argument("--labels", type=Path,
                         help="MNIST IDX labels for the IDX images given; with --number, a text file of "
                              "'NAME NUMBER' lines (NAME as given or the file name): report accuracy")
    predict.add_argument("--ink", choices=["auto", "dark", "light"], default="auto",
                         help="dark ink on light paper, light on dark, or detect (default: auto)")
    predict.add_argument("--batch", type=int, default=1000, help="images per streamed chunk (default: 1000)")
    predict.add_argument("--number", action="store_true",
                         help="read every input as a whole number of up to 32 digits (each digit with its box)")
    predict.add_argument("--lines", action="store_true",
                         help="with --number: read writing of several lines, one above the other, as a number "
                              "per line, top first (its index counts the lines from 0)")
    predict.add_argument("--save-inputs", type=Path, metavar="DIR",
                         help="write the 28x28 image sent for each input into DIR (PNG, named after the input)")

    models = commands.add_parser(
        "models", parents=[common], help="list the models the server knows",
        description="List the models the server knows: name, kind, test accuracy, size, load state, "
                    "version and ensemble members; * marks the default model.")
    models.add_argument("--format", choices=["table", "json"], default="table")

    reload = commands.add_parser(
        "reload", parents=[common], help="make the server rescan its models folder",
        description="Make the server rescan its models folder and show what was added, updated, removed "
                    "or failed to load. Servers started with --token need the operator token (--token).")
    reload.add_argument("--format", choices=["table", "json"], default="table")

    draw = commands.add_parser(
        "draw", parents=[common], help="open the drawing window",
        description="Open a window to draw a digit with the mouse and see what the server recognises, "
                    "with every digit's probability; it reconnects by itself when the server restarts.")
    draw.add_argument("--model", default="", help="model to start with (default: the server's default)")
    return parser


def _options(args: argparse.Namespace) -> ConnectionOptions:
    return ConnectionOptions(address=args.server, timeout=args.timeout, retries=args.retries,
                             **security_options(args))


def _paths(given: list[str]) -> Iterator[str | Piped]:
    """The paths given, with '-' replaced by the lines of standard input, read as they come,
    or by the image or stroke file piped there."""
    for path in given:
        if path != "-":
            yield path
            continue
        piped = piped_file(sys.stdin.buffer) if hasattr(sys.stdin, "buffer") else None
        if piped is not None:
            yield piped
        else:
            yield from (line.rstrip("\r\n") for line in sys.stdin if line.strip())


_FLUSH_SECONDS = 1.0


def _groups(items: Iterator[Item], size: int, groups: deque, leftovers: list) -> Iterator[np.ndarray]:
    """Chunks of ``size`` images for the stream; the items of each chunk go to ``groups``.

    Failed items travel with the next chunk so results stay in input order;
    failures after the last image end up in ``leftovers``. A chunk also goes
    once _FLUSH_SECONDS have passed since the last one: reading big photos
    can take longer than the server waits on a quiet stream
    (--stream-idle-timeout, 30 s), and the progress bar moves meanwhile.
    """
    group: list[Item] = []
    images: list[np.ndarray] = []
    sent = time.monotonic()
    for item in items:
        group.append(item)
        if item.pixels is not None:
            images.append(item.pixels)
        if len(images) == size or (images and time.monotonic() - sent >= _FLUSH_SECONDS):
            groups.append(group)
            yield np.stack(images)
            group, images = [], []
            sent = time.monotonic()
    if images:
        groups.append(group)
        yield np.stack(images)
    else:
        leftovers.extend(group)


def _results(connection: Connection, items: Iterator[Item], model: str, size: int) -> Iterator[Result]:
    groups: deque[list[Item]] = deque()
    leftovers: list[Item] = []
    streams = stream_count(connection.options.address)
    for answer in connection.predict_streams(_groups(items, size, groups, leftovers), model, streams):
        predictions = iter(answer.predictions())
        for item in groups.popleft():
            yield Result(item) if item.pixels is None else Result(item, next(predictions))
    for item in leftovers:
        yield Result(item)


def _progress(paths: list[str]):
    """A progress bar on standard error, shown only on a terminal; with a total and ETA when known."""
    from tqdm import tqdm

    shown = sys.stderr.isatty()
    total = count_digits(paths) if shown else None
    return tqdm(total=total, unit="img", desc="predicting", file=sys.stderr, disable=not shown,
                leave=False, mininterval=0.2)


def _warn(text: str) -> None:
    from tqdm import tqdm

    tqdm.write(f"digits: {text}", file=sys.stderr)  # clears a progress bar first


def predict(args: argparse.Namespace) -> int:
    if args.batch < 1 or not 0 <= args.top <= len(CLASSES):
        raise UsageError(f"--batch must be at least 1 and --top between 0 and {len(CLASSES)}")
    if args.lines and not args.number:
        raise UsageError("--lines reads each line as a number: it goes with --number")
    if args.number:
        return predict_numbers(args)
    labels = read_labels(args.labels) if args.labels else None
    options = _options(args)
    to_file = args.output not in (None, "-")
    out = open(args.output, "w", newline="") if to_file else sys.stdout
    writer = WRITERS[args.format](out, args.top)
    board, failed, written = Scoreboard(), 0, 0
    try:
        with Connection(options) as connection, _progress(args.paths) as bar:
            items = read_items(_paths(args.paths), ink=args.ink, labels=labels, warn=_warn)
            if args.save_inputs:
                items = save_inputs(items, args.save_inputs)
            for result in _results(connection, items, args.model, args.batch):
                _write(writer, result, out, bar)
                written += 1
                board.add(result)
                if result.item.error:
                    failed += 1
                    _warn(result.item.error)
                elif warning := digits_seen_warning(result.item):
                    _warn(warning)
                bar.update()
        writer.close()
    finally:
        if to_file:
            out.close()
    if board.total:
        print(board.report(), file=sys.stderr if args.format != "table" or to_file else sys.stdout)
    if not written:
        _warn(f"nothing to predict: no digits in {', '.join(args.paths)}")
        return exits.FAILED
    return exits.FAILED if failed else exits.OK


def _write(writer, result: Result, out, bar) -> None:
    """One result; on a terminal the progress bar steps aside so the two never mix."""
    if bar.disable or not out.isatty():
        writer.write(result)
        return
    with bar.external_write_mode(file=out):
        writer.write(result)
        out.flush()


def predict_numbers(args: argparse.Namespace) -> int:
    labels = read_number_labels(args.labels) if args.labels else None
    to_file = args.output not in (None, "-")
    out = open(args.output, "w", newline="") if to_file else sys.stdout
    writer = NUMBER_WRITERS[args.format](out, args.top)
    board, failed = NumberScoreboard(), 0
    try:
        with Connection(_options(args)) as connection:
            items = read_items(_paths(args.paths), ink=args.ink, warn=_warn, whole=True)
            for result in read_numbers(connection, items, args.model, args.ink, labels, lines=args.lines):
                writer.write(result)
                board.add(result)
                if result.error:
                    failed += 1
                    _warn(result.error)
        writer.close()
    finally:
        if to_file:
            out.close()
    if labels is not None:
        if board.total:
            print(board.report(), file=sys.stderr if args.format != "table" or to_file else sys.stdout)
        else:
            _warn(f"{args.labels}: names none of the inputs read")
    return exits.FAILED if failed else exits.OK


def models(args: argparse.Namespace) -> int:
    from digitserve.v1 import digits_pb2 as pb

    with Connection(_options(args)) as connection:
        reply = connection.list_models()
    rows = [{"name": m.name, "kind": m.kind, "version": m.version, "default": m.default,
             "test_accuracy": m.test_accuracy, "state": pb.LoadState.Name(m.state).lower(),
             "members": list(m.members), "training_samples": m.training_samples, "size_bytes": m.size_bytes,
             "sha256": m.sha256, "created": m.created, "probabilities": m.probabilities, "error": m.error}
            for m in reply.models]
    if not rows:  # an empty table would read as a broken listing
        print("digits: no models are loaded: the server's models folder holds none yet; train them there "
              "(digits-train --out DIR, or make train) and run digits reload", file=sys.stderr)
    if args.format == "json":
        print(json.dumps(rows, indent=2))
        return 0
    if rows:
        print(f"{'':1} {'name':<10} {'kind':<9} {'accuracy':>8} {'MB':>5} {'state':<7} {'version':<26} members")
    for r in rows:
        accuracy = f"{r['test_accuracy']:.2%}" if r["state"] == "loaded" else "-"
        print(f"{'*' if r['default'] else '':1} {r['name']:<10} {r['kind'] or '-':<9} {accuracy:>8} "
              f"{r['size_bytes'] / 1e6:>5.1f} {r['state']:<7} {r['version'] or '-':<26} {','.join(r['members'])}")
        if r["error"]:
            print(f"    error: {r['error']}")
    return 0


def _changes(reply) -> dict:
    return {
        "added": [{"name": c.name, "version": c.version} for c in reply.added],
        "updated": [{"name": c.name, "version": c.version, "previous_version": c.previous_version}
                    for c in reply.updated],
        "removed": [{"name": c.name, "previous_version": c.previous_version} for c in reply.removed],
        "failed": [{"name": f.name, "path": f.path, "reason": f.reason} for f in reply.failed],
        "unchanged": list(reply.unchanged), "default_model": reply.default_model, "seconds": reply.seconds,
    }


def _print_changes(changes: dict) -> None:
    for c in changes["added"]:
        print(f"added     {c['name']} {c['version']}")
    for c in changes["updated"]:
        print(f"updated   {c['name']} {c['previous_version']} -> {c['version']}")
    for c in changes["removed"]:
        print(f"removed   {c['name']} {c['previous_version']}")
    for f in changes["failed"]:
        print(f"failed    {f['name']}: {f['path']}: {f['reason']}")
    print(f"unchanged {', '.join(changes['unchanged']) or '-'}; default model: "
          f"{changes['default_model'] or '-'} ({changes['seconds']:.2f}s)")


def reload(args: argparse.Namespace) -> int:
    """Reload every listed server; one that cannot be reached or refuses does not stop the others."""
    replicas = each_replica(_options(args))
    results: list[dict] = []
    errors: list[Exception] = []
    for options in replicas:
        try:
            with Connection(options) as connection:
                results.append({"server": options.address, **_changes(connection.reload())})
        except (ServerUnavailable, ServerError) as exc:
            if len(replicas) == 1:
                raise
            errors.append(exc)
            results.append({"server": options.address, "error": str(exc)})
    if args.format == "json":
        print(json.dumps(results[0] if len(results) == 1 else results, indent=2))
    else:
        for result in results:
            if len(results) > 1:
                print(f"{result['server']}:")
            if "error" not in result:
                _print_changes(result)
    for exc in errors:
        print(f"digits: {exc}", file=sys.stderr)
    if errors:
        return exits.UNREACHABLE if any(isinstance(e, ServerUnavailable) for e in errors) else exits.REFUSED
    return exits.FAILED if any(r["failed"] for r in results) else exits.OK


def draw(args: argparse.Namespace) -> int:
    from clients.draw import run

    return run(_options(args), args.model)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command = {"predict": predict, "models": models, "reload": reload, "draw": draw}[args.command]
    try:
        return command(args)
    except UsageError as exc:
        print(f"digits {args.command}: {exc}", file=sys.stderr)
        return exits.USAGE
    except ServerUnavailable as exc:
        print(f"digits: {exc}", file=sys.stderr)
        return exits.UNREACHABLE
    except ServerError as exc:
        print(f"digits: the server refused: {exc}", file=sys.stderr)
        return exits.REFUSED
    except BrokenPipeError:
        # The reader went away (| head): stop quietly, and keep Python's exit from
        # complaining about the unflushed rest.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return exits.OK
    except (OSError, IdxError, LabelsError) as exc:
        print(f"digits: {exc}", file=sys.stderr)
        return exits.LOCAL_FILE
    except KeyboardInterrupt:
        return exits.INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
