"""python -m bench.estimators: our estimators against the stock scikit-learn objects they stand in for.

Every estimator of ``digitserve.estimators`` that re-derives scikit-learn's
inference is fitted on the same training digits as the stock object it
replaces, and both answer the same test digits: one image at a time (the
drawing window, a single request) and 1,000 at a time (a stream chunk). The
stock objects run under ``sklearn.config_context(assume_finite=True,
skip_parameter_validation=True)``, their fastest supported setting; one
numeric thread for both, as the server runs. Rounds alternate ours and
stock so both see the same machine noise; medians of the rounds are kept.

The rule applied: where stock scikit-learn is within ``PER_IMAGE_MS`` per
image and reaches ``BATCH_RATIO`` of our batch rate, the stock object is
served and ours goes. Results: bench/results-estimators.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import sklearn
from sklearn.compose import ColumnTransformer
from sklearn.decomposition import PCA
from sklearn.ensemble import RandomForestClassifier, VotingClassifier
from sklearn.frozen import FrozenEstimator
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.svm import SVC
from threadpoolctl import threadpool_limits

from bench.common import ROOT, data_arguments, machine, mnist, timed
from digitserve.estimators import DigitFeatures, KernelSVM, NearestNeighbours, PackedForest, Projection
from trainer.recipes import RECIPES

PER_IMAGE_MS = 0.2
BATCH_RATIO = 0.9
BATCH = 1000


def stock_projection(ours: Projection, features: np.ndarray) -> ColumnTransformer:
    """PCA per part in a ColumnTransformer, weighted by the scale ours fitted: the same numbers."""
    parts = [(name, PCA(k, random_state=ours.random_state), columns, 1 / np.sqrt(
        PCA(k, random_state=ours.random_state).fit(features[:, columns]).explained_variance_.sum()))
        for name, (columns, k) in zip(("pixels", "gradients"), ours._parts()) if k]
    return ColumnTransformer([(name, pca, columns) for name, pca, columns, _ in parts],
                             transformer_weights={name: w for name, _, _, w in parts}).fit(features)


class StockKernelSVM(KernelSVM):
    """Our calibrated votes on top of libsvm's own decision values (the stock inference)."""

    def _pack(self, svc: SVC) -> None:
        super()._pack(svc)
        svc.decision_function_shape = "ovo"
        self.svc_ = svc

    def decision_function(self, X) -> np.ndarray:
        return self.svc_.decision_function(X)


def soft_vote(members, weights):
    """The weighted mean of the members' probabilities in numpy: what a hand-written voter costs."""
    weights = np.asarray(weights, float) / np.sum(weights)

    def predict_proba(X):
        return sum(w * m.predict_proba(X) for m, w in zip(members, weights))
    return predict_proba


def fit_pairs(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, jobs: int) -> dict[str, dict]:
    """Per estimator: ours, the stock object, what it is, and the test inputs it sees when served."""
    features = DigitFeatures().fit(train_x)
    f, test_f = features.transform(train_x), features.transform(test_x)
    params = {name: {s.name: s.params for s in RECIPES[name].steps} for name in ("knn", "svm", "rf")}
    pairs: dict[str, dict] = {}
    tails: dict[str, tuple] = {}
    for name in ("knn", "svm"):
        projection = Projection(**params[name]["projection"]).fit(f)
        stock = stock_projection(projection, f)
        pairs[f"{name} projection"] = dict(ours=projection, stock=stock, inputs=test_f,
                                           what="ColumnTransformer of a PCA per part, weighted")
        p = projection.transform(f)
        if name == "knn":
            k = params["knn"]["knn"]["n_neighbors"]
            model = dict(ours=NearestNeighbours(k).fit(p, train_y),
                         stock=KNeighborsClassifier(k, weights="distance", algorithm="brute").fit(p, train_y),
                         what=f"KNeighborsClassifier({k}, weights='distance', algorithm='brute')")
        else:
            model = dict(ours=KernelSVM(**params["svm"]["svm"]).fit(p, train_y),
                         stock=StockKernelSVM(**params["svm"]["svm"]).fit(p, train_y),
                         what="SVC.decision_function (ovo) under the same calibrated votes")
        pairs[name] = {**model, "inputs": projection.transform(test_f)}
        tails[name] = (Pipeline([("projection", projection), (name, model["ours"])]),
                       Pipeline([("projection", stock), (name, model["stock"])]))
    n_trees = params["rf"]["rf"]["n_estimators"]
    forest = RandomForestClassifier(n_trees, random_state=0, n_jobs=jobs).fit(f, train_y)
    forest.n_jobs = None  # one call, one thread, as the server's numeric limit intends
    pairs["rf"] = dict(ours=PackedForest(n_trees, random_state=0, n_jobs=jobs).fit(f, train_y), stock=forest,
                       inputs=test_f, what=f"RandomForestClassifier({n_trees})")
    names, weights = RECIPES["ensemble"].members, RECIPES["ensemble"].weights
    members = [tails[m][0] if m in tails else pairs[m]["ours"] for m in names]
    voting = VotingClassifier([(m, FrozenEstimator(t)) for m, t in zip(names, members)],
                              voting="soft", weights=list(weights)).fit(f[:100], train_y[:100])
    pairs["ensemble vote"] = dict(ours=soft_vote(members, weights), stock=voting, inputs=test_f,
                                  ours_what="weighted mean of the members' probabilities in numpy",
                                  what="VotingClassifier(voting='soft') over the same fitted members")
    return pairs


def proba(model):
    """The call to time: ``predict_proba``, ``transform`` for a projection, or a plain function."""
    for method in ("predict_proba", "transform"):
        if hasattr(model, method):
            return getattr(model, method)
    return model


def measure(ours, stock, inputs: np.ndarray, rounds: int, singles: int) -> dict:
    """Per-image p50 and 1,000-image batch rate of both, in alternating rounds."""
    calls = {"ours": proba(ours), "stock": proba(stock)}
    figures = {who: {"single_ms": [], "batch_images_per_s": []} for who in calls}
    batch = inputs[:BATCH]
    for _ in range(rounds):
        for who, call in calls.items():
            with sklearn.config_context(assume_finite=who == "stock", skip_parameter_validation=who == "stock"):
                call(inputs[:1])
                it = iter(range(10**9))
                single = timed(lambda: call(inputs[next(it) % len(inputs)][None]), singles)
                figures[who]["single_ms"].append(float(np.median(single)) * 1000)
                figures[who]["batch_images_per_s"].append(len(batch) / min(timed(lambda: call(batch), 2)))
    result = {who: {key: round(float(np.median(v)), 4 if key == "single_ms" else 0) for key, v in f.items()}
              for who, f in figures.items()}
    with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
        a, b = np.asarray(calls["ours"](batch), float), np.asarray(calls["stock"](batch), float)
    if a.ndim == 2 and a.shape[1] == 10:
        result["max_abs_probability_difference"] = float(np.abs(a - b).max())
        result["same_digit"] = float((a.argmax(axis=1) == b.argmax(axis=1)).mean())
    else:
        result["max_abs_difference"] = float(np.abs(a - b).max())
    s, o = result["stock"], result["ours"]
    result["stock_extra_ms_per_image"] = round(s["single_ms"] - o["single_ms"], 4)
    result["stock_batch_ratio"] = round(s["batch_images_per_s"] / o["batch_images_per_s"], 3)
    result["serve_stock"] = bool(result["stock_extra_ms_per_image"] <= PER_IMAGE_MS
                                 and result["stock_batch_ratio"] >= BATCH_RATIO)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = data_arguments(argparse.ArgumentParser(prog="bench.estimators", description=__doc__.split("\n\n")[0]))
    parser.add_argument("--train", type=int, default=10000, help="training images (MNIST's first N)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--singles", type=int, default=200, help="single-image calls per round")
    parser.add_argument("--jobs", type=int, default=2, help="threads for fitting only")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results-estimators.json")
    args = parser.parse_args(argv)

    train_x, train_y = mnist(args.mnist_dir, "train", args.train)
    test_x, _ = mnist(args.mnist_dir, "t10k", BATCH)
    results = {"machine": machine(1), "train_images": args.train, "batch": BATCH,
               "rule": {"stock_extra_ms_per_image_at_most": PER_IMAGE_MS, "stock_batch_ratio_at_least": BATCH_RATIO},
               "scikit-learn": sklearn.__version__, "estimators": {}}
    started = time.perf_counter()
    print(f"bench.estimators: fitting on {args.train:,} training digits ...", file=sys.stderr)
    pairs = fit_pairs(train_x, train_y, test_x, args.jobs)
    results["fit_s"] = round(time.perf_counter() - started, 1)
    with threadpool_limits(1):
        for name, pair in pairs.items():
            print(f"bench.estimators: {name} ...", file=sys.stderr)
            row = measure(pair["ours"], pair["stock"], pair["inputs"], args.rounds, args.singles)
            row["stock"]["what"] = pair["what"]
            row["ours"]["what"] = pair.get("ours_what", type(pair["ours"]).__name__)
            results["estimators"][name] = row
    results["machine"]["load_after"] = [round(v, 2) for v in os.getloadavg()]
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    return 0


def table(results: dict) -> str:
    lines = ["| estimator | ours 1 image | stock 1 image | ours 1,000 batch | stock 1,000 batch | serve |",
             "|---|---|---|---|---|---|"]
    for name, r in results["estimators"].items():
        o, s = r["ours"], r["stock"]
        lines.append(f"| {name} | {o['single_ms']:.3f} ms | {s['single_ms']:.3f} ms (+{r['stock_extra_ms_per_image']:.3f}) "
                     f"| {o['batch_images_per_s']:,.0f} img/s | {s['batch_images_per_s']:,.0f} img/s "
                     f"({r['stock_batch_ratio']:.0%}) | {'stock' if r['serve_stock'] else 'ours'} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
