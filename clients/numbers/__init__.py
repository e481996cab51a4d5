"""Whole numbers: find the digits of a picture or a drawing, read them in one batch, choose by confidence.

A number is cut into *atoms* first: the strokes of a drawing, or for a
picture the connected components of its ink, where a component wide enough
to hold touching digits is also sliced (cuts.py). The candidate cuts are the low
points of the ink profile taken along the component's slant and, in a
component wider than a digit, the contacts (columns a way down passes
crossing at most one stroke); each cut then takes the way down through the
ink that crosses least (between two touching digits: their contact). A digit is then a run of neighbouring atoms
(a 5 and its detached bar, a 7 and its crossbar, the two halves of a cut).
Every plausible run is turned into the 784 pixels of the MNIST recipe
(clients/preprocessing.py, or Drawing.to_vector for strokes) and all of them
go to the model in one batch (candidates.py); the reading kept is the split of the atoms
into runs with the highest score (dynamic programming): the sum of
log-confidences with a little geometry on top, each feature weighted
(RUN_FEATURES, BOUNDARY_FEATURES; the weights are learnt, for pictures and
for drawings apart, on numbers of MNIST training digits,
learnt.py). The geometry (features.py):
the one-digit check (a candidate much wider,
for its height, than MNIST's digits of the class it is read as is probably
two touching digits; a much narrower one, a slice of one), cutting ink costs
per stroke crossed (parting a drawing's strokes, per pair that meet), digits
of one number are about as tall as each other (a drawing's by the rows its
strokes reach) and do not sit on top of each other, and digits written apart
leave a gap where a digit's own strokes overlap. That is recognition-driven
segmentation: the cut between two touching digits is where the model reads
two good digits. The model's doubt counts too: a candidate it answers as
unlike any digit (Prediction.doubt; two touching digits taken as one look
like no single digit to the ensemble's judge of shapes) pays for it.

The modules, in the order a reading goes through them: pictures.py and
drawings.py (the two media; a ring drawn round a picture's writing and its
ruled lines are taken out first, by clients/frames.py and clients/rules.py),
atoms.py (pieces of ink and their geometry), signs.py (points, commas,
colons, hyphens, a minus), layout.py (the one line of writing),
cuts.py and ones.py (a 1 taken out of the neighbour it runs along),
candidates.py, features.py, reading.py (the best split and the number it
makes), dates.py (a date's slashes, which the model reads as 1s), number.py
(what is returned), lines.py (a number per line of writing).
"""

from clients.numbers.atoms import Atom, box_of
from clients.numbers.candidates import Candidates, Classify
from clients.numbers.drawings import count_drawn, drawing_atoms, drawing_candidates, read_drawing
from clients.numbers.features import BOUNDARY_FEATURES, RUN_FEATURES, boundary_features, ink_shapes, run_features
from clients.numbers.lines import read_lines
from clients.numbers.number import (
    LOW_CONFIDENCE, MAX_DIGITS, Digit, Number, NumberError, SeveralLines, Sign, worth_a_look,
)
from clients.numbers.pictures import count_separate, picture_candidates, read_image
from clients.numbers.reading import (
    DRAWING_WEIGHTS, HAND_SET_WEIGHTS, PICTURE_WEIGHTS, Weights, best_reading, best_split, learnt_weights,
)

__all__ = [
    "Atom", "BOUNDARY_FEATURES", "Candidates", "Classify", "DRAWING_WEIGHTS", "Digit", "HAND_SET_WEIGHTS",
    "LOW_CONFIDENCE", "MAX_DIGITS", "Number", "NumberError", "PICTURE_WEIGHTS", "RUN_FEATURES", "SeveralLines",
    "Sign", "Weights", "best_reading", "best_split", "boundary_features", "box_of", "count_drawn", "count_separate",
    "drawing_atoms", "drawing_candidates", "ink_shapes", "learnt_weights", "picture_candidates", "read_drawing",
    "read_image", "read_lines", "run_features", "worth_a_look",
]
