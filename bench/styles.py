"""python -m bench.styles: how well each model reads the world's digit styles, next to traced strokes.

Per model in a models folder: accuracy on each style of the style test set
(tests.style_digits: slashed zeros, continental ones, ... drawn from glyph
skeletons and preprocessed as the drawing window sends them), on the traced
strokes set of bench.drawn (tests.strokes.drawn_test_digits), MNIST test
accuracy and artifact size from the manifests, and the training's wall time and
styled training digits from its training-summary.json. ``--before`` measures a
second models folder (the recipe before the styles) on the same sets.
Results: bench/results-styles.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

from bench.common import ROOT, data_arguments, machine
from digitserve.artifacts import find_manifests, load_estimator, read_manifest
from tests.strokes import drawn_test_digits
from tests.style_digits import styled_test_digits

TARGETS = {"style_accuracy": 0.95, "traced_accuracy": 0.98, "mnist_accuracy": 0.9937,
           "training_wall_s": 600.0, "artifacts_mb": 25.0}
TARGET_MODEL = "ensemble"  # the default model, which the targets are about
TRACED = "traced strokes"


def measure_folder(models_dir: Path, sets: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict:
    """Every model's accuracy on every set, its MNIST test accuracy and size; the training's wall time."""
    models = {}
    for manifest in map(read_manifest, find_manifests(models_dir)):
        model = load_estimator(models_dir, manifest)
        accuracy = {name: round(float((model.predict_proba(x).argmax(axis=1) == y).mean()), 4)
                    for name, (x, y) in sets.items()}
        models[manifest.name] = {"accuracy": accuracy, "mnist_test_accuracy": manifest.test_accuracy,
                                 "artifact_mb": round(manifest.size_bytes / 1e6, 2), "version": manifest.version,
                                 "training_samples": manifest.training_samples}
        print(f"{models_dir} {manifest.name}: " + ", ".join(f"{k} {v:.1%}" for k, v in accuracy.items()),
              file=sys.stderr)
    summary_path = models_dir / "training-summary.json"
    rows = json.loads(summary_path.read_text()) if summary_path.is_file() else []
    return {"models_dir": str(models_dir), "models": models,
            "artifacts_mb": round(sum(m["artifact_mb"] for m in models.values()), 2),
            "training_wall_s": max((r["ready_after_s"] for r in rows if "ready_after_s" in r), default=None),
            "styled_training_digits": next((r["styled_training_digits"] for r in rows
                                            if "styled_training_digits" in r), None)}


def verdicts(after: dict) -> dict[str, bool]:
    """Each target, met or not, for the default model of the measured folder."""
    model = after["models"].get(TARGET_MODEL)
    if model is None:
        return {}
    styles = {k: v for k, v in model["accuracy"].items() if k != TRACED}
    checks = {f"{style} >= {TARGETS['style_accuracy']:.0%}": v >= TARGETS["style_accuracy"]
              for style, v in styles.items()}
    checks[f"{TRACED} >= {TARGETS['traced_accuracy']:.0%}"] = model["accuracy"][TRACED] >= TARGETS["traced_accuracy"]
    checks[f"MNIST test >= {TARGETS['mnist_accuracy']:.2%}"] = model["mnist_test_accuracy"] >= TARGETS["mnist_accuracy"]
    checks[f"all artifacts <= {TARGETS['artifacts_mb']:.0f} MB"] = after["artifacts_mb"] <= TARGETS["artifacts_mb"]
    if after["training_wall_s"] is not None:
        checks[f"training <= {TARGETS['training_wall_s']:.0f} s"] = after["training_wall_s"] <= TARGETS["training_wall_s"]
    return checks


def main(argv: list[str] | None = None) -> int:
    parser = data_arguments(argparse.ArgumentParser(prog="bench.styles", description=__doc__.split("\n\n")[0]))
    parser.add_argument("--before", type=Path, help="a models folder of the recipe before the styles, for comparison")
    parser.add_argument("--per-style", type=int, default=300, help="test drawings per style")
    parser.add_argument("--traced", type=int, default=1000, help="MNIST test digits traced into strokes")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results-styles.json")
    args = parser.parse_args(argv)

    if not find_manifests(args.models_dir):
        print(f"bench.styles: no models in {args.models_dir}; run digits-train (or make train) first", file=sys.stderr)
        return 2
    os.environ["MNIST_DIR"] = str(args.mnist_dir)  # where tests.strokes reads MNIST
    sets = {style: (x, np.full(len(x), digit)) for style, (x, digit) in styled_test_digits(args.per_style).items()}
    sets[TRACED] = drawn_test_digits(args.traced)
    results = {"machine": machine(numeric_threads=os.cpu_count() or 1), "per_style": args.per_style, "traced": args.traced,
               "targets": TARGETS, "target_model": TARGET_MODEL, "after": measure_folder(args.models_dir, sets)}
    if args.before:
        results["before"] = measure_folder(args.before, sets)
    results["verdicts"] = verdicts(results["after"])
    for check, met in results["verdicts"].items():
        print(f"{'PASS' if met else 'MISS'} {TARGET_MODEL}: {check}", file=sys.stderr)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
