"""What the trainer builds: every model as data (which estimators, which parameters).

Every model is a scikit-learn ``Pipeline`` that starts with ``DigitFeatures``
(deskewed pixels and stroke-direction histograms), so the saved artifact takes
raw 784-pixel images and the server needs to know nothing about features. The
ensemble reuses its fitted members and averages their probabilities.

Estimators are named, not imported: this table is read for the trainer's
flags and help, which then answer without loading scikit-learn
(``trainer.assembly`` builds the models from it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Step:
    name: str
    estimator: str  # a class of digitserve.estimators
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Recipe:
    kind: str
    probabilities: str
    # The steps after DigitFeatures, for a single model.
    steps: tuple[Step, ...] = ()
    # For an ensemble: member names and their weights in the soft vote.
    members: tuple[str, ...] = ()
    weights: tuple[float, ...] = ()
    # For an SVM: turned copies of each support vector (trainer.turns) for a second fit; 0: none.
    virtual_copies: int = 0
    # Share of the training digits held out to calibrate the probabilities and
    # learn the limits of "sure" (digitserve.confidence); 0: not calibrated.
    calibration_size: float = 0.0


RECIPES: dict[str, Recipe] = {
    "knn": Recipe(
        kind="knn",
        steps=(Step("projection", "Projection", {"pixel_components": 0, "gradient_components": 40}),
               Step("knn", "NearestNeighbours", {"n_neighbors": 6})),
        probabilities="inverse-distance-weighted vote of the 6 nearest training digits",
    ),
    "svm": Recipe(
        kind="svm",
        steps=(Step("projection", "Projection", {"pixel_components": 40, "gradient_components": 40}),
               Step("svm", "KernelSVM", {"C": 5.0, "gamma": "scale"})),
        virtual_copies=4,
        probabilities="softmax of soft one-vs-one votes, temperature fitted on held-out training digits",
    ),
    "rf": Recipe(
        kind="rf",
        steps=(Step("rf", "PackedForest", {"n_estimators": 50}),),
        probabilities="mean of the 50 trees' leaf class frequencies",
    ),
    "ensemble": Recipe(
        kind="ensemble",
        members=("knn", "svm", "rf"),
        # Chosen on validation splits (50,000 training / 10,000 held-out training
        # digits): with the Gaussian-pooled stroke directions, 29,864 of 30,000 on
        # three splits, the best of nine weightings, against 29,846 for the SVM alone.
        weights=(1.0, 2.0, 1.0),
        calibration_size=0.1,
        probabilities="weighted mean of the members' probabilities (soft voting), temperature-scaled on "
                      "held-out training digits",
    ),
}

DEFAULT_MODELS = tuple(RECIPES)
