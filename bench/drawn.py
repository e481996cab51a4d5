"""python -m bench.drawn: how well each served model recognises digits drawn with a mouse.

MNIST test digits traced into mouse strokes at random sizes, places and
slants, rendered and preprocessed as the drawing window does
(``tests.strokes.drawn_test_digits``, the set the slow training test holds
above 95%), answered in-process by every model in a models folder. Results:
bench/results-drawn.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from bench.common import ROOT, data_arguments
from digitserve.artifacts import find_manifests, load_estimator, read_manifest
from tests.strokes import drawn_test_digits


def main(argv: list[str] | None = None) -> int:
    parser = data_arguments(argparse.ArgumentParser(prog="bench.drawn", description=__doc__.split("\n\n")[0]))
    parser.add_argument("--digits", type=int, default=1000, help="MNIST test digits to draw, from index 2,000")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results-drawn.json")
    args = parser.parse_args(argv)

    manifests = [read_manifest(p) for p in find_manifests(args.models_dir)]
    if not manifests:
        print(f"bench.drawn: no models in {args.models_dir}; run digits-train (or make train) first", file=sys.stderr)
        return 2
    os.environ["MNIST_DIR"] = str(args.mnist_dir)  # where tests.strokes reads MNIST
    vectors, labels = drawn_test_digits(args.digits)
    results = {"digits": args.digits, "first_test_index": 2000, "seed": 0, "models": {}}
    for manifest in manifests:
        model = load_estimator(args.models_dir, manifest)
        accuracy = float((model.predict_proba(vectors).argmax(axis=1) == labels).mean())
        results["models"][manifest.name] = {"accuracy": round(accuracy, 4), "version": manifest.version,
                                            "training_samples": manifest.training_samples}
        print(f"{manifest.name}: {accuracy:.1%} of {args.digits:,} drawn digits", file=sys.stderr)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
