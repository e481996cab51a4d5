"""The weights of a picture's reading (clients.numbers.RUN_FEATURES, BOUNDARY_FEATURES, in that order).

Learnt by bench/learn_number_weights.py: 585 numbers of MNIST training digits composed as
bench.numbers composes them (seeds 201,202, 15 per length and gap kind), read by the svm of the full
models; averaged structured perceptron, 10 epochs at rate 0.05, from the drawings' hand-set weights.
"""

RUN = (1.0, 0.155, -8.002, -0.127, -0.164, -3.0, -5.773, -0.665, 0.092)
BOUNDARY = (-0.198, -5.829)
