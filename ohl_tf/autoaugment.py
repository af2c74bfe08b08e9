"""AutoAugment's published policies (Cubuk et al., CVPR 2019) as Pillow-exact TensorFlow ops.

A policy is 25 sub-policies of two operations (name, probability, level). Each image gets one
sub-policy, chosen uniformly; its first operation is applied with its probability, then its second
with its own, independently (paper section 3). The operations are compiled by `ohl_tf.operations`
and run on `pil_ops`' kernels, so they give Pillow's bytes, Pillow being what the released
AutoAugment code calls.

The policies, as published in the paper's appendix (transcribed in tensorflow/models
official/vision/ops/augment.py, `AutoAugment.policy_reduced_cifar10`, `policy_reduced_imagenet`,
`policy_svhn`; the same in pytorch/vision torchvision/transforms/autoaugment.py):
  * "cifar10": found on reduced CIFAR-10; the paper trains CIFAR-100 with it too (section 4.1);
  * "imagenet": found on reduced ImageNet (section 4.2); five sub-policies occur twice in it, as
    published (the paper concatenates the five best policies of five sub-policies);
  * "svhn": found on reduced SVHN (section 4.1).
The research code's `good_policies()` (tensorflow/models research/autoaugment/policies.py) is a
different list: 95 CIFAR sub-policies, some with Cutout; the paper's 25 are used here.

Levels 0..9 become parameters as in the code released with the paper, tensorflow/models
research/autoaugment/augmentation_transforms.py (PARAMETER_MAX = 10; float_parameter(l, m) =
l * m / 10, int_parameter(l, m) = int(l * m / 10)), with a random sign only where it draws one:
  ShearX/ShearY   s * l * 0.3 / 10          affine (1, v, 0, 0, 1, 0) / (1, 0, 0, v, 1, 0)
  TranslateX/Y    s * int(l * T / 10) px    T = 10 on 32 px images (the reference's constant),
                                            scaled to 10 W / 32; ImageNet: T = 150 W / 331
  Rotate          s * int(l * 30 / 10) deg  Image.rotate, NEAREST
  Posterize       4 - int(l * 4 / 10) bits  ImageOps.posterize
  Solarize        256 - int(l * 256 / 10)   ImageOps.solarize threshold
  Color, Contrast, Brightness, Sharpness    ImageEnhance factor l * 1.8 / 10 + 0.1 (no sign)
  AutoContrast, Equalize, Invert            the ImageOps function; the level is ignored
The released code, not the paper's appendix table of ranges, decides where they differ: Posterize
keeps 1..4 bits (the table says [4, 8], which torchvision follows), and level 5 of an ImageEnhance
operation is the identity (factor 1.0; e.g. CIFAR-10 sub-policy 9's Sharpness).
Deviations from that code, all following docs/search_space.md: images stay RGB with the fill colour
(128, 128, 128), where the reference works in RGBA and leaves transparent pixels that its
`pil_unwrap` sets to the dataset mean (or that an ImageOps call in between turns black); and
translations scale with the image size (the reference is fixed to 32x32).

Randomness is stateless: `sample_decisions` draws, from a seed, each image's sub-policy, whether
each operation applies and the signs; `apply_decisions` applies them deterministically, each kernel
once on the images that need it (`tf.dynamic_partition`/`tf.dynamic_stitch`), slot 1 then slot 2.
`apply_policy` is the two in one: the same seed gives the same bytes, eagerly, in a tf.function
and in a tf.data map. Underneath, `operations.compile_operations` turns the policy's distinct
(name, level) pairs into one table under this module's level -> parameter mapping
(`level_parameter`, which `ohl_tf.randaugment` uses too; `operation_table`) and
`operations.apply_operations` runs one per image.

Example:
  >>> images = tf.zeros([8, 32, 32, 3], tf.uint8)
  >>> apply_policy(images, policy_for_dataset("cifar10"), seed=[1, 2]).shape
  TensorShape([8, 32, 32, 3])
"""

import collections
import dataclasses
import functools

import numpy as np
import tensorflow as tf

from ohl_tf import operations

POLICY_NAMES = ("cifar10", "imagenet", "svhn")

# Each sub-policy: ((name, probability, level), (name, probability, level)), applied in order.
POLICIES = {
    # Paper appendix, policy on reduced CIFAR-10 (tensorflow/models official/vision/ops/augment.py
    # AutoAugment.policy_reduced_cifar10).
    "cifar10": (
        (("Invert", 0.1, 7), ("Contrast", 0.2, 6)),
        (("Rotate", 0.7, 2), ("TranslateX", 0.3, 9)),
        (("Sharpness", 0.8, 1), ("Sharpness", 0.9, 3)),
        (("ShearY", 0.5, 8), ("TranslateY", 0.7, 9)),
        (("AutoContrast", 0.5, 8), ("Equalize", 0.9, 2)),
        (("ShearY", 0.2, 7), ("Posterize", 0.3, 7)),
        (("Color", 0.4, 3), ("Brightness", 0.6, 7)),
        (("Sharpness", 0.3, 9), ("Brightness", 0.7, 9)),
        (("Equalize", 0.6, 5), ("Equalize", 0.5, 1)),
        (("Contrast", 0.6, 7), ("Sharpness", 0.6, 5)),
        (("Color", 0.7, 7), ("TranslateX", 0.5, 8)),
        (("Equalize", 0.3, 7), ("AutoContrast", 0.4, 8)),
        (("TranslateY", 0.4, 3), ("Sharpness", 0.2, 6)),
        (("Brightness", 0.9, 6), ("Color", 0.2, 8)),
        (("Solarize", 0.5, 2), ("Invert", 0.0, 3)),
        (("Equalize", 0.2, 0), ("AutoContrast", 0.6, 0)),
        (("Equalize", 0.2, 8), ("Equalize", 0.6, 4)),
        (("Color", 0.9, 9), ("Equalize", 0.6, 6)),
        (("AutoContrast", 0.8, 4), ("Solarize", 0.2, 8)),
        (("Brightness", 0.1, 3), ("Color", 0.7, 0)),
        (("Solarize", 0.4, 5), ("AutoContrast", 0.9, 3)),
        (("TranslateY", 0.9, 9), ("TranslateY", 0.7, 9)),
        (("AutoContrast", 0.9, 2), ("Solarize", 0.8, 3)),
        (("Equalize", 0.8, 8), ("Invert", 0.1, 3)),
        (("TranslateY", 0.7, 9), ("AutoContrast", 0.9, 1)),
    ),
    # Paper appendix, policy on reduced ImageNet (same file, policy_reduced_imagenet).
    "imagenet": (
        (("Posterize", 0.4, 8), ("Rotate", 0.6, 9)),
        (("Solarize", 0.6, 5), ("AutoContrast", 0.6, 5)),
        (("Equalize", 0.8, 8), ("Equalize", 0.6, 3)),
        (("Posterize", 0.6, 7), ("Posterize", 0.6, 6)),
        (("Equalize", 0.4, 7), ("Solarize", 0.2, 4)),
        (("Equalize", 0.4, 4), ("Rotate", 0.8, 8)),
        (("Solarize", 0.6, 3), ("Equalize", 0.6, 7)),
        (("Posterize", 0.8, 5), ("Equalize", 1.0, 2)),
        (("Rotate", 0.2, 3), ("Solarize", 0.6, 8)),
        (("Equalize", 0.6, 8), ("Posterize", 0.4, 6)),
        (("Rotate", 0.8, 8), ("Color", 0.4, 0)),
        (("Rotate", 0.4, 9), ("Equalize", 0.6, 2)),
        (("Equalize", 0.0, 7), ("Equalize", 0.8, 8)),
        (("Invert", 0.6, 4), ("Equalize", 1.0, 8)),
        (("Color", 0.6, 4), ("Contrast", 1.0, 8)),
        (("Rotate", 0.8, 8), ("Color", 1.0, 2)),
        (("Color", 0.8, 8), ("Solarize", 0.8, 7)),
        (("Sharpness", 0.4, 7), ("Invert", 0.6, 8)),
        (("ShearX", 0.6, 5), ("Equalize", 1.0, 9)),
        (("Color", 0.4, 0), ("Equalize", 0.6, 3)),
        (("Equalize", 0.4, 7), ("Solarize", 0.2, 4)),
        (("Solarize", 0.6, 5), ("AutoContrast", 0.6, 5)),
        (("Invert", 0.6, 4), ("Equalize", 1.0, 8)),
        (("Color", 0.6, 4), ("Contrast", 1.0, 8)),
        (("Equalize", 0.8, 8), ("Equalize", 0.6, 3)),
    ),
    # Paper appendix, policy on reduced SVHN (same file, policy_svhn).
    "svhn": (
        (("ShearX", 0.9, 4), ("Invert", 0.2, 3)),
        (("ShearY", 0.9, 8), ("Invert", 0.7, 5)),
        (("Equalize", 0.6, 5), ("Solarize", 0.6, 6)),
        (("Invert", 0.9, 3), ("Equalize", 0.6, 3)),
        (("Equalize", 0.6, 1), ("Rotate", 0.9, 3)),
        (("ShearX", 0.9, 4), ("AutoContrast", 0.8, 3)),
        (("ShearY", 0.9, 8), ("Invert", 0.4, 5)),
        (("ShearY", 0.9, 5), ("Solarize", 0.2, 6)),
        (("Invert", 0.9, 6), ("AutoContrast", 0.8, 1)),
        (("Equalize", 0.6, 3), ("Rotate", 0.9, 3)),
        (("ShearX", 0.9, 4), ("Solarize", 0.3, 3)),
        (("ShearY", 0.8, 8), ("Invert", 0.7, 4)),
        (("Equalize", 0.9, 5), ("TranslateY", 0.6, 6)),
        (("Invert", 0.9, 4), ("Equalize", 0.6, 7)),
        (("Contrast", 0.3, 3), ("Rotate", 0.8, 4)),
        (("Invert", 0.8, 5), ("TranslateY", 0.0, 2)),
        (("ShearY", 0.7, 6), ("Solarize", 0.4, 8)),
        (("Invert", 0.6, 4), ("Rotate", 0.8, 4)),
        (("ShearY", 0.3, 7), ("TranslateX", 0.9, 3)),
        (("ShearX", 0.1, 6), ("Invert", 0.6, 5)),
        (("Solarize", 0.7, 2), ("TranslateY", 0.6, 7)),
        (("ShearY", 0.8, 4), ("Invert", 0.8, 8)),
        (("ShearX", 0.7, 9), ("TranslateY", 0.8, 3)),
        (("ShearY", 0.8, 5), ("AutoContrast", 0.7, 3)),
        (("ShearX", 0.7, 2), ("Invert", 0.1, 5)),
    ),
}
assert tuple(POLICIES) == POLICY_NAMES

# tfds names whose policy is not "cifar10"; the paper runs CIFAR-100 with the CIFAR-10 policy.
_POLICY_OF_DATASET = {"imagenet2012": "imagenet", "imagenet2012_subset": "imagenet",
                      "svhn_cropped": "svhn"}

_PARAMETER_MAX = 10  # augmentation_transforms.py PARAMETER_MAX: level l means l / 10 of the range
_OPERATION_NAMES = frozenset(name for policy in POLICIES.values() for subpolicy in policy
                             for name, _, _ in subpolicy)

Decisions = collections.namedtuple("Decisions", ["subpolicy", "applied", "signs"])
Decisions.__doc__ = """What `sample_decisions` drew for a batch of B images.

Attributes:
  subpolicy: int32 [B], the sub-policy index in [0, 25) of each image.
  applied: bool [B, 2], whether the sub-policy's first and second operation apply.
  signs: int32 [B, 2], each -1 or +1, the directions of the two operations (geometric ones only).
"""


# ---------------------------------------------------------------------------
# Level -> parameter (augmentation_transforms.py), in integers where the reference truncates.
# ---------------------------------------------------------------------------

def _shear(level):
  """float_parameter(level, 0.3), the same float64 expression as the reference."""
  return float(level) * 0.3 / _PARAMETER_MAX


def _translate_pixels(policy_name, level, length):
  """int_parameter(level, T) with T the maximal shift in pixels for an image side of `length`.

  CIFAR-10 and SVHN: T = 10 on the reference's 32-pixel images (augmentation_transforms.py),
  scaled as 10 * length / 32. ImageNet: T = 150 on 331-pixel images (the paper's appendix table of
  operations gives "[-150, 150]" for 331x331 images), scaled as 150 * length / 331 (101.5 px at
  224) and mapped like every level here, int(level * T / 10). Others differ: torchvision scales
  the same range but spaces its 10 levels as linspace(0, T, 10), i.e. level * T / 9;
  tensorflow/tpu's AutoAugment shifts by a fixed translate_const of 250 px (100 is its
  RandAugment value). The ImageNet policy has no translation; the scale only matters to callers
  of `operation_parameter` (and RandAugment, `ohl_tf.randaugment`).
  Integer floor division gives int(level * T / 10) without float rounding on the way.
  """
  numerator, denominator = (150, 331) if policy_name == "imagenet" else (10, 32)
  return level * numerator * length // (denominator * _PARAMETER_MAX)


def operation_parameter(policy_name, name, level, width, height):
  """The parameter of operation `name` at `level`, before any sign, for a width x height image.

  Args:
    policy_name: one of `POLICY_NAMES` (only translations depend on it).
    name: an operation name of `POLICIES`, e.g. "Rotate".
    level: int in [0, 9] (10 accepted, as the reference's PARAMETER_MAX).
    width: image width in pixels.
    height: image height in pixels.

  Returns:
    Shear: float; Translate: int pixels; Rotate: int degrees; Posterize: int bits kept; Solarize:
    int threshold; Color/Contrast/Brightness/Sharpness: float enhance factor; None otherwise.

  Raises:
    ValueError: `name` is not an operation of `POLICIES`.
  """
  if name not in _OPERATION_NAMES:
    raise ValueError(f"name must be one of {sorted(_OPERATION_NAMES)}. Received: name={name!r}")
  parameters = {
      "ShearX": lambda: _shear(level),
      "ShearY": lambda: _shear(level),
      "TranslateX": lambda: _translate_pixels(policy_name, level, width),
      "TranslateY": lambda: _translate_pixels(policy_name, level, height),
      "Rotate": lambda: level * 30 // _PARAMETER_MAX,  # int_parameter(level, 30)
      "Posterize": lambda: 4 - level * 4 // _PARAMETER_MAX,  # 4 - int_parameter(level, 4)
      "Solarize": lambda: 256 - level * 256 // _PARAMETER_MAX,  # 256 - int_parameter(level, 256)
      # _enhancer_impl: float_parameter(level, 1.8) + .1, "going to 0 just destroys it".
      **{enhance: (lambda: float(level) * 1.8 / _PARAMETER_MAX + 0.1)
         for enhance in operations.ENHANCE},
  }
  return parameters.get(name, lambda: None)()


@functools.cache
def level_parameter(policy_name):
  """AutoAugment's level -> parameter mapping, for one policy's range: the parameter function of
  `operations.compile_operations` for AutoAugment's (and RandAugment's) operations.

  Args:
    policy_name: one of `POLICY_NAMES`, whose translation range applies.

  Returns:
    fn(name, level, sign, width, height) -> `operation_parameter`, times the sign for the
    geometric operations (the only ones augmentation_transforms.py negates). Cached: the same
    policy gives the same function, so the tables compiled with it are cached too.

  Raises:
    ValueError: an unknown policy_name.
  """
  _check_policy_name(policy_name)

  def parameter(name, level, sign, width, height):
    value = operation_parameter(policy_name, name, level, width, height)
    return sign * value if name in operations.GEOMETRIC else value
  return parameter


@dataclasses.dataclass(frozen=True, eq=False)
class _Plan:
  """A policy: its operations compiled, and each sub-policy slot's operation id and probability.

  Attributes:
    name: the policy name.
    table: the `operations.OperationTable` of the policy's distinct (name, level), Identity
      first: id 0 is a slot that does not apply.
    operation_of_slot: int32 [25, 2], the operation id of each sub-policy's two slots.
    probability: float32 [25, 2], the probability of each slot.
  """
  name: str
  table: operations.OperationTable
  operation_of_slot: np.ndarray
  probability: np.ndarray


@functools.cache
def _plan(policy_name):
  policy = POLICIES[policy_name]
  slots = [(name, level) for subpolicy in policy for name, _, level in subpolicy]
  table = operations.compile_operations((("Identity", 0), *slots), level_parameter(policy_name))
  return _Plan(
      name=policy_name,
      table=table,
      operation_of_slot=np.array([table.operations.index(op) for op in slots],
                                 np.int32).reshape(len(policy), 2),
      probability=np.array([[p for _, p, _ in subpolicy] for subpolicy in policy], np.float32),
  )


def operation_table(policy_name):
  """The `operations.OperationTable` of a policy's distinct (name, level), Identity first.

  Its `source_table` has a row 2 g + (s > 0) for the policy's g-th distinct geometric
  (name, level) with sign s: CIFAR-10 at 32x32 has 14 rows (56 KiB); ImageNet at 224x224 has 8
  rows (1.5 MiB).

  Raises:
    ValueError: an unknown policy_name.
  """
  return _plan(_check_policy_name(policy_name)).table


# ---------------------------------------------------------------------------
# Argument checks: early, naming the argument.
# ---------------------------------------------------------------------------

def _check_policy_name(policy_name):
  if not isinstance(policy_name, str) or policy_name not in POLICY_NAMES:
    raise ValueError(f"policy_name must be one of {POLICY_NAMES}. "
                     f"Received: policy_name={policy_name!r}")
  return policy_name


# ---------------------------------------------------------------------------
# Public API.
# ---------------------------------------------------------------------------

def policy_for_dataset(dataset_name):
  """The policy AutoAugment gives a dataset: "imagenet", "svhn", or "cifar10" for the rest.

  ImageNet (imagenet2012) and SVHN (svhn_cropped) have their own policies; the paper trains
  CIFAR-100 with the CIFAR-10 policy (section 4.1), and this module does the same for every other
  dataset. The paper transfers the ImageNet policy to fine-grained datasets of large images
  (section 4.3): pass "imagenet" explicitly there.

  Args:
    dataset_name: a dataset name, e.g. "cifar10", "cifar100", "imagenet2012", "svhn_cropped"
      (tfds names; a "/version" or ":config" suffix is ignored).

  Returns:
    One of `POLICY_NAMES`.
  """
  if not isinstance(dataset_name, str):
    raise ValueError(f"dataset_name must be a string. Received: dataset_name={dataset_name!r}")
  base = dataset_name.split("/")[0].split(":")[0].lower()
  return _POLICY_OF_DATASET.get(base, "cifar10")


def sample_decisions(num_images, policy_name, seed):
  """Draws each image's sub-policy (uniform), slot applications (Bernoulli p) and signs (50/50).

  Stateless: three streams split from `seed`, so the same seed and batch size give the same draws.

  Args:
    num_images: int or scalar int tensor, the batch size B.
    policy_name: one of `POLICY_NAMES`.
    seed: int [2] (or a Python int, read as [seed, 0]).

  Returns:
    `Decisions` of batch size B.
  """
  plan = _plan(_check_policy_name(policy_name))
  choice_seed, apply_seed, sign_seed = tf.unstack(
      tf.random.experimental.stateless_split(operations.check_seed(seed), 3))
  subpolicy = tf.random.stateless_uniform([num_images], choice_seed, minval=0,
                                          maxval=len(plan.probability), dtype=tf.int32)
  # augmentation_transforms.py applies when random.random() < probability.
  uniform = tf.random.stateless_uniform([num_images, 2], apply_seed)
  applied = uniform < tf.gather(plan.probability, subpolicy)
  # augmentation_transforms.py negates when random.random() > 0.5: one fair bit per slot.
  return Decisions(subpolicy, applied, operations.sample_signs([num_images, 2], sign_seed))


def apply_decisions(images, policy_name, decisions):
  """Applies drawn decisions: slot 1 where applied, then slot 2, Pillow's bytes.

  Args:
    images: uint8 [B,H,W,3], H, W >= 3.
    policy_name: one of `POLICY_NAMES`.
    decisions: `Decisions` for B images (e.g. from `sample_decisions`).

  Returns:
    uint8 [B,H,W,3].
  """
  plan = _plan(_check_policy_name(policy_name))
  images = operations.check_images(images, ranks=(4,))
  subpolicy = tf.cast(decisions.subpolicy, tf.int32)
  signs = tf.cast(decisions.signs, tf.int32)
  slot_operations = tf.gather(plan.operation_of_slot, subpolicy)
  slot_ids = tf.where(tf.cast(decisions.applied, tf.bool), slot_operations, 0)
  for slot in range(2):
    images = operations.apply_operations(images, plan.table, slot_ids[:, slot], signs[:, slot])
  return images


def apply_policy(images, policy_name, seed):
  """AutoAugment: one uniformly chosen sub-policy per image, each operation with its probability.

  Args:
    images: uint8 [B,H,W,3], H, W >= 3 (B, H, W may be unknown, e.g. in a tf.data map).
    policy_name: one of `POLICY_NAMES` (see `policy_for_dataset`).
    seed: int [2] tensor or sequence (or a Python int, read as [seed, 0]); the same seed and batch
      give the same bytes.

  Returns:
    uint8 [B,H,W,3].

  Raises:
    ValueError: unknown policy_name, images not uint8 [B,H,W,3] of at least 3x3 pixels, or a
      seed that is not an integer [2].
  """
  _check_policy_name(policy_name)
  images = operations.check_images(images, ranks=(4,))
  seed = operations.check_seed(seed)
  decisions = sample_decisions(tf.shape(images)[0], policy_name, seed)
  return apply_decisions(images, policy_name, decisions)
