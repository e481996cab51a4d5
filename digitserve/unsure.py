"""Why a model doubts an answer: the words of ``Prediction.unsure_reason``.

Kept apart from digitserve.confidence (which needs scikit-learn) so that the
clients, which install only the contract's dependencies, can tell them apart.
"""

BLANK = "blank: almost no ink"
UNLIKE = "unlike any digit"
UNDECIDED = "low confidence"
REASONS = (BLANK, UNLIKE, UNDECIDED)  # most basic first; a reply gives the first that applies
