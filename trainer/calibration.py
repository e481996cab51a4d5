"""Calibrating an ensemble on training digits its members have not seen.

The members are fitted a second time without a held-out share of the training
digits; the ensemble of those learns its temperature and its limits of
"sure" (``digitserve.confidence.Calibrated``) from the held-out share. The
served members, fitted on every digit, then vote through the same calibration:
a temperature and limits learnt with a tenth fewer digits fit them closely,
and no training digit is given up for it.
"""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import train_test_split

from digitserve.confidence import Calibrated, expected_calibration_error
from digitserve.contract import PIXELS
from digitserve.estimators import DigitFeatures
from trainer.assembly import build_voter, fit_tail
from trainer.nondigits import non_digits, printed, redrawn
from trainer.recipes import RECIPES, Recipe

# Drawn non-digits and training digits the judge of shapes learns from: on
# 60,000 digits about a minute of the training for one network (about two on
# one core for the four it now averages), and more of either added little.
NON_DIGITS = 6000
# And printed capitals (trainer.nondigits.PRINTED) on top, this share of that count: with none, the fonts'
# S, J, G, Q and Z passed for digits (bench.confidence: 83.7% of letters flagged, 34 of 208 not).
PRINTED_SHARE = 0.35
SHAPE_DIGITS = 20000
# Of those digits, this many are also drawn anew as the window sends them. The
# non-digits all come through the window's preprocessing; with no digits that
# do, the judge learns to doubt drawn digits for the way they are drawn.
REDRAWN = 5000


def fit_calibration(recipe: Recipe, features: DigitFeatures, train_f: np.ndarray, train_y: np.ndarray, seed: int,
                    jobs: int, judges: int) -> Calibrated:
    """A ``Calibrated`` fitted on held-out training digits (``train_f``: their features, already computed),
    its judge of shapes averaging ``judges`` networks."""
    fit_f, held_f, fit_y, held_y = train_test_split(train_f, train_y, test_size=recipe.calibration_size,
                                                    stratify=train_y, random_state=seed)
    tails = {name: fit_tail(RECIPES[name], seed, jobs, features, fit_f, fit_y) for name in recipe.members}
    count = min(NON_DIGITS, len(train_f) // 3)
    drawn = features.transform(np.vstack([non_digits(count, seed), printed(round(count * PRINTED_SHARE), seed)]))
    shape_digits = fit_f[np.random.default_rng(seed).permutation(len(fit_f))[:SHAPE_DIGITS]]
    pixels = shape_digits[:min(REDRAWN, len(train_f) // 10), :PIXELS]
    shape_digits = np.vstack([shape_digits, features.transform(redrawn(pixels, seed))])
    return Calibrated(build_voter(recipe, tails, fit_f[:100], fit_y[:100]), judges=judges, random_state=seed).fit(
        held_f, held_y, shape_digits, drawn, n_jobs=jobs)


def calibration_summary(calibration: Calibrated, raw: np.ndarray, calibrated: np.ndarray,
                        labels: np.ndarray) -> dict:
    """Temperature, limits and expected calibration error on the test digits before and after."""
    return {"temperature": round(calibration.temperature_, 4),
            "ece_before": round(expected_calibration_error(raw, labels), 5),
            "ece_after": round(expected_calibration_error(calibrated, labels), 5),
            "max_distance": [round(float(v), 4) for v in calibration.max_unlikeness_[:, 0]],
            "max_left_out": [round(float(v), 4) for v in calibration.max_unlikeness_[:, 1]],
            "max_rejection": [round(float(v), 4) for v in calibration.max_unlikeness_[:, 2]],
            "min_confidence": round(calibration.min_confidence_, 4),
            "min_inked_pixels": calibration.min_ink_}
