"""RandAugment (Cubuk et al., "RandAugment: Practical automated data augmentation with a reduced
search space", CVPR Workshops 2020) on the Pillow-exact kernels, with stateless draws.

The reading implemented is the paper's (section 3 and its Figure 2 code): K = 14 transformations,
  Identity, AutoContrast, Equalize, Rotate, Solarize, Color, Posterize,
  Contrast, Brightness, Sharpness, ShearX, ShearY, TranslateX, TranslateY,
each of the N layers picks one of them uniformly (1/K, with replacement, independently per image
and per layer) and always applies it, all at the one magnitude M on AutoAugment's integer scale
0..10. Geometric transformations get a fair random sign, as in both reference codes.

The level -> parameter mapping is AutoAugment's released code (tensorflow/models
research/autoaugment/augmentation_transforms.py, PARAMETER_MAX = 10), the one function that
`ohl_tf.autoaugment.operation_parameter` implements for the AutoAugment policies too; the
operations are compiled and run by `ohl_tf.operations` (`operations.compile_operations`,
`operations.apply_operations`), so their bytes are Pillow's. At M: Rotate int(3 M) degrees,
Shear 0.03 M, Translate int(M T / 10) pixels (T = 10 per 32 pixels; 150 per 331 for ImageNet),
Posterize 4 - int(0.4 M) bits, Solarize threshold 256 - int(25.6 M), Color, Contrast, Brightness
and Sharpness the factor 0.18 M + 0.1. Note that at M = 5, the CIFAR setting, that factor is 1.0:
the four ImageEnhance operations are the identity there, as in both reference codes.

Where the ImageNet reference code, tensorflow/tpu models/official/efficientnet/autoaugment.py
`distort_image_with_randaugment`, differs from the paper, the paper decides:
  * its list has 16 operations and no Identity: the 13 above plus Invert, Cutout (cutout_const 40)
    and SolarizeAdd (adds int(11 M) below 128); here neither is drawn (Cutout is the pipeline's
    own, after the augmentation, with --cutout);
  * it draws a probability in [0.2, 0.8] per operation but passes it only to functions that take
    a `prob` argument, and none of its classification operations does: every chosen operation
    applies, as here;
  * Posterize keeps int(0.4 M) bits and Solarize thresholds at int(25.6 M), both weaker as M
    grows; here, as in augmentation_transforms.py, every operation grows stronger with M;
  * Rotate (3 M degrees) and Translate (10 M pixels, translate_const 100 at any size) are floats
    there; here they are truncated to integers and translations scale with the image
    (`autoaugment.operation_parameter`): at 224 pixels and M = 9, 91 pixels instead of 90;
  * M is not bounded there (EfficientNet configurations go beyond 10); here M is in [0, 10],
    and at M = 10 Posterize keeps 1 bit, Pillow's minimum, not 0 (`_level`).
Images stay RGB with the fill colour (128, 128, 128), the tpu code's replace value.

Deviations from keras-cv's `RandAugment` (keras_cv/src/layers/preprocessing/rand_augment.py,
0.9.0), which --policy=randaugment used before:
  * keras-cv computes in float and its layers use TensorFlow resampling; here every operation is
    uint8 -> uint8 with Pillow's rounding (e.g. NEAREST affine transforms with Pillow's 16.16
    fixed point, ImageEnhance's float32 blend truncated);
  * keras-cv's list is 10 layers: AutoContrast, Equalization, Solarization (with an addition),
    RandomColorDegeneration, RandomContrast, RandomBrightness, RandomShear x/y and
    RandomTranslation x/y; no Rotate, Posterize or Sharpness, and no Identity, which it replaces
    by skipping each layer with probability 1 - rate (rate = 10/11);
  * keras-cv's magnitude is in [0, 1] (M / 10) and is the mean of a normal distribution
    (stddev 0.15, clipped to [0, 1]) sampled per image for Solarization, Color and the shears;
    Contrast, Brightness and Translation draw uniformly in [-M/10, M/10] around the identity;
    here the magnitude is M exactly, as in the paper;
  * keras-cv's shears reach a factor of 1.0 (here 0.3 at M = 10) and its shears and translations
    interpolate bilinearly and fill by reflection (here NEAREST with a grey fill);
  * keras-cv draws from its layers' stateful generators: not reproducible from a seed; here the
    draws are stateless functions of the seed.

Randomness is stateless: `sample_decisions` draws every image's N operations and signs from a
seed, `apply_decisions` applies them (one `apply_operations` per layer, each kernel once on the
images that need it). `apply_randaugment` is the two in one: the same seed and batch give the
same bytes, eagerly, in a tf.function and in a tf.data map.

Example:
  >>> images = tf.zeros([8, 32, 32, 3], tf.uint8)
  >>> apply_randaugment(images, num_layers=3, magnitude=5, seed=[1, 2]).shape
  TensorShape([8, 32, 32, 3])
"""

import collections

import numpy as np
import tensorflow as tf

from ohl_tf import autoaugment
from ohl_tf import operations

# The paper's Figure 2 list, in its order; the index is the operation id `sample_decisions` draws.
OPERATION_NAMES = ("Identity", "AutoContrast", "Equalize", "Rotate", "Solarize", "Color",
                   "Posterize", "Contrast", "Brightness", "Sharpness", "ShearX", "ShearY",
                   "TranslateX", "TranslateY")
NUM_OPERATIONS = len(OPERATION_NAMES)
MAX_MAGNITUDE = 10  # AutoAugment's PARAMETER_MAX: the paper's M uses the same integer scale

Decisions = collections.namedtuple("Decisions", ["operations", "signs"])
Decisions.__doc__ = """What `sample_decisions` drew for a batch of B images and N layers.

Attributes:
  operations: int32 [B, N], indices into `OPERATION_NAMES`, layer by layer.
  signs: int32 [B, N], each -1 or +1, the directions (used by geometric operations only).
"""


def _check_magnitude(magnitude):
  if (not isinstance(magnitude, (int, np.integer)) or isinstance(magnitude, bool)
      or not 0 <= magnitude <= MAX_MAGNITUDE):
    raise ValueError(f"magnitude must be an int in [0, {MAX_MAGNITUDE}]. "
                     f"Received: magnitude={magnitude!r}")
  return int(magnitude)


def _check_num_layers(num_layers):
  if (not isinstance(num_layers, (int, np.integer)) or isinstance(num_layers, bool)
      or num_layers < 0):
    raise ValueError(f"num_layers must be an int >= 0. Received: num_layers={num_layers!r}")
  return int(num_layers)


def _level(name, magnitude):
  """The AutoAugment level of operation `name` at magnitude M.

  Posterize stops at level 9 (1 bit): level 10 would keep 0 bits, a black image, which
  augmentation_transforms.py's old Pillow allowed and Pillow >= 9 refuses (bits in 1..8).
  """
  if name == "Identity":
    return 0
  return min(magnitude, MAX_MAGNITUDE - 1) if name == "Posterize" else magnitude


def operation_table(magnitude, translate_policy="cifar10"):
  """The `operations.OperationTable` of the 14 operations at `magnitude`, ids as listed.

  Args:
    magnitude: int M in [0, 10].
    translate_policy: one of `autoaugment.POLICY_NAMES`, whose translation range applies:
      "imagenet" 150 pixels per 331, otherwise 10 per 32 (see `autoaugment.policy_for_dataset`).

  Returns:
    An `operations.OperationTable` whose operation i is `OPERATION_NAMES[i]` at `magnitude`.
  """
  magnitude = _check_magnitude(magnitude)
  # No two are the same (name, level), so ids are `OPERATION_NAMES` indices.
  listed = tuple((name, _level(name, magnitude)) for name in OPERATION_NAMES)
  table = operations.compile_operations(listed, autoaugment.level_parameter(translate_policy))
  assert table.operations == listed, table.operations
  return table


def sample_decisions(num_images, num_layers, seed):
  """Draws each image's N operations (uniform over the 14) and signs (fair), statelessly.

  Args:
    num_images: int or scalar int tensor, the batch size B.
    num_layers: int N >= 0.
    seed: int [2] (or a Python int, read as [seed, 0]).

  Returns:
    `Decisions` of shape [B, N]; the same seed, B and N give the same draws.
  """
  num_layers = _check_num_layers(num_layers)
  operation_seed, sign_seed = tf.unstack(
      tf.random.experimental.stateless_split(operations.check_seed(seed), 2))
  shape = tf.stack([num_images, num_layers])
  drawn = tf.random.stateless_uniform(shape, operation_seed, minval=0, maxval=NUM_OPERATIONS,
                                      dtype=tf.int32)
  return Decisions(drawn, operations.sample_signs(shape, sign_seed))


def apply_decisions(images, decisions, magnitude, translate_policy="cifar10"):
  """Applies drawn decisions, layer by layer, with Pillow's bytes.

  Args:
    images: uint8 [B,H,W,3], H, W >= 3.
    decisions: `Decisions` for B images with a static number of layers N.
    magnitude: int M in [0, 10].
    translate_policy: see `operation_table`.

  Returns:
    uint8 [B,H,W,3].
  """
  table = operation_table(magnitude, translate_policy)
  images = operations.check_images(images, ranks=(4,))
  ids = tf.cast(decisions.operations, tf.int32)
  signs = tf.cast(decisions.signs, tf.int32)
  num_layers = ids.shape[1]
  if num_layers is None:
    raise ValueError("decisions must have a static number of layers. "
                     f"Received: decisions.operations.shape={ids.shape}")
  for layer in range(num_layers):
    images = operations.apply_operations(images, table, ids[:, layer], signs[:, layer])
  return images


def apply_randaugment(images, num_layers, magnitude, seed, translate_policy="cifar10"):
  """RandAugment: N operations per image, each uniform over the 14, all at magnitude M.

  Args:
    images: uint8 [B,H,W,3], H, W >= 3 (B, H, W may be unknown, e.g. in a tf.data map).
    num_layers: int N >= 0 (the paper's CIFAR-10 WRN-28-10: 3; ImageNet ResNet-50: 2).
    magnitude: int M in [0, 10] (CIFAR-10 WRN-28-10: 5; ImageNet ResNet-50: 9).
    seed: int [2] tensor or sequence (or a Python int, read as [seed, 0]); the same seed and
      batch give the same bytes.
    translate_policy: see `operation_table`.

  Returns:
    uint8 [B,H,W,3].

  Raises:
    ValueError: num_layers or magnitude out of range, an unknown translate_policy, images not
      uint8 [B,H,W,3] of at least 3x3 pixels, or a seed that is not an integer [2].
  """
  operation_table(magnitude, translate_policy)  # checks both before anything is drawn
  images = operations.check_images(images, ranks=(4,))
  decisions = sample_decisions(tf.shape(images)[0], num_layers, seed)
  return apply_decisions(images, decisions, magnitude, translate_policy)
