"""The weights of a picture's reading (clients.numbers.RUN_FEATURES, BOUNDARY_FEATURES).

Written by bench/learn_number_weights.py; see there how they were learnt.
"""

RUN = (1.0, 0.0, -8.0, -2.0, -1.0, -3.0, -6.0, 0.0, 0.0)
BOUNDARY = (-0.8, -6.0)
