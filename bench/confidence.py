"""python -m bench.confidence: does the default model say when it is not sure?

Three kinds of input that are no digit, each made as a client would send it:
scribbles (random pen strokes) and capital letters A-Z (rendered from the
machine's fonts; their share is also given without I, O, S and Z, which are
written as 1, 0, 5 and 2 are), both preprocessed as the drawing window does, and near-blank
28x28 images (stray pixels, faint noise, a speck). It counts the share of each
that the model flags as unsure, the share of MNIST test digits flagged (and
how accurate the unflagged ones are), the share of the traced drawings of
digits flagged (``tests.strokes``, the set bench.drawn measures: digits as
the drawing window sends them should not be doubted much more than MNIST's), and the expected calibration error on
the MNIST test digits before and after temperature scaling. Results:
bench/results-confidence.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from threadpoolctl import threadpool_limits

from bench.common import ROOT, data_arguments, machine, mnist, model_manifest, percentiles, timed
from bench.process import ServerProcess
from bench.run import bench_model
from clients.preprocessing import to_mnist
from digitserve.artifacts import load_estimator
from digitserve.confidence import Calibrated, assess, expected_calibration_error
from digitserve.contract import IMAGE_SIDE, PIXELS
from tests.strokes import drawn_test_digits

FONT_FOLDERS = (Path("/usr/share/fonts"), Path("/usr/local/share/fonts"))
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
# Capitals written exactly as a digit is (1, 0, 5, 2): a model cannot doubt them without doubting those
# digits, so the letters' share is also given without them.
DIGIT_SHAPED = "IOSZ"
CANVAS = 200


def fonts(limit: int = 8) -> list[ImageFont.FreeTypeFont | ImageFont.ImageFont]:
    """Up to ``limit`` TrueType fonts of this machine, or Pillow's own font when it has none."""
    paths = sorted(p for folder in FONT_FOLDERS if folder.is_dir() for p in folder.rglob("*.ttf"))
    if not paths:
        return [ImageFont.load_default(size=140)]
    step = max(1, len(paths) // limit)
    return [ImageFont.truetype(str(p), 140) for p in paths[::step][:limit]]


def letters(font_limit: int = 8) -> tuple[np.ndarray, list[str]]:
    """Every capital letter in every chosen font, as the window would send it; and which letter each is."""
    vectors, names = [], []
    for font in fonts(font_limit):
        for letter in LETTERS:
            image = Image.new("L", (CANVAS, CANVAS), 255)
            ImageDraw.Draw(image).text((CANVAS / 2, CANVAS / 2), letter, fill=0, font=font, anchor="mm")
            vectors.append(to_mnist(image, "dark"))
            names.append(letter)
    return np.stack(vectors), names


def scribbles(n: int, seed: int = 1) -> np.ndarray:
    """Random strokes: 3 to 9 points joined at random, with a random pen, preprocessed as drawn."""
    rng = np.random.default_rng(seed)
    vectors = []
    for _ in range(n):
        image = Image.new("L", (CANVAS, CANVAS), 255)
        draw = ImageDraw.Draw(image)
        for _stroke in range(rng.integers(1, 4)):
            points = [tuple(p) for p in rng.uniform(20, CANVAS - 20, size=(rng.integers(3, 10), 2))]
            draw.line(points, fill=0, width=int(rng.integers(6, 18)), joint="curve")
        vectors.append(to_mnist(image, "dark"))
    return np.stack(vectors)


def near_blank(n: int, seed: int = 2) -> np.ndarray:
    """28x28 images with next to no ink: a few stray pixels, faint noise, or one small speck."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n, IMAGE_SIDE, IMAGE_SIDE), np.uint8)
    for image, kind in zip(images, rng.integers(0, 3, size=n)):
        if kind == 0:
            rows, cols = rng.integers(0, IMAGE_SIDE, size=(2, rng.integers(1, 6)))
            image[rows, cols] = rng.integers(60, 256, size=len(rows))
        elif kind == 1:
            image[:] = rng.integers(0, 40, size=(IMAGE_SIDE, IMAGE_SIDE))
        else:
            r, c = rng.integers(8, 19, size=2)
            image[r:r + 2, c:c + 2] = 255
    return images.reshape(n, PIXELS)


def main(argv: list[str] | None = None) -> int:
    parser = data_arguments(argparse.ArgumentParser(prog="bench.confidence", description=__doc__.split("\n\n")[0]))
    parser.add_argument("--model", default="ensemble", help="the calibrated model to measure (default: ensemble)")
    parser.add_argument("--digits", type=int, default=10000, help="MNIST test digits (default: all 10,000)")
    parser.add_argument("--samples", type=int, default=1000, help="scribbles and near-blank images each")
    parser.add_argument("--requests", type=int, default=500, help="single-image requests per round of 3")
    parser.add_argument("--drawn", type=int, default=1000, help="traced drawings of MNIST test digits")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results-confidence.json")
    args = parser.parse_args(argv)

    manifest = model_manifest(args.models_dir, args.model, "bench.confidence")
    if manifest is None:
        return 2
    model = load_estimator(args.models_dir, manifest)
    if not isinstance(model[-1], Calibrated):
        print(f"bench.confidence: {args.model} is not calibrated; retrain it", file=sys.stderr)
        return 2
    test_x, test_y = mnist(args.mnist_dir, "t10k", args.digits)
    probabilities, test_doubts = assess(model, test_x)
    raw = model[-1].model.predict_proba(model[:-1].transform(test_x))
    sure = np.array([not d for d in test_doubts])
    correct = probabilities.argmax(axis=1) == test_y
    letter_x, letter_names = letters()
    results = {
        "machine": machine(numeric_threads=1),
        "model": args.model, "version": manifest.version, "training_samples": manifest.training_samples,
        "calibration": {"temperature": round(model[-1].temperature_, 4),
                        "ece_before": round(expected_calibration_error(raw, test_y), 5),
                        "ece_after": round(expected_calibration_error(probabilities, test_y), 5),
                        "test_digits": len(test_y)},
        "mnist_test": {"digits": len(test_y), "flagged": round(1 - float(sure.mean()), 5),
                       "accuracy": round(float(correct.mean()), 5),
                       "accuracy_unflagged": round(float(correct[sure].mean()), 5),
                       "errors_flagged": round(float((~sure[~correct]).mean()) if (~correct).any() else 0.0, 4),
                       "reasons": dict(Counter(d for d in test_doubts if d))},
        "non_digits": {},
    }
    drawn_x, drawn_y = drawn_test_digits(args.drawn)
    drawn_p, drawn_doubts = assess(model, drawn_x)
    drawn_sure = np.array([not d for d in drawn_doubts])
    results["traced_drawings"] = {"digits": len(drawn_y), "flagged": round(1 - float(drawn_sure.mean()), 4),
                                  "accuracy": round(float((drawn_p.argmax(axis=1) == drawn_y).mean()), 4),
                                  "reasons": dict(Counter(d for d in drawn_doubts if d))}
    everything = []
    for name, images in (("scribbles", scribbles(args.samples)), ("letters", letter_x),
                         ("near_blank", near_blank(args.samples))):
        _, found = assess(model, images)
        everything += found
        share = float(np.mean([bool(d) for d in found]))
        results["non_digits"][name] = {"images": len(images), "flagged": round(share, 4),
                                       "reasons": dict(Counter(d for d in found if d))}
        if name == "letters":  # which letters pass for digits, in how many fonts
            results["non_digits"][name]["unflagged"] = dict(Counter(n for n, d in zip(letter_names, found)
                                                                    if not d))
            others = [bool(d) for n, d in zip(letter_names, found) if n not in DIGIT_SHAPED]
            results["non_digits"][name]["flagged_not_digit_shaped"] = round(float(np.mean(others)), 4)
        print(f"{name}: {share:.1%} of {len(images):,} flagged", file=sys.stderr)
    results["non_digits"]["all"] = {"images": len(everything),
                                    "flagged": round(float(np.mean([bool(d) for d in everything])), 4)}
    with threadpool_limits(1):  # as the server runs: what judging one image adds to answering it
        one = test_x[:1]

        def two_passes():  # as the server judged before: the answer, then features and neighbours again
            p = model.predict_proba(one)
            return p, model[-1].doubts(model[:-1].transform(one), p)

        results["single_image_ms"] = {
            "predict_proba": percentiles(timed(lambda: model.predict_proba(one), 300)),
            "answer_then_doubts": percentiles(timed(two_passes, 300)),
            "assess": percentiles(timed(lambda: assess(model, one), 300))}
        # Served: bench.run's single-image measurement, gRPC next to the in-process floor (predict_proba
        # alone), so that the judging the server adds shows as the gap between them.
        server = ServerProcess(args.models_dir, env={"DIGITS_NUMERIC_THREADS": "1"})
        try:
            served = bench_model(args.model, model, server, test_x, test_y,
                                 argparse.Namespace(rounds=3, requests=args.requests, concurrent_requests=150))
        finally:
            server.stop()
        results["served_single_image"] = {k: served["single"][k] for k in
                                          ("floor_ms", "grpc_ms", "overhead_p50_ms", "grpc_p50_spread_ms",
                                           "floor_p50_spread_ms")}
        print(f"single image: gRPC p50 {served['single']['grpc_ms']['p50']} ms, in-process "
              f"{served['single']['floor_ms']['p50']} ms", file=sys.stderr)
    c, m = results["calibration"], results["mnist_test"]
    print(f"traced drawings: {results['traced_drawings']['flagged']:.2%} flagged", file=sys.stderr)
    print(f"MNIST test: {m['flagged']:.2%} flagged; ECE {c['ece_before']:.2%} -> {c['ece_after']:.2%}",
          file=sys.stderr)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
