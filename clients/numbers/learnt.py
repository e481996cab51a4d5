"""The learnt weights of a number's reading, per medium.

In the order of RUN_FEATURES and BOUNDARY_FEATURES (clients/numbers/features.py). Written by
bench/learn_number_weights.py; "learnt_on" says from what.
"""

LEARNT = {'picture': {'run': (1.0, 0.114, -8.011, -0.224, -0.162, -3.0, -4.888, -1.158, 0.107, -1.994, -0.626, -0.457, -0.201),
             'boundary': (-0.347, -4.983, 0.129),
             'learnt_on': '2422 pictures of numbers of MNIST training digits composed as bench.numbers composes them '
                          '(seeds 201,202,203,204,205,206,207,208, 15 per length and gap kind), read by the ensemble '
                          'of the full models; averaged structured perceptron, 20 epochs at rate 0.1, from the '
                          'hand-set weights.'},
 'drawing': {'run': (1.0, 1.362, -8.09, -2.0, -1.0, -1.651, -1.289, -0.417, 0.0, -4.052, -0.831, -2.0, 0.0),
             'boundary': (-0.12, -6.089, -0.297),
             'learnt_on': '1254 drawings of numbers of MNIST training digits composed as bench.numbers composes them '
                          '(seeds 201,202,203,204, 15 per length and gap kind), read by the ensemble of the full '
                          'models; averaged structured perceptron, 30 epochs at rate 0.2, from the hand-set weights.'}}
