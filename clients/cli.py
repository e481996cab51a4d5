"""digits: predict digits, list models, reload them, or draw one, against a digits server.

Exit codes: 0 done; 1 some inputs could not be read or a reload met broken
artifacts; 2 the server could not be reached or the command line is wrong;
3 the server refused the request (the message says why).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import deque
from pathlib import Path
from typing import Iterator

import numpy as np

from clients.connection import Connection, ConnectionOptions, ServerError, ServerUnavailable, default_address
from clients.inputs import Item, read_items, save_inputs
from clients.output import WRITERS, Result, Scoreboard

EXIT_INPUTS, EXIT_UNREACHABLE, EXIT_REFUSED = 1, 2, 3


def _connection_flags() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("connection")
    group.add_argument("--server", default=default_address(),
                       help="HOST:PORT of the digits server [DIGITS_SERVER] (default: %(default)s)")
    group.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for each answer (default: 30)")
    group.add_argument("--retries", type=int, default=4,
                       help="retries with exponential backoff while the server is unavailable (default: 4)")
    group.add_argument("--ca-cert", default=os.environ.get("DIGITS_CA_CERT", ""),
                       help="PEM CA certificate: connect with TLS and verify the server [DIGITS_CA_CERT]")
    group.add_argument("--client-cert", default=os.environ.get("DIGITS_CLIENT_CERT", ""),
                       help="PEM client certificate, for servers that ask for one [DIGITS_CLIENT_CERT]")
    group.add_argument("--client-key", default=os.environ.get("DIGITS_CLIENT_KEY", ""),
                       help="PEM private key of --client-cert [DIGITS_CLIENT_KEY]")
    group.add_argument("--token", default=os.environ.get("DIGITS_TOKEN", ""),
                       help="operator token, for servers that protect Reload [DIGITS_TOKEN]")
    return common


def build_parser() -> argparse.ArgumentParser:
    common = _connection_flags()
    parser = argparse.ArgumentParser(prog="digits", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    predict = commands.add_parser(
        "predict", parents=[common], help="recognise the digits in images, stroke files, folders, IDX or .npy files",
        description="Recognise digits. PATH may be an image (PNG, JPEG, BMP, GIF, ...), a stroke file (.json, "
                    "saved by digits draw), a folder (searched recursively, in sorted order; DIGIT/ subfolders "
                    "give labels), an MNIST IDX file or a .npy array of shape (N, 28, 28) or (N, 784).")
    predict.add_argument("paths", nargs="+", metavar="PATH")
    predict.add_argument("--model", default="", help="model name (default: the server's default model)")
    predict.add_argument("--format", choices=sorted(WRITERS), default="table", help="output format (default: table)")
    predict.add_argument("--output", "-o", type=Path, help="write results to this file instead of standard output")
    predict.add_argument("--top", type=int, default=0, metavar="K", help="also show the K most likely digits")
    predict.add_argument("--labels", type=Path, help="MNIST IDX labels for the IDX images given: report accuracy")
    predict.add_argument("--ink", choices=["auto", "dark", "light"], default="auto",
                         help="dark ink on light paper, light on dark, or detect (default: auto)")
    predict.add_argument("--batch", type=int, default=1000, help="images per streamed chunk (default: 1000)")
    predict.add_argument("--save-inputs", type=Path, metavar="DIR",
                         help="write the 28x28 image sent for each input into DIR (PNG, named after the input)")

    models = commands.add_parser("models", parents=[common], help="list the models the server knows")
    models.add_argument("--format", choices=["table", "json"], default="table")

    reload = commands.add_parser("reload", parents=[common], help="make the server rescan its models folder")
    reload.add_argument("--format", choices=["table", "json"], default="table")

    draw = commands.add_parser("draw", parents=[common], help="open the drawing window")
    draw.add_argument("--model", default="", help="model to start with (default: the server's default)")
    return parser


def _options(args: argparse.Namespace) -> ConnectionOptions:
    return ConnectionOptions(address=args.server, timeout=args.timeout, retries=max(args.retries, 0),
                             ca_cert=args.ca_cert, client_cert=args.client_cert, client_key=args.client_key,
                             token=args.token)


def _groups(items: Iterator[Item], size: int, groups: deque, leftovers: list) -> Iterator[np.ndarray]:
    """Chunks of ``size`` images for the stream; the items of each chunk go to ``groups``.

    Failed items travel with the next chunk so results stay in input order;
    failures after the last image end up in ``leftovers``.
    """
    group: list[Item] = []
    images: list[np.ndarray] = []
    for item in items:
        group.append(item)
        if item.pixels is not None:
            images.append(item.pixels)
        if len(images) == size:
            groups.append(group)
            yield np.stack(images)
            group, images = [], []
    if images:
        groups.append(group)
        yield np.stack(images)
    else:
        leftovers.extend(group)


def _results(connection: Connection, items: Iterator[Item], model: str, size: int) -> Iterator[Result]:
    groups: deque[list[Item]] = deque()
    leftovers: list[Item] = []
    for answer in connection.predict_stream(_groups(items, size, groups, leftovers), model):
        rows = iter(answer.probabilities)
        for item in groups.popleft():
            yield Result(item, None if item.pixels is None else next(rows))
    for item in leftovers:
        yield Result(item)


def _progress():
    """A progress bar on standard error, shown only on a terminal."""
    from tqdm import tqdm

    return tqdm(unit="img", desc="predicting", file=sys.stderr, disable=not sys.stderr.isatty(),
                leave=False, mininterval=0.2)


def predict(args: argparse.Namespace) -> int:
    if args.batch < 1 or args.top < 0 or args.top > 10:
        print("digits predict: --batch must be at least 1 and --top between 0 and 10", file=sys.stderr)
        return EXIT_UNREACHABLE
    out = open(args.output, "w", newline="") if args.output else sys.stdout
    writer = WRITERS[args.format](out, args.top)
    board, failed = Scoreboard(), 0
    try:
        with Connection(_options(args)) as connection, _progress() as bar:
            items = read_items(args.paths, ink=args.ink, labels_file=args.labels)
            if args.save_inputs:
                items = save_inputs(items, args.save_inputs)
            for result in _results(connection, items, args.model, args.batch):
                writer.write(result)
                board.add(result)
                if result.item.error:
                    failed += 1
                    print(f"digits: {result.item.error}", file=sys.stderr)
                bar.update()
        writer.close()
    finally:
        if args.output:
            out.close()
    if board.total:
        print(board.report(), file=sys.stdout if args.format == "table" and not args.output else sys.stderr)
    return EXIT_INPUTS if failed else 0


def models(args: argparse.Namespace) -> int:
    from digitserve.v1 import digits_pb2 as pb

    with Connection(_options(args)) as connection:
        reply = connection.list_models()
    rows = [{"name": m.name, "kind": m.kind, "version": m.version, "default": m.default,
             "test_accuracy": m.test_accuracy, "state": pb.LoadState.Name(m.state).lower(),
             "members": list(m.members), "training_samples": m.training_samples, "size_bytes": m.size_bytes,
             "sha256": m.sha256, "created": m.created, "probabilities": m.probabilities, "error": m.error}
            for m in reply.models]
    if args.format == "json":
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'':1} {'name':<10} {'kind':<9} {'accuracy':>8} {'MB':>5} {'state':<7} {'version':<26} members")
    for r in rows:
        accuracy = f"{r['test_accuracy']:.2%}" if r["state"] == "loaded" else "-"
        print(f"{'*' if r['default'] else '':1} {r['name']:<10} {r['kind'] or '-':<9} {accuracy:>8} "
              f"{r['size_bytes'] / 1e6:>5.1f} {r['state']:<7} {r['version'] or '-':<26} {','.join(r['members'])}")
        if r["error"]:
            print(f"    error: {r['error']}")
    return 0


def reload(args: argparse.Namespace) -> int:
    with Connection(_options(args)) as connection:
        reply = connection.reload()
    changes = {
        "added": [{"name": c.name, "version": c.version} for c in reply.added],
        "updated": [{"name": c.name, "version": c.version, "previous_version": c.previous_version}
                    for c in reply.updated],
        "removed": [{"name": c.name, "previous_version": c.previous_version} for c in reply.removed],
        "failed": [{"name": f.name, "path": f.path, "reason": f.reason} for f in reply.failed],
        "unchanged": list(reply.unchanged), "default_model": reply.default_model, "seconds": reply.seconds,
    }
    if args.format == "json":
        print(json.dumps(changes, indent=2))
    else:
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
    return EXIT_INPUTS if reply.failed else 0


def draw(args: argparse.Namespace) -> int:
    from clients.draw import run

    return run(_options(args), args.model)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command = {"predict": predict, "models": models, "reload": reload, "draw": draw}[args.command]
    try:
        return command(args)
    except ServerUnavailable as exc:
        print(f"digits: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except ServerError as exc:
        print(f"digits: the server refused: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except (OSError, ValueError) as exc:
        print(f"digits: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
