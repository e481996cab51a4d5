"""digits-train: MNIST in, verified and evaluated model artifacts out.

Exit codes: 0 done; 1 training failed; 2 bad arguments or bad MNIST data;
3 models written but the server named by --notify could not reload them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import threading
import time
from pathlib import Path

import grpc
import numpy as np
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from digitserve.artifacts import ArtifactError, find_manifests, read_manifest, remove_leftovers, write_artifact
from digitserve.estimators import DigitFeatures
from trainer import report
from trainer.evaluation import evaluate, voting_accuracies
from trainer.mnist import Mnist, MnistError, load_mnist
from trainer.recipes import DEFAULT_MODELS, RECIPES, assemble, build_ensemble, build_tail

EXIT_FAILED, EXIT_USAGE, EXIT_NOTIFY = 1, 2, 3


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="digits-train",
        description="Train, evaluate and write the digit models (knn, svm, rf, ensemble) into a models folder.")
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS),
                        help=f"comma-separated models to train (default: {','.join(DEFAULT_MODELS)})")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("DIGITS_MODELS_DIR", "models")),
                        help="models folder to write [DIGITS_MODELS_DIR] (default: models)")
    parser.add_argument("--mnist-dir", type=Path, default=os.environ.get("MNIST_DIR") or None,
                        help="folder holding the four MNIST .gz files [MNIST_DIR]; "
                             "without it they are downloaded into the cache (DIGITS_CACHE_DIR)")
    parser.add_argument("--limit", type=int, default=0,
                        help="train on this many training images and test on at most this many (quick runs)")
    parser.add_argument("--seed", type=int, default=0, help="random seed for subsets, splits and forests")
    parser.add_argument("--jobs", type=int, default=int(os.environ.get("DIGITS_JOBS", os.cpu_count() or 1)),
                        help="CPU threads for fitting [DIGITS_JOBS] (default: all cores)")
    parser.add_argument("--if-missing", action="store_true",
                        help="do nothing when every requested model already has a manifest in --out")
    parser.add_argument("--force", action="store_true", help="train even when the models exist (overrides --if-missing)")
    parser.add_argument("--no-report", action="store_true", help="skip the PNG pictures of each evaluation")
    parser.add_argument("--notify", metavar="HOST:PORT", default=os.environ.get("DIGITS_NOTIFY", ""),
                        help="ask this server to Reload once the artifacts are written [DIGITS_NOTIFY]")
    parser.add_argument("--token", default=os.environ.get("DIGITS_TOKEN", ""),
                        help="operator token for --notify [DIGITS_TOKEN]")
    args = parser.parse_args(argv)
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in args.models if m not in RECIPES]
    if unknown or not args.models:
        parser.error(f"--models: unknown model(s) {', '.join(unknown) or '(none given)'}; "
                     f"choose from {', '.join(RECIPES)}")
    if args.limit < 0 or args.jobs < 1:
        parser.error("--limit must be 0 or more and --jobs at least 1")
    return args


def log(text: str) -> None:
    """Progress and errors go to standard error; the summary table to standard output."""
    print(text, file=sys.stderr, flush=True)


def _subset(images: np.ndarray, labels: np.ndarray, limit: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    if not limit or limit >= len(labels):
        return images, labels
    chosen = np.sort(np.random.default_rng(seed).choice(len(labels), size=limit, replace=False))
    return images[chosen], labels[chosen]


def _existing(out: Path) -> set[str]:
    names = set()
    for path in find_manifests(out) if out.is_dir() else []:
        try:
            names.add(read_manifest(path).name)
        except ArtifactError:
            continue
    return names


def _order(models: list[str]) -> list[str]:
    """Members before the ensembles that need them."""
    needed = []
    for name in models:
        for member in RECIPES[name].members:
            if member not in needed:
                needed.append(member)
        if name not in needed:
            needed.append(name)
    return needed


@contextlib.contextmanager
def _ticking(bar: tqdm, every: float = 0.5):
    """Redraw the bar while a long fit runs, so its clock keeps moving."""
    stop = threading.Event()

    def tick() -> None:
        while not stop.wait(every):
            bar.refresh()

    ticker = threading.Thread(target=tick, daemon=True)
    ticker.start()
    try:
        yield
    finally:
        stop.set()
        ticker.join()


def train(args: argparse.Namespace, data: Mnist) -> list[dict]:
    """Fit, evaluate and write every requested model; returns one summary row each."""
    train_x, train_y = _subset(data.train_images, data.train_labels, args.limit, args.seed)
    test_x, test_y = _subset(data.test_images, data.test_labels, args.limit, args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    remove_leftovers(args.out)
    plan = _order(args.models)
    rows, tails, probabilities, fit_times = [], {}, {}, {}
    with tqdm(total=len(plan) + 1, desc="training", unit="stage", file=sys.stderr,
              disable=not sys.stderr.isatty()) as bar, _ticking(bar):
        bar.set_postfix_str("features")
        started = time.perf_counter()
        features = DigitFeatures().fit(train_x)
        train_f = features.transform(train_x)
        log(f"features: {len(train_x):,} training and {len(test_x):,} test images in "
            f"{time.perf_counter() - started:.1f}s")
        bar.update()
        for name in plan:
            recipe = RECIPES[name]
            bar.set_postfix_str(name)
            started = time.perf_counter()
            if recipe.members:
                model = build_ensemble(recipe, features, tails, train_f[:100], train_y[:100])
                fit_seconds = sum(fit_times[m] for m in recipe.members)
                member_p = [probabilities[m] for m in recipe.members]
                evaluation, probs = evaluate(model, test_x, test_y, fit_seconds)
                extra = {"voting": voting_accuracies(member_p, list(recipe.weights), test_y)}
            else:
                tails[name] = build_tail(recipe, args.seed, args.jobs).fit(train_f, train_y)
                fit_seconds = time.perf_counter() - started
                model = assemble(features, tails[name])
                evaluation, probs = evaluate(model, test_x, test_y, fit_seconds)
                extra = {}
            probabilities[name] = probs
            fit_times[name] = fit_seconds
            summary = evaluation.as_dict() | extra
            if name in args.models:
                manifest = write_artifact(args.out, name, recipe.kind, model, training_samples=len(train_x),
                                          probabilities=recipe.probabilities, members=list(recipe.members),
                                          evaluation=summary)
                if not args.no_report:
                    _pictures(args.out, name, evaluation, test_x, test_y, probs)
                rows.append({"name": name, "kind": recipe.kind, "accuracy": evaluation.accuracy,
                             "fit_seconds": evaluation.fit_seconds, "size_mb": manifest.size_bytes / 1e6,
                             "single_ms": evaluation.single_image_ms,
                             "images_per_s": evaluation.batch_images_per_second,
                             "version": manifest.version, **extra})
            log(f"{name}: accuracy {evaluation.accuracy:.2%}, fitted in {evaluation.fit_seconds:.1f}s")
            bar.update()
    return rows


def _pictures(out: Path, name: str, evaluation, images, labels, probs) -> None:
    folder = out / "reports"
    folder.mkdir(parents=True, exist_ok=True)
    report.confusion_png(evaluation.confusion, f"{name}: accuracy {evaluation.accuracy:.2%} "
                                               f"on {evaluation.test_samples:,} test digits",
                         folder / f"{name}-confusion.png")
    report.mistakes_png(images, labels, probs, name, folder / f"{name}-mistakes.png")


def summary_table(rows: list[dict]) -> str:
    header = f"{'model':<10} {'accuracy':>9} {'fit s':>7} {'MB':>6} {'1 image ms':>11} {'images/s':>9}  version"
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(f"{r['name']:<10} {r['accuracy']:>9.2%} {r['fit_seconds']:>7.1f} {r['size_mb']:>6.1f} "
                     f"{r['single_ms']:>11.2f} {r['images_per_s']:>9.0f}  {r['version']}")
        if "voting" in r:
            v = r["voting"]
            lines.append(f"{'':<10} voting: soft {v['soft']:.2%} (served), hard {v['hard']:.2%}")
    return "\n".join(lines)


def notify(address: str, token: str) -> str:
    """Ask a server to Reload; returns a one-line description of what changed."""
    from digitserve.v1 import digits_pb2, digits_pb2_grpc

    metadata = [("authorization", f"Bearer {token}")] if token else None
    with grpc.insecure_channel(address) as channel:
        reply = digits_pb2_grpc.DigitsStub(channel).Reload(digits_pb2.ReloadRequest(), timeout=120,
                                                           metadata=metadata)
    failed = "; ".join(f"{f.name}: {f.reason}" for f in reply.failed)
    return (f"added {len(reply.added)}, updated {len(reply.updated)}, removed {len(reply.removed)}, "
            f"failed {len(reply.failed)}" + (f" ({failed})" if failed else ""))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.if_missing and not args.force and set(args.models) <= _existing(args.out):
        log(f"{args.out}: models {', '.join(args.models)} already present; nothing to do (use --force to retrain)")
        return 0
    try:
        data = load_mnist(args.mnist_dir, progress=sys.stderr.isatty())
    except MnistError as exc:
        log(f"digits-train: {exc}")
        return EXIT_USAGE
    log(f"MNIST from {data.source}: {len(data.train_labels):,} training and {len(data.test_labels):,} test images")
    try:
        with threadpool_limits(args.jobs):
            rows = train(args, data)
    except (OSError, ValueError, MemoryError) as exc:
        log(f"digits-train: training failed: {exc}")
        return EXIT_FAILED
    print(summary_table(rows))
    (args.out / "training-summary.json").write_text(json.dumps(rows, indent=2) + "\n")
    if args.notify:
        try:
            log(f"reload on {args.notify}: {notify(args.notify, args.token)}")
        except grpc.RpcError as exc:
            log(f"digits-train: models written to {args.out}, but {args.notify} did not reload: "
                f"{exc.code().name}: {exc.details()}")
            return EXIT_NOTIFY
    return 0


if __name__ == "__main__":
    sys.exit(main())
