"""How the trainer builds the models of ``trainer.recipes``: scikit-learn pipelines, fitted or to fit."""

from __future__ import annotations

from typing import Any

from sklearn.ensemble import VotingClassifier
from sklearn.frozen import FrozenEstimator
from sklearn.pipeline import Pipeline

from digitserve import estimators
from digitserve.confidence import Calibrated
from digitserve.estimators import DigitFeatures
from trainer.recipes import Recipe


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
