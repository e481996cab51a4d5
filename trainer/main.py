"""digits-train: MNIST in, verified and evaluated model artifacts out.

Exit codes: 0 done; 1 training failed; 2 bad arguments; 3 models written, but
the server named by --notify refused to reload; 4 models written, but that
server could not be reached; 5 MNIST files missing or damaged, or the models
folder could not be written (nothing in it changed, or the message names
exactly what did).
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

import numpy as np
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from clients.connection import (RETRIES, Connection, ConnectionOptions, ServerError, ServerUnavailable,
                                UsageError, add_security_flags, each_replica, security_options)
from digitserve import exits, version
from digitserve.artifacts import (ArtifactError, Publication, PublishError, find_manifests, manifest_path,
                                  read_manifest, remove_leftovers)
from digitserve.settings import Setting, add_settings
from trainer import report
from trainer.mnist import CACHE_DIR, Mnist, MnistError, load_mnist
from trainer.pens import PENS, redrawn_copies
from trainer.recipes import DEFAULT_MODELS, RECIPES
from trainer.styles import STYLES, WEIGHT_OF_ZERO, add_styles

NOTIFY_TIMEOUT = 120.0  # seconds for the server to reload every model

SETTINGS = (
    Setting("--out", "DIGITS_MODELS_DIR", Path("models"), "models folder to write"),
    Setting("--mnist-dir", "MNIST_DIR", None, "folder holding the four MNIST .gz files; without it they are "
            f"downloaded into the cache ({CACHE_DIR.env})", type=Path, shown="download"),
    Setting("--limit", "", 0, "train on this many training images and test on at most this many (quick runs)",
            minimum=0, zero="all"),
    Setting("--jobs", "DIGITS_JOBS", os.cpu_count() or 1, "CPU threads for fitting", minimum=1, shown="all cores"),
    Setting("--styles", "", 0.05, f"add styled copies of the training digits (slashed zeros, continental ones, ...: "
            f"{len(STYLES)} styles), each SHARE of its digit's count ({WEIGHT_OF_ZERO:g} times that for slashed "
            "zeros), at most 1", minimum=0, zero="none", metavar="SHARE"),
    Setting("--pens", "", 0.1, "add this share of the training digits again, redrawn with an even pen as a "
            f"drawing window draws ({PENS[0]:g}-{PENS[1]:g} px wide), at most 1", minimum=0, zero="none",
            metavar="SHARE"),
    Setting("--judges", "", 4, "networks averaged in the ensemble's judge of shapes (what it doubts as no digit): "
            "fewer train faster, but which letters are doubted then hangs more on the seed", minimum=1, metavar="N"),
)
NOTIFY = (Setting("--notify", "DIGITS_NOTIFY", "", "ask this server (or each of HOST:PORT,HOST:PORT) to "
                  "Reload once the artifacts are written",
                  metavar="HOST[:PORT]"), RETRIES)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="digits-train",
        description="Train, evaluate and write the digit models (knn, svm, rf, ensemble) into a models folder.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS),
                        help=f"comma-separated models to train (default: {','.join(DEFAULT_MODELS)})")
    add_settings(parser, SETTINGS)
    parser.add_argument("--seed", type=int, default=0, help="random seed for subsets, splits and forests")
    parser.add_argument("--if-missing", action="store_true",
                        help="do nothing when every requested model already has a manifest in --out")
    parser.add_argument("--force", action="store_true", help="train even when the models exist (overrides --if-missing)")
    parser.add_argument("--no-report", action="store_true", help="skip the PNG pictures of each evaluation")
    notify = parser.add_argument_group("--notify: the server to reload, reached like the digits client reaches it")
    add_settings(notify, NOTIFY)
    add_security_flags(notify)
    args = parser.parse_args(argv)
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in args.models if m not in RECIPES]
    if unknown or not args.models:
        parser.error(f"--models: unknown model(s) {', '.join(unknown) or '(none given)'}; "
                     f"choose from {', '.join(RECIPES)}")
    for flag in ("styles", "pens"):
        if getattr(args, flag) > 1:
            parser.error(f"--{flag}: expected a share between 0 and 1, got {getattr(args, flag):g}")
    try:
        args.server = ConnectionOptions(address=args.notify, timeout=NOTIFY_TIMEOUT, retries=args.retries,
                                        **security_options(args)) if args.notify else None
        if args.server:
            each_replica(args.server)  # a dns: name is refused now, not after training
    except UsageError as exc:
        parser.error(str(exc))
    return args


def log(text: str) -> None:
    """Progress and errors go to standard error; the summary table to standard output."""
    print(text, file=sys.stderr, flush=True)


def _subset(images: np.ndarray, labels: np.ndarray, limit: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    if not limit or limit >= len(labels):
        return images, labels
    chosen = np.sort(np.random.default_rng(seed).choice(len(labels), size=limit, replace=False))
    return images[chosen], labels[chosen]


def _versions(out: Path) -> dict[str, str]:
    """The version of each readable model in a models folder, by name."""
    versions = {}
    for path in find_manifests(out) if out.is_dir() else []:
        try:
            manifest = read_manifest(path)
        except ArtifactError:
            continue
        versions[manifest.name] = manifest.version
    return versions


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


def train(args: argparse.Namespace, data: Mnist) -> tuple[list[dict], list[tuple]]:
    """Fit, evaluate and publish every requested model as one set.

    Returns one summary row per model, and what its report pictures need.
    Nothing in ``args.out`` changes until every file of the run is written.
    """
    # scikit-learn loads here, not with the command: --help, --version and a bad flag or data file
    # answer in well under a second instead of two.
    from digitserve.estimators import DigitFeatures
    from trainer.assembly import assemble, build_ensemble, fit_tail
    from trainer.calibration import calibration_summary, fit_calibration
    from trainer.evaluation import evaluate, voting_accuracies

    train_x, train_y = _subset(data.train_images, data.train_labels, args.limit, args.seed)
    test_x, test_y = _subset(data.test_images, data.test_labels, args.limit, args.seed)
    mnist_samples = len(train_x)
    started = run_started = time.perf_counter()
    pen_x, pen_y = redrawn_copies(train_x, train_y, args.pens, args.seed)
    log(f"pens: {len(pen_y):,} copies redrawn with an even pen in {time.perf_counter() - started:.1f}s")
    started = time.perf_counter()
    train_x, train_y, styled = add_styles(train_x, train_y, args.styles, args.seed)
    log(f"styles: {sum(styled.values()):,} styled copies added in {time.perf_counter() - started:.1f}s "
        f"({', '.join(f'{n:,} {style}' for style, n in styled.items())})")
    train_x, train_y = np.concatenate([train_x, pen_x]), np.concatenate([train_y, pen_y])
    args.out.mkdir(parents=True, exist_ok=True)
    remove_leftovers(args.out)
    plan = _order(args.models)
    rows, reports, tails, probabilities, fit_times = [], [], {}, {}, {}
    with Publication(args.out) as publication, \
            tqdm(total=len(plan) + 1, desc="training", unit="stage", file=sys.stderr,
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
                # Calibrated on MNIST's own digits (the styled copies follow them in train_f): the limits
                # of "sure" stay those of the digits the server is mostly asked about.
                calibration = (fit_calibration(recipe, features, train_f[:mnist_samples], train_y[:mnist_samples],
                                               args.seed, args.jobs, args.judges) if recipe.calibration_size else None)
                model = build_ensemble(recipe, features, tails, train_f[:100], train_y[:100], calibration)
                fit_seconds = sum(fit_times[m] for m in recipe.members) + time.perf_counter() - started
                member_p = [probabilities[m] for m in recipe.members]
                evaluation, probs = evaluate(model, test_x, test_y, fit_seconds)
                extra = {"voting": voting_accuracies(member_p, list(recipe.weights), test_y)}
                if calibration is not None:
                    raw = np.average(member_p, axis=0, weights=recipe.weights)
                    extra["calibration"] = calibration_summary(calibration, raw, probs, test_y)
            else:
                tails[name] = fit_tail(recipe, args.seed, args.jobs, features, train_f, train_y)
                fit_seconds = time.perf_counter() - started
                model = assemble(features, tails[name])
                evaluation, probs = evaluate(model, test_x, test_y, fit_seconds)
                extra = {}
            probabilities[name] = probs
            fit_times[name] = fit_seconds
            summary = evaluation.as_dict() | extra | {"styled_training_digits": styled}
            if name in args.models:
                manifest = publication.stage_model(name, recipe.kind, model, training_samples=mnist_samples,
                                                   probabilities=recipe.probabilities,
                                                   members=list(recipe.members), evaluation=summary)
                reports.append((name, evaluation, test_x, test_y, probs))
                rows.append({"name": name, "kind": recipe.kind, "accuracy": evaluation.accuracy,
                             "fit_seconds": evaluation.fit_seconds, "size_mb": manifest.size_bytes / 1e6,
                             "single_ms": evaluation.single_image_ms,
                             "images_per_s": evaluation.batch_images_per_second,
                             "version": manifest.version, "styled_training_digits": styled,
                             # wall-clock seconds from the start of training until this model was ready
                             "ready_after_s": round(time.perf_counter() - run_started, 1), **extra})
            log(f"{name}: accuracy {evaluation.accuracy:.2%}, fitted in {evaluation.fit_seconds:.1f}s")
            bar.update()
        publication.stage(SUMMARY, (json.dumps(rows, indent=2) + "\n").encode())
        publication.publish()
    return rows, reports


SUMMARY = "training-summary.json"


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
        if "calibration" in r:
            c = r["calibration"]
            lines.append(f"{'':<10} calibration: temperature {c['temperature']:.2f}, expected calibration "
                         f"error {c['ece_before']:.2%} before, {c['ece_after']:.2%} after")
    return "\n".join(lines)


def notify(options: ConnectionOptions) -> list[tuple[str, str | ServerUnavailable | ServerError]]:
    """Ask every listed server to Reload: for each, a one-line description of what changed, or its error."""
    outcomes: list[tuple[str, str | ServerUnavailable | ServerError]] = []
    for replica in each_replica(options):
        try:
            with Connection(replica) as connection:
                reply = connection.reload()
        except (ServerUnavailable, ServerError) as exc:
            outcomes.append((replica.address, exc))
            continue
        failed = "; ".join(f"{f.name}: {f.reason}" for f in reply.failed)
        outcomes.append((replica.address, f"added {len(reply.added)}, updated {len(reply.updated)}, "
                                          f"removed {len(reply.removed)}, failed {len(reply.failed)}"
                                          + (f" ({failed})" if failed else "")))
    return outcomes


def _unpublished(out: Path, exc: PublishError, models: list[str]) -> str:
    """What a failed publication left in the models folder, model by model."""
    changed = [name for name in models if manifest_path(out, name).name in exc.published]
    if not changed:
        return f"nothing in {out} changed: it holds the models it held before"
    return (f"in {out}, these models were replaced: {', '.join(changed)}; these were not: "
            f"{', '.join(m for m in models if m not in changed)}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    before = _versions(args.out)
    try:
        return _run(args, before)
    except KeyboardInterrupt:
        # Ctrl-C may come while the models are being renamed into place, or after: say what changed.
        replaced = sorted(name for name, version in _versions(args.out).items() if before.get(name) != version)
        log("digits-train: interrupted; " + (f"these models in {args.out} were replaced: {', '.join(replaced)}"
                                              if replaced else f"nothing in {args.out} changed"))
        return exits.INTERRUPTED


def _run(args: argparse.Namespace, before: dict[str, str]) -> int:
    if args.if_missing and not args.force and set(args.models) <= set(before):
        log(f"{args.out}: models {', '.join(args.models)} already present; nothing to do (use --force to retrain)")
        return exits.OK
    try:
        if args.server:
            args.server.channel_credentials()  # unreadable certificates fail now, not after training
        data = load_mnist(args.mnist_dir, progress=sys.stderr.isatty())
    except (MnistError, OSError) as exc:
        log(f"digits-train: {exc}")
        return exits.LOCAL_FILE
    log(f"MNIST from {data.source}: {len(data.train_labels):,} training and {len(data.test_labels):,} test images")
    try:
        with threadpool_limits(args.jobs):
            rows, reports = train(args, data)
    except PublishError as exc:
        log(f"digits-train: {exc}; {_unpublished(args.out, exc, args.models)}")
        return exits.LOCAL_FILE
    except (OSError, ValueError, MemoryError) as exc:
        log(f"digits-train: training failed, nothing in {args.out} changed: {exc}")
        return exits.FAILED
    print(summary_table(rows))
    try:
        for report_args in [] if args.no_report else reports:
            _pictures(args.out, *report_args)
    except OSError as exc:
        log(f"digits-train: models {', '.join(args.models)} written to {args.out}, but a report picture "
            f"could not be: {exc}")
        return exits.LOCAL_FILE
    errors = []
    for address, outcome in notify(args.server) if args.server else []:
        if isinstance(outcome, str):
            log(f"reload on {address}: {outcome}")
        else:
            log(f"digits-train: models written to {args.out}, but {address} did not reload: {outcome}")
            errors.append(outcome)
    if errors:
        return exits.UNREACHABLE if any(isinstance(e, ServerUnavailable) for e in errors) else exits.REFUSED
    return exits.OK


if __name__ == "__main__":
    sys.exit(main())
