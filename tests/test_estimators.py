"""Our estimators give the answers of the scikit-learn objects they stand in for, on MNIST test digits.

Each is fitted on the same 1,200 training digits as its stock counterpart and
both answer 500 test digits. Tolerances: 1e-4 on projections and probabilities
computed in float32 where scikit-learn uses float64; 1e-3 on SVM decision
values (a float32 kernel against libsvm's float64), 1e-2 once its support
vectors are stored as float16; 1e-3 on forest probabilities (leaf
frequencies are stored as float16). Neighbours and leaves must be identical.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.ensemble import RandomForestClassifier
from sklearn.neighbors import KNeighborsClassifier
from sklearn.svm import SVC

from digitserve import artifacts
from digitserve.artifacts import ArtifactError, FORMAT_VERSION, Publication, load_estimator, read_manifest
from digitserve.confidence import Calibrated
from digitserve.estimators import DigitFeatures, KernelSVM, NearestNeighbours, PackedForest, Projection, _softmax
from digitserve.idx import read_idx
from trainer.assembly import assemble, build_ensemble, build_tail, build_voter
from trainer.recipes import RECIPES, Recipe

TRAIN, TEST = 1200, 500


@pytest.fixture(scope="module")
def digits(mnist_dir):
    """Features of 1,200 training and 500 test digits, with their labels."""
    train_x = read_idx(mnist_dir / "train-images-idx3-ubyte.gz").reshape(-1, 784)[:TRAIN]
    test_x = read_idx(mnist_dir / "t10k-images-idx3-ubyte.gz").reshape(-1, 784)[:TEST]
    features = DigitFeatures().fit(train_x)
    train_y = read_idx(mnist_dir / "train-labels-idx1-ubyte.gz")[:TRAIN]
    return features, features.transform(train_x), train_y, features.transform(test_x), test_x


@pytest.fixture(scope="module")
def projected(digits):
    _, train_f, _, test_f, _ = digits
    projection = Projection(40, 40).fit(train_f)
    return projection, projection.transform(train_f), projection.transform(test_f)


def test_projection_is_a_weighted_pca_of_each_part(digits):
    _, train_f, _, test_f, _ = digits
    projection = Projection(30, 20).fit(train_f)
    expected = []
    for columns, k in ((slice(0, 784), 30), (slice(784, None), 20)):
        pca = PCA(k, random_state=0).fit(train_f[:, columns])
        expected.append(pca.transform(test_f[:, columns]) / np.sqrt(pca.explained_variance_.sum()))
    np.testing.assert_allclose(projection.transform(test_f), np.hstack(expected), atol=1e-4)
    only_gradients = Projection(0, 20).fit(train_f).transform(test_f)
    np.testing.assert_allclose(only_gradients, expected[1][:, :20], atol=1e-4)


@pytest.mark.parametrize("batch, calls", [(1, 30), (5, 20), (100, 2)], ids=["one", "small batch", "large batch"])
def test_nearest_neighbours_match_kneighbors_classifier(projected, digits, batch, calls):
    _, train_p, test_p = projected
    train_y = digits[2]
    # The served model is the unpickled one, whose points were stored as float16.
    ours = pickle.loads(pickle.dumps(NearestNeighbours(6, small_batch=32).fit(train_p, train_y)))
    stock = KNeighborsClassifier(6, weights="distance", algorithm="brute").fit(ours.points_, train_y)
    for start in range(0, calls * batch, batch):
        query = test_p[start:start + batch]
        dist, idx = ours.kneighbors(query)
        stock_dist, stock_idx = stock.kneighbors(query)
        np.testing.assert_array_equal(idx, stock_idx)
        np.testing.assert_allclose(dist, stock_dist, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(ours.predict_proba(query), stock.predict_proba(query), atol=1e-4)


def test_kernel_svm_decisions_are_libsvms_and_probabilities_follow_from_them(projected, digits):
    _, train_p, test_p = projected
    train_y = digits[2]
    ours = KernelSVM(C=5.0, gamma="scale").fit(train_p, train_y)
    stock = SVC(C=5.0, gamma="scale", decision_function_shape="ovo").fit(train_p, train_y)
    decisions = stock.decision_function(test_p)
    np.testing.assert_allclose(ours.decision_function(test_p), decisions, atol=1e-3)
    # Everything after the kernel is the calibrated soft vote of the 45 pairwise decisions.
    won = 1 / (1 + np.exp(-ours.sharpness * decisions))
    pairs = [(i, j) for i in range(10) for j in range(i + 1, 10)]
    votes = np.zeros((len(test_p), 10))
    for p, (i, j) in enumerate(pairs):
        votes[:, i] += won[:, p]
        votes[:, j] += 1 - won[:, p]
    np.testing.assert_allclose(ours.predict_proba(test_p), _softmax(votes * ours.temperature_), atol=1e-4)
    # The soft-vote winner is libsvm's hard-vote winner nearly always.
    assert (ours.predict(test_p) == stock.predict(test_p)).mean() >= 0.99
    # The served model is the unpickled one, whose support vectors were stored as float16.
    served = pickle.loads(pickle.dumps(ours))
    np.testing.assert_allclose(served.decision_function(test_p), decisions, atol=1e-2)
    np.testing.assert_array_equal(served.predict(test_p), ours.predict(test_p))


@pytest.mark.parametrize("batch", [1, 500], ids=["one", "batch"])
def test_packed_forest_walks_every_tree_to_the_leaf_the_forest_reaches(digits, batch):
    _, train_f, train_y, test_f, _ = digits
    ours = PackedForest(20, random_state=3).fit(train_f, train_y)
    stock = RandomForestClassifier(20, random_state=3).fit(train_f, train_y)
    query = test_f[:batch]
    reached = ours.leaves(query)
    for k, tree in enumerate(stock.estimators_):
        np.testing.assert_allclose(ours.value_[reached[:, k]], tree.predict_proba(query), atol=1e-3)
    np.testing.assert_allclose(ours.predict_proba(query), stock.predict_proba(query), atol=1e-3)
    np.testing.assert_array_equal(ours.predict(query), stock.predict(query))


def test_the_ensemble_is_the_weighted_mean_of_its_unchanged_members(digits):
    features, train_f, train_y, _, test_x = digits
    tails = {name: build_tail(RECIPES[name], seed=0, jobs=1).fit(train_f, train_y) for name in ("knn", "svm", "rf")}
    recipe = RECIPES["ensemble"]
    before = {name: tail.predict_proba(features.transform(test_x)) for name, tail in tails.items()}
    ensemble = build_ensemble(recipe, features, tails, train_f[:300], train_y[:300])
    weights = np.asarray(recipe.weights) / sum(recipe.weights)
    expected = sum(w * before[name] for name, w in zip(recipe.members, weights))
    np.testing.assert_allclose(ensemble.predict_proba(test_x), expected, atol=1e-6)
    for name in recipe.members:  # frozen: the members were not refitted
        np.testing.assert_array_equal(assemble(features, tails[name]).predict_proba(test_x), before[name])


# What each class pickles in artifact format FORMAT_VERSION. A change here changes the format.
_FORMAT_2 = {
    DigitFeatures: {"n_features_in_"},
    Projection: {"pixel_components", "gradient_components", "random_state", "n_features_in_", "means_", "bases_"},
    NearestNeighbours: {"n_neighbors", "small_batch", "classes_", "labels_", "points_", "n_features_in_"},
    KernelSVM: {"C", "gamma", "sharpness", "calibration_size", "random_state", "classes_", "support_vectors_",
                "pair_weights_", "pair_first_", "pair_second_", "intercept_", "gamma_", "temperature_",
                "n_features_in_"},
    PackedForest: {"n_estimators", "max_features", "min_samples_leaf", "random_state", "n_jobs", "classes_",
                   "n_features_in_", "roots_", "children_", "feature_", "threshold_", "value_", "depth_"},
}
PICKLED = {
    2: _FORMAT_2,
    3: _FORMAT_2 | {Calibrated: {"model", "neighbours", "unlike_quantile", "undecided_quantile", "classes_",
                                 "n_features_in_", "temperature_", "max_unlikeness_", "min_confidence_",
                                 "min_ink_"}},
    4: _FORMAT_2 | {Calibrated: {"model", "neighbours", "shapes", "unlike_quantile", "undecided_quantile", "hidden",
                                 "random_state", "classes_", "n_features_in_", "shape_projection_", "rejecter_",
                                 "temperature_",
                                 "max_unlikeness_", "min_confidence_", "min_ink_"}},
    5: _FORMAT_2 | {Calibrated: {"model", "neighbours", "shapes", "unlike_quantiles", "undecided_quantile", "hidden",
                                 "random_state", "classes_", "n_features_in_", "shape_projection_", "rejecter_",
                                 "temperature_", "max_unlikeness_", "min_confidence_", "min_ink_"}},
    6: _FORMAT_2 | {Calibrated: {"model", "neighbours", "shapes", "unlike_quantiles", "undecided_quantile", "hidden",
                                 "judges", "random_state", "classes_", "n_features_in_", "shape_projection_",
                                 "rejecter_", "temperature_", "max_unlikeness_", "min_confidence_", "min_ink_"}},
}
PICKLED[7] = PICKLED[6]  # the same state; DigitFeatures computes other stroke features from it


def test_what_the_estimators_pickle_is_pinned_to_the_artifact_format(digits, projected):
    features, train_f, train_y, _, _ = digits
    _, train_p, _ = projected
    knn_only = Recipe(kind="ensemble", probabilities="", members=("knn",), weights=(1.0,))
    voter = build_voter(knn_only, {"knn": build_tail(RECIPES["knn"], seed=0, jobs=1).fit(train_f, train_y)},
                        train_f[:100], train_y[:100])
    fitted = [features, Projection(40, 40).fit(train_f), NearestNeighbours(6).fit(train_p, train_y),
              KernelSVM().fit(train_p, train_y), PackedForest(5).fit(train_f, train_y),
              Calibrated(voter, shapes="knn").fit(train_f[:300], train_y[:300], train_f[300:600],
                                                  np.random.default_rng(0).random((100, train_f.shape[1])))]
    assert FORMAT_VERSION in PICKLED, "a new artifact format: record what the classes pickle in it below"
    for estimator in fitted:
        stored = set(estimator.__getstate__()) - {"_sklearn_version"}
        assert stored == PICKLED[FORMAT_VERSION][type(estimator)], (
            f"{type(estimator).__name__} now pickles {sorted(stored)}: bump FORMAT_VERSION in "
            "digitserve/artifacts.py (older artifacts are then refused) and record the new state here")


def test_an_artifact_of_the_previous_format_is_refused_with_retrain_it(digits, tmp_path):
    features, train_f, train_y, _, test_x = digits
    model = assemble(features, build_tail(RECIPES["rf"], seed=0, jobs=1).fit(train_f, train_y))
    with Publication(tmp_path) as publication:
        publication.stage_model("rf", "rf", model, training_samples=TRAIN, probabilities="leaf frequencies")
        publication.publish()
    path = tmp_path / "rf.manifest.json"
    assert load_estimator(tmp_path, read_manifest(path)).predict_proba(test_x[:3]).shape == (3, 10)

    previous = FORMAT_VERSION - 1
    path.write_text(path.read_text().replace(f'"format": {FORMAT_VERSION}', f'"format": {previous}'))
    with pytest.raises(ArtifactError) as refused:
        read_manifest(path)
    message = str(refused.value)
    assert str(path) in message and "retrain it" in message
    assert f"format {previous}" in message and f"format {FORMAT_VERSION}" in message
    assert artifacts.find_manifests(tmp_path) == [path]  # refused, not deleted
