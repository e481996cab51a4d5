"""The learnt weights of a number's reading, per medium.

In the order of clients.numbers.RUN_FEATURES and BOUNDARY_FEATURES. Written by
bench/learn_number_weights.py; "learnt_on" says from what.
"""

LEARNT = {'picture': {'run': (1.0, 0.265, -8.0, -0.241, -0.182, -3.0, -5.754, -0.336, -0.059, -0.792),
             'boundary': (-0.271, -5.844, 0.068),
             'learnt_on': '594 pictures of numbers of MNIST training digits composed as bench.numbers '
                          'composes them (seeds 201,202, 15 per length and gap kind), read by the svm of the '
                          'full models; averaged structured perceptron, 10 epochs at rate 0.05, from the '
                          'hand-set weights.'},
 'drawing': {'run': (1.0, 1.663, -7.979, -2.0, -1.0, -1.57, -1.405, -0.634, 0.0, -4.896),
             'boundary': (-0.129, -6.071, -0.297),
             'learnt_on': '1255 drawings of numbers of MNIST training digits composed as bench.numbers '
                          'composes them (seeds 201,202,203,204, 15 per length and gap kind), read by the '
                          'svm of the full models; averaged structured perceptron, 30 epochs at rate 0.2, '
                          'from the hand-set weights.'}}
