"""What the protocol fixes (protos/digitserve/v1/digits.proto), in one place for every side.

Images travel as MNIST has them: IMAGE_SIDE x IMAGE_SIDE pixels, row-major,
one uint8 per pixel (or one float32 as f32), and each answer holds one
probability per class, the digits 0 to 9 in order.
"""

IMAGE_SIDE = 28
PIXELS = IMAGE_SIDE * IMAGE_SIDE  # 784 values per image
CLASSES = tuple(range(10))  # the digits, in the order of every probabilities vector
F32_IMAGE_BYTES = 4 * PIXELS  # an image sent as f32: the largest encoding of one
DEFAULT_PORT = 50051  # where the server listens and clients look when a port is not given
