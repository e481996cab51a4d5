"""The learnt weights of a number's reading, per medium.

In the order of clients.numbers.RUN_FEATURES and BOUNDARY_FEATURES. Written by
bench/learn_number_weights.py; "learnt_on" says from what.
"""

LEARNT = {'picture': {'run': (1.0, 0.218, -8.0, -0.176, -0.202, -3.0, -5.772, -0.476, -0.037, -0.77),
             'boundary': (-0.229, -5.849, 0.064),
             'learnt_on': '587 pictures of numbers of MNIST training digits composed as bench.numbers '
                          'composes them (seeds 201,202, 15 per length and gap kind), read by the svm of the '
                          'full models; averaged structured perceptron, 10 epochs at rate 0.05, from the '
                          'hand-set weights.'},
 'drawing': {'run': (1.0, 1.844, -7.967, -2.0, -1.0, -1.45, -1.303, -0.757, 0.0, -5.187),
             'boundary': (-0.169, -6.114, -0.331),
             'learnt_on': '1255 drawings of numbers of MNIST training digits composed as bench.numbers '
                          'composes them (seeds 201,202,203,204, 15 per length and gap kind), read by the '
                          'svm of the full models; averaged structured perceptron, 30 epochs at rate 0.2, '
                          'from the hand-set weights.'}}
