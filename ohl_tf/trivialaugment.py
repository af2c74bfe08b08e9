"""TrivialAugment (Müller & Hutter, "TrivialAugment: Tuning-free Yet State-of-the-Art Data
Augmentation", ICCV 2021), in its Wide form, on the Pillow-exact kernels, with stateless draws.

The reference is torchvision 0.29.1's `TrivialAugmentWide` (torchvision/transforms/autoaugment.py,
num_magnitude_bins=31) on PIL images: each image gets ONE operation drawn uniformly from 14,
  Identity, ShearX, ShearY, TranslateX, TranslateY, Rotate, Brightness, Color, Contrast,
  Sharpness, Posterize, Solarize, AutoContrast, Equalize,
at a magnitude drawn uniformly from its 31 bins k = 0..30, and the signed operations get a fair
random sign. The bins, `_augmentation_space(31)`:
  ShearX, ShearY           linspace(0, 0.99)   shear factor, signed
  TranslateX, TranslateY   linspace(0, 32)     pixels, truncated by int(), signed, at any size
  Rotate                   linspace(0, 135)    degrees (4.5 k), signed
  Brightness, Color,       linspace(0, 0.99)   ImageEnhance factor 1 + m, signed (1 - m or 1 + m)
  Contrast, Sharpness
  Posterize                8 - round(k / 5)    bits kept, 8..2
  Solarize                 linspace(255, 0)    threshold (255 - 8.5 k): pixels >= it invert
  Identity, AutoContrast, Equalize             no magnitude (no bin is used, no sign)
What torchvision's `_apply_op` calls on a PIL image, which this module gives byte for byte
(`tests/trivialaugment_test.py`), is:
  * ShearX, ShearY: `F.affine` about the top-left corner with the shear angle atan(m) in degrees,
    i.e. `Image.transform(AFFINE, NEAREST)` with (1, tan(a), 0, 0, 1, 0) and
    (1, 0, 0, sin(a) / cos(a), 1, 0), a = radians(degrees(atan(s m))): those float64
    coefficients here too (they differ from AutoAugment's plain m in the last bits at 9 and 12
    of the 31 bins; Pillow's 16.16 fixed point rounds them);
  * TranslateX, TranslateY: `F.affine(translate=[int(s m), 0])` about the centre, i.e. the
    coefficient -int(s m): a positive magnitude moves the content right (down);
  * Rotate: `Image.rotate(s m, NEAREST)` about the image centre (its 90-degree case transposes,
    which the affine replay of `pil_ops.rotate_matrix` equals);
  * Brightness, Color (`adjust_saturation`), Contrast, Sharpness: `ImageEnhance.X.enhance(1 + s m)`;
  * Posterize `ImageOps.posterize(bits)`; Solarize `ImageOps.solarize(255 - 8.5 k)`, whose
    comparison `i < threshold` with a half-integer threshold is the integer one at its ceiling;
  * AutoContrast, Equalize: the ImageOps functions.

Deviations from torchvision's TrivialAugmentWide:
  * The fill of the geometric operations is (128, 128, 128), that of every policy here
    (docs/search_space.md; AutoAugment's and RandAugment's too), so that the baselines differ
    in their operations only; torchvision's default `fill=None` is 0, black (`_parse_fill`).
    `TrivialAugmentWide(fill=[128, 128, 128])` on a PIL image gives these bytes.
  * torchvision's float magnitudes are float32 torch.linspace values, and torch computes them
    differently by CPU: its scalar kernel (`ATEN_CPU_CAPABILITY=default`) and its AVX2/AVX-512
    kernels differ by a float32 ulp at bins 19 and 25 of linspace(0, 0.99) and at TranslateX/Y
    bin 15, where AVX gives 15.999999 px, which int() makes 15, and the scalar kernel 16.0.
    Here the magnitudes are the scalar kernel's, on every machine (`_linspace`; bin 15 moves
    16 pixels, the exact value). Measured with torch 2.14.1 and Pillow 13, every operation, bin
    and sign (623 cases) on 256 CIFAR-10 images and on a 37x29 image: these bytes equal
    torchvision's under its scalar kernel in all 1246; under AVX-512 torchvision's bytes differ
    from its own scalar ones in 13 (TranslateX/Y bin 15, both signs; Brightness, Color and
    Contrast at bin 25, sign -1).
  * Translations are in pixels at any image size, as torchvision's (its RandAugment scales them,
    its TrivialAugmentWide does not): at 32x32, bin 30 moves the whole image out (all fill); at
    224x224 the largest shift is 14% of the side.
  * Images are uint8 RGB [B,H,W,3] only (torchvision also takes "L" images and tensors, whose
    tensor kernels round differently from Pillow); interpolation is NEAREST, torchvision's
    default, and nothing else.
  * Randomness is stateless (below) instead of torch's global generator; every image draws a
    bin and a sign, used only by the operations that have them (torchvision draws them only
    then): the same distribution.

Randomness is stateless: `sample_decisions` draws every image's operation, bin and sign from a
seed, `apply_decisions` applies them: every (operation, bin) is one operation of one compiled
`operations.OperationTable` (344 of them), and one `operations.apply_operations` call runs each
kernel once on the images that need it. `apply_trivialaugment` is the two in one: the same seed
and batch give the same bytes, eagerly, in a tf.function and in a tf.data map. The geometric
operations' source table has 310 rows (5 operations x 31 bins x 2 signs) per image size:
1.3 MB at 32x32, 62 MB at 224x224.

Example:
  >>> images = tf.zeros([8, 32, 32, 3], tf.uint8)
  >>> apply_trivialaugment(images, seed=[1, 2]).shape
  TensorShape([8, 32, 32, 3])
"""

import collections
import functools
import math

import numpy as np
import tensorflow as tf

from ohl_tf import operations

# torchvision's `_augmentation_space` order; the index is the operation id `sample_decisions` draws.
OPERATION_NAMES = ("Identity", "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate",
                   "Brightness", "Color", "Contrast", "Sharpness", "Posterize", "Solarize",
                   "AutoContrast", "Equalize")
NUM_OPERATIONS = len(OPERATION_NAMES)
NUM_MAGNITUDE_BINS = 31  # TrivialAugment Wide's (torchvision's default num_magnitude_bins)

SIGNED = frozenset((*operations.GEOMETRIC, *operations.ENHANCE))
UNBINNED = frozenset(("Identity", "AutoContrast", "Equalize"))


def _linspace(start, stop):
  """torch.linspace(start, stop, 31) as torch's scalar CPU kernel computes it, as Python floats.

  In float32: step = (stop - start) / 30, then start + step k below the middle bin and
  stop - step (30 - k) from it on (aten's linspace kernel; its vectorised variants differ by an
  ulp at a few bins, see the module docstring).
  """
  start, stop = np.float32(start), np.float32(stop)
  last = NUM_MAGNITUDE_BINS - 1
  step = (stop - start) / np.float32(last)
  return tuple(float(start + step * np.float32(k) if k < NUM_MAGNITUDE_BINS // 2
                     else stop - step * np.float32(last - k)) for k in range(NUM_MAGNITUDE_BINS))


# The magnitude of each bin, before the sign (torchvision 0.29.1 `_augmentation_space(31)`).
MAGNITUDES = {
    "ShearX": _linspace(0.0, 0.99),
    "ShearY": _linspace(0.0, 0.99),
    "TranslateX": _linspace(0.0, 32.0),
    "TranslateY": _linspace(0.0, 32.0),
    "Rotate": _linspace(0.0, 135.0),
    **{name: _linspace(0.0, 0.99) for name in operations.ENHANCE},
    # 8 - round(k / ((31 - 1) / 6)): no k / 5 is a tie, so numpy's rounding is torch's.
    "Posterize": tuple(int(8 - round(k / ((NUM_MAGNITUDE_BINS - 1) / 6)))
                       for k in range(NUM_MAGNITUDE_BINS)),
    "Solarize": _linspace(255.0, 0.0),
}
assert set(MAGNITUDES) == set(OPERATION_NAMES) - UNBINNED

Decisions = collections.namedtuple("Decisions", ["operations", "bins", "signs"])
Decisions.__doc__ = """What `sample_decisions` drew for a batch of B images.

Attributes:
  operations: int32 [B], indices into `OPERATION_NAMES`.
  bins: int32 [B], magnitude bins in [0, 31) (unused by Identity, AutoContrast and Equalize).
  signs: int32 [B], each -1 or +1 (used by the `SIGNED` operations only).
"""


def _shear_angle(shear):
  """The radians torchvision shears by for a factor: atan to degrees (its `F.affine` argument),
  back to radians inside `F.affine`; kept as these float64 steps, whose last bits Pillow sees."""
  return math.radians(math.degrees(math.atan(shear)))


def parameter(name, level, sign, width, height):
  """The parameter torchvision's `_apply_op` gives Pillow for operation `name` at bin `level`.

  The `parameter` function of `operations.compile_operations` for TrivialAugment's bins.

  Args:
    name: a name of `OPERATION_NAMES` with magnitudes (not Identity, AutoContrast, Equalize).
    level: the bin, int in [0, 31).
    sign: -1 or +1 (ignored by Posterize and Solarize).
    width: image width (unused: torchvision's magnitudes do not scale with the image).
    height: image height (unused).

  Returns:
    ShearX, ShearY: the shear coefficient; TranslateX/Y: the affine offset in pixels (minus the
    content's shift); Rotate: degrees; ImageEnhance operations: the factor; Posterize: bits kept;
    Solarize: the int threshold (pixels >= it invert).
  """
  del width, height
  magnitude = sign * MAGNITUDES[name][level]
  if name == "ShearX":
    return math.tan(_shear_angle(magnitude))
  if name == "ShearY":
    angle = _shear_angle(magnitude)
    return math.sin(angle) / math.cos(angle)  # torchvision's inverse matrix, not tan(angle)
  if name in ("TranslateX", "TranslateY"):
    return -int(magnitude)  # `F.affine(translate=[t, 0])` samples the input at x - t
  if name == "Rotate":
    return magnitude
  if name in operations.ENHANCE:
    return 1.0 + magnitude
  if name == "Posterize":
    return MAGNITUDES[name][level]
  return math.ceil(MAGNITUDES[name][level])  # Solarize: Pillow inverts i where not i < threshold


@functools.cache
def operation_table():
  """The `operations.OperationTable` of every operation at every bin (Identity first).

  Returns:
    An `operations.OperationTable` of 344 operations: Identity, AutoContrast and Equalize once,
    the 11 others at each of the 31 bins, as ("Name", bin).
  """
  binned = tuple((name, level) for name in OPERATION_NAMES
                 for level in ((0,) if name in UNBINNED else range(NUM_MAGNITUDE_BINS)))
  return operations.compile_operations(binned, parameter)


@functools.cache
def _operation_ids():
  """int32 [14 * 31]: the table id of (operation i, bin k) at i * 31 + k."""
  table = operation_table()
  return np.array([table.operations.index((name, 0 if name in UNBINNED else level))
                   for name in OPERATION_NAMES for level in range(NUM_MAGNITUDE_BINS)], np.int32)


def sample_decisions(num_images, seed):
  """Draws each image's operation (uniform over 14), bin (uniform over 31) and sign (fair).

  Args:
    num_images: int or scalar int tensor, the batch size B.
    seed: int [2] (or a Python int, read as [seed, 0]).

  Returns:
    `Decisions` of batch size B; the same seed and B give the same draws.
  """
  operation_seed, bin_seed, sign_seed = tf.unstack(
      tf.random.experimental.stateless_split(operations.check_seed(seed), 3))
  drawn = tf.random.stateless_uniform([num_images], operation_seed, minval=0,
                                      maxval=NUM_OPERATIONS, dtype=tf.int32)
  bins = tf.random.stateless_uniform([num_images], bin_seed, minval=0,
                                     maxval=NUM_MAGNITUDE_BINS, dtype=tf.int32)
  return Decisions(drawn, bins, operations.sample_signs([num_images], sign_seed))


def apply_decisions(images, decisions):
  """Applies drawn decisions, one operation per image, with Pillow's bytes.

  Args:
    images: uint8 [B,H,W,3], H, W >= 3.
    decisions: `Decisions` for B images (e.g. from `sample_decisions`).

  Returns:
    uint8 [B,H,W,3].
  """
  table = operation_table()
  images = operations.check_images(images, ranks=(4,))
  drawn = tf.cast(decisions.operations, tf.int32)
  bins = tf.cast(decisions.bins, tf.int32)
  ids = tf.gather(_operation_ids(), drawn * NUM_MAGNITUDE_BINS + bins)
  return operations.apply_operations(images, table, ids, tf.cast(decisions.signs, tf.int32))


def apply_trivialaugment(images, seed):
  """TrivialAugment Wide: one operation per image, uniform over 14, at a uniform bin of 31.

  Args:
    images: uint8 [B,H,W,3], H, W >= 3 (B, H, W may be unknown, e.g. in a tf.data map).
    seed: int [2] tensor or sequence (or a Python int, read as [seed, 0]); the same seed and
      batch give the same bytes.

  Returns:
    uint8 [B,H,W,3].

  Raises:
    ValueError: images not uint8 [B,H,W,3] of at least 3x3 pixels, or a seed that is not an
      integer [2].
  """
  images = operations.check_images(images, ranks=(4,))
  decisions = sample_decisions(tf.shape(images)[0], seed)
  return apply_decisions(images, decisions)
