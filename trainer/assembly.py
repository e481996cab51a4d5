"""How the trainer builds the models of ``trainer.recipes``: scikit-learn pipelines, fitted or to fit."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.ensemble import VotingClassifier
from sklearn.frozen import FrozenEstimator
from sklearn.pipeline import Pipeline

from digitserve import estimators
from digitserve.confidence import Calibrated
from digitserve.contract import PIXELS
from digitserve.estimators import DigitFeatures
from trainer.recipes import Recipe
from trainer.turns import turned_copies


def build_tail(recipe: Recipe, seed: int, jobs: int) -> Pipeline:
    """The unfitted steps of a single model after the shared features."""
    steps = []
    for step in recipe.steps:
        estimator = getattr(estimators, step.estimator)
        params = dict(step.params)
        accepted = estimator().get_params()
        if "random_state" in accepted:
            params["random_state"] = seed
        if "n_jobs" in accepted:
            params["n_jobs"] = jobs
        steps.append((step.name, estimator(**params)))
    return Pipeline(steps)


def fit_tail(recipe: Recipe, seed: int, jobs: int, features: DigitFeatures, train_f: np.ndarray,
             train_y: np.ndarray) -> Pipeline:
    """A single model's steps after the features, fitted on ``train_f`` (the training digits' features).

    With ``recipe.virtual_copies``, the last step (an SVM) also learns from
    turned copies of its support vectors, passed through the same features
    and the steps before it.
    """
    tail = build_tail(recipe, seed, jobs)
    if not recipe.virtual_copies:
        return tail.fit(train_f, train_y)
    rng = np.random.default_rng(seed)

    def virtual(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # Called inside the fit of the last step, when the steps before it are already fitted.
        pixels = train_f[rows, :PIXELS] * 255  # the features begin with the deskewed pixels, 0..1
        copies = turned_copies(pixels, recipe.virtual_copies, rng)
        return tail[:-1].transform(features.transform(copies)), np.repeat(train_y[rows], recipe.virtual_copies)

    return tail.fit(train_f, train_y, **{f"{tail.steps[-1][0]}__virtual": virtual})


def assemble(features: DigitFeatures, tail: Any) -> Pipeline:
    """A servable model: the fitted features followed by a fitted tail."""
    return Pipeline([("features", features), ("model", tail)])


def build_voter(recipe: Recipe, tails: dict[str, Any], sample_x, sample_y) -> VotingClassifier:
    """Soft voting over the already fitted members; frozen, so nothing is refitted."""
    voter = VotingClassifier([(name, FrozenEstimator(tails[name])) for name in recipe.members],
                             voting="soft", weights=list(recipe.weights))
    return voter.fit(sample_x, sample_y)


def build_ensemble(recipe: Recipe, features: DigitFeatures, tails: dict[str, Any], sample_x, sample_y,
                   calibration: Calibrated | None = None) -> Pipeline:
    """The servable ensemble; with ``calibration`` (fitted on held-out digits) it votes through it."""
    voter = build_voter(recipe, tails, sample_x, sample_y)
    return assemble(features, voter if calibration is None else calibration.set_params(model=voter))
