"""The operation compiler: named operations to Pillow-exact TensorFlow ops, for every policy.

An *operation* is a pair (name, level). The name picks the Pillow routine (`NAMES`); the level is
whatever the policy's *parameter function* reads to give the value Pillow is called with:
  fn(name, level, sign, width, height) ->
    ShearX, ShearY            the shear coefficient, signed (affine (1, v, 0, 0, 1, 0) / ...)
    TranslateX, TranslateY    the affine offset in pixels, signed
    Rotate                    degrees (`Image.rotate`), signed
    Color, Contrast,          the ImageEnhance factor with that sign
    Brightness, Sharpness
    Posterize                 bits kept; Solarize: the int threshold (neither may use the sign)
Invert, AutoContrast, Equalize and Identity take no parameter. Each policy has its parameter
function and its operations: the OHL elements (`ohl_tf.augment`, paper Table 1), AutoAugment's
(`ohl_tf.autoaugment`, the levels of its released code, which RandAugment's
`ohl_tf.randaugment` uses at one magnitude) and TrivialAugment's bins (`ohl_tf.trivialaugment`).

`compile_operations(operations, parameter)` turns a tuple of operations into an
`OperationTable`: the operation with id i is operations[i] (a repeated one keeps its first id),
numpy tables of its parameters indexed by id, and the `pil_ops` kernels the operations need (one
per family of Pillow routine, the parameter a per-image tensor). `apply_operations` runs one
operation per image, on one of two paths with the same kernels, so with the same bytes:
  * a batch [B,H,W,3] with ids [B]: `tf.dynamic_partition` by kernel, each kernel once on its
    share of the batch, `tf.dynamic_stitch` back; from 128x128 pixels of a static size, the
    switch below on each image in turn (`map_if_large`);
  * one image [H,W,3] with a scalar id: a switch over the kernels (an unlowered Case op,
    `private_api.unlowered_switch_case`), each run on the image itself, for a per-image `tf.data`
    map; only the selected kernel runs.
The geometric operations are tabulated per image size: Pillow's source pixel of every output
pixel, for each operation and sign (`OperationTable.source_table`), so each is one gather.

Example:
  >>> table = compile_operations((("Identity", 0), ("Rotate", 30)),
  ...                            lambda name, level, sign, width, height: sign * level)
  >>> images = tf.zeros([8, 32, 32, 3], tf.uint8)
  >>> apply_operations(images, table, tf.ones([8], tf.int32), tf.ones([8], tf.int32)).shape
  TensorShape([8, 32, 32, 3])
"""

import dataclasses
import functools

import numpy as np
import tensorflow as tf

from ohl_tf import pil_ops
from ohl_tf import private_api

FILL = 128  # docs/search_space.md: Pillow's fillcolor (128, 128, 128) outside the image
MIN_SIZE = 3  # SMOOTH (Sharpness) needs a 3x3 neighbourhood
SIGNS = (-1, 1)  # column 0 of the per-sign tables is s = -1, column 1 is s = +1
GEOMETRIC = ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate")
ENHANCE = ("Color", "Contrast", "Brightness", "Sharpness")


# ---------------------------------------------------------------------------
# Kernels: fn(images [B,H,W,3] uint8, ids [B], signs [B], table) -> uint8 [B,H,W,3], or the same
# on one image [H,W,3] with a scalar id and sign.
# ---------------------------------------------------------------------------

def _sign_column(signs):
  return tf.cast(signs > 0, tf.int32)


def _run_time_source_table(images, table):
  """`table.source_table` for images whose size is known only at run time: the same numpy
  table, built (and cached) per size."""
  size = tf.shape(images)[-3:-1]
  sources = tf.numpy_function(lambda h, w: table.source_table(int(h), int(w)),
                              [size[0], size[1]], tf.int32, stateful=False)
  return tf.ensure_shape(sources, [2 * len(table.geometric_operations), None])


def _geometric(images, ids, signs, table):
  rows = 2 * tf.gather(table.geometric_row, ids) + _sign_column(signs)
  height, width = images.shape[-3], images.shape[-2]
  if height is not None and width is not None:
    return pil_ops.remap_table(images, table.source_table(height, width), rows, FILL)
  return pil_ops.remap(images, tf.gather(_run_time_source_table(images, table), rows), FILL)


def _point(images, ids, signs, table):
  del signs  # Posterize, Solarize and Invert have no direction.
  masks, thresholds = tf.unstack(tf.gather(table.point_parameters, ids), axis=-1)
  return pil_ops.posterize_solarize(images, masks, thresholds)


def _factors(ids, signs, table):
  # One factor per sign, at 2 id + (s > 0) of the flattened [V, 2] table.
  return tf.gather(table.factors.reshape(-1), 2 * ids + _sign_column(signs))


def _enhance(degenerate_fn):
  def kernel(images, ids, signs, table):
    return pil_ops.blend(degenerate_fn(images), images, _factors(ids, signs, table))
  return kernel


def _brightness(images, ids, signs, table):
  return pil_ops.brightness(images, _factors(ids, signs, table))


def _color(images, ids, signs, table):
  return pil_ops.color(images, _factors(ids, signs, table))


def _autocontrast(images, ids, signs, table):
  del ids, signs, table
  return pil_ops.autocontrast(images)


def _equalize(images, ids, signs, table):
  del ids, signs, table
  return pil_ops.equalize(images)


def _identity(images, ids, signs, table):
  del ids, signs, table
  return images  # batched: its share is stitched back untouched; per image: the image itself


_KERNEL_OF_NAME = {
    "Identity": _identity,
    **{name: _geometric for name in GEOMETRIC},
    "Posterize": _point,
    "Solarize": _point,
    "Invert": _point,
    "Color": _color,
    "Contrast": _enhance(pil_ops.contrast_degenerate),
    "Sharpness": _enhance(pil_ops.sharpness_degenerate),
    "Brightness": _brightness,
    "AutoContrast": _autocontrast,
    "Equalize": _equalize,
}
NAMES = tuple(_KERNEL_OF_NAME)  # every operation name `compile_operations` accepts


# ---------------------------------------------------------------------------
# The compiler.
# ---------------------------------------------------------------------------

def _point_parameters(parameter, name, level):
  """(mask, threshold) of `pil_ops.posterize_solarize`; identity for other operations.

  Posterize's parameter is the bits kept, Solarize's an int threshold (pixels >= it invert);
  neither has a direction.

  Raises:
    ValueError: a Posterize or Solarize parameter that depends on the sign.
  """
  if name in ("Posterize", "Solarize"):
    value = parameter(name, level, 1, 0, 0)
    if parameter(name, level, -1, 0, 0) != value:
      raise ValueError(f"{name} has no direction: its parameter must not depend on the sign. "
                       f"Received: level={level!r}")
    return (pil_ops.posterize_mask(value), 256) if name == "Posterize" else (255, value)
  if name == "Invert":
    return 255, 0
  return 255, 256


@dataclasses.dataclass(frozen=True, eq=False)
class OperationTable:
  """Operations compiled to tables indexed by operation id: what `apply_operations` runs.

  Built by `compile_operations`.

  Attributes:
    parameter: fn(name, level, sign, width, height) -> the operation's parameter with that sign.
    operations: the distinct (name, level) pairs; operation id i is operations[i].
    kernels: the kernels the operations need, in first-seen order.
    kernel_of_operation: int32 [V], index into `kernels`.
    geometric_row: int32 [V], a geometric operation's index g in `source_table` (rows 2 g and
      2 g + 1, for the signs -1 and +1; 0 for the other operations).
    point_parameters: int32 [V, 2], (mask, threshold) of `pil_ops.posterize_solarize`.
    factors: float32 [V, 2], ImageEnhance factors for the signs -1 and +1 (float32 as Pillow's C
      blend takes them; 1.0 for the other operations).
  """
  parameter: object
  operations: tuple
  kernels: tuple
  kernel_of_operation: np.ndarray
  geometric_row: np.ndarray
  point_parameters: np.ndarray
  factors: np.ndarray

  @property
  def masks(self):
    """int32 [V]: the bit masks of `point_parameters`."""
    return self.point_parameters[:, 0]

  @property
  def thresholds(self):
    """int32 [V]: the thresholds of `point_parameters` (pixels >= it invert)."""
    return self.point_parameters[:, 1]

  @property
  def geometric_operations(self):
    return tuple(op for op in self.operations if op[0] in GEOMETRIC)

  def source_table(self, height, width):
    """int32 [2 G, height * width]: Pillow's source pixel of every output pixel (or
    height * width, the fill) of the g-th geometric operation with sign s at row 2 g + (s > 0).

    Pillow's sampling depends only on the matrix and the image size, so it is tabulated once per
    size (`pil_ops.affine_source_indices`, Geometry.c's arithmetic included; the OHL elements:
    30 rows, 120 KiB at 32x32, 6 MiB at 224x224).
    """
    return _source_table_of(self.parameter, self.geometric_operations, height, width)


@functools.lru_cache(maxsize=32)
def _source_table_of(parameter, geometric_operations, height, width):
  return np.stack([
      pil_ops.affine_source_indices(
          pil_ops.affine_matrix(name, parameter(name, level, sign, width, height), width, height),
          width, height)
      for name, level in geometric_operations for sign in SIGNS
  ])


@functools.cache
def compile_operations(operations, parameter):
  """Compiles (name, level) operations into an `OperationTable`.

  Args:
    operations: a tuple of (name, level), names from `NAMES`, levels whatever `parameter` reads;
      operation id i is the i-th distinct pair (a repeated pair keeps its first id).
    parameter: the policy's parameter function, fn(name, level, sign, width, height) (see the
      module docstring), called for the operations that take a parameter. A module-level or
      cached function: it is part of the cache key.

  Returns:
    An `OperationTable` (cached: the same arguments give the same object).

  Raises:
    ValueError: an unknown operation name, or a Posterize or Solarize parameter that depends on
      the sign.
  """
  unknown = sorted({name for name, _ in operations} - set(NAMES))
  if unknown:
    raise ValueError(f"operation names must be in {NAMES}. Received: {unknown}")
  operations = tuple(dict.fromkeys(operations))
  kernels = tuple(dict.fromkeys(_KERNEL_OF_NAME[name] for name, _ in operations))
  geometric = [op for op in operations if op[0] in GEOMETRIC]
  return OperationTable(
      parameter=parameter,
      operations=operations,
      kernels=kernels,
      kernel_of_operation=np.array([kernels.index(_KERNEL_OF_NAME[name])
                                    for name, _ in operations], np.int32),
      geometric_row=np.array([geometric.index(op) if op in geometric else 0
                              for op in operations], np.int32),
      point_parameters=np.array([_point_parameters(parameter, *op) for op in operations],
                                np.int32).reshape(-1, 2),
      factors=np.array([[parameter(name, level, sign, 0, 0) if name in ENHANCE else 1.0
                         for sign in SIGNS] for name, level in operations], np.float32),
  )


# ---------------------------------------------------------------------------
# Running a table.
# ---------------------------------------------------------------------------

def _switch_path(image, table, op, sign):
  """One image: a switch over the table's kernels, each run on the image with scalar parameters.

  Only the selected branch runs, so an operation costs its own kernel plus the switch.
  """
  branches = [functools.partial(kernel, image, op, sign, table) for kernel in table.kernels]
  return tf.ensure_shape(
      private_api.unlowered_switch_case(tf.gather(table.kernel_of_operation, op), branches),
      image.shape)


def _partition_path(images, table, ops, signs):
  """A batch: each of the table's kernels once on the images whose operation it implements."""
  kernels = [functools.partial(kernel, table=table) for kernel in table.kernels]
  return pil_ops.apply_partitioned(kernels, tf.gather(table.kernel_of_operation, ops), images,
                                   ops, signs)


def apply_operations(images, table, ops, signs):
  """Applies operation `ops[b]` of `table` with sign `signs[b]` to image b, as Pillow would.

  No range checks here (the callers draw the ids and signs in range, or check them): an id
  outside [0, len(table.operations)) or a sign other than -1, +1 gives undefined results.

  Args:
    images: uint8 [B,H,W,3] (the batched path) or [H,W,3] (the per-image path), H, W >= 3.
    table: an `OperationTable` (from `compile_operations`).
    ops: int32 [B] (a scalar for one image), operation ids into `table.operations`.
    signs: int32 [B] (a scalar for one image), each -1 or +1; used by the signed operations only.

  Returns:
    uint8 of the shape of `images`, Pillow's bytes.

  Raises:
    ValueError: images not uint8 [B,H,W,3] or [H,W,3] of at least 3x3 pixels.
  """
  images = check_images(images)
  return map_if_large(functools.partial(_apply_table, table=table), images, ops, signs)


def _apply_table(images, ops, signs, table):
  path = _partition_path if images.shape.rank == 4 else _switch_path
  return path(images, table, ops, signs)


def map_if_large(fn, images, *per_image):
  """fn(images, *per_image), where fn takes a batch or one image: on a batch of large images of
  a static size (`pil_ops.one_image_at_a_time`), fn on each image with its own parameters
  (`pil_ops.image_by_image`: the per-image path's switch, its kernels compiled); else fn once.

  At 224x224 the partition, the per-kernel loops and the stitch of the batch cost ~60-100 us an
  image, twice per operation; one loop over the images with a switch per image costs ~20 us.

  Args:
    fn: fn(images, *per_image) -> uint8 of the shape of `images`, for a batch [B,H,W,3] with
      per-image tensors [B, ...] and for one image [H,W,3] with their rows.
    images: uint8 [B,H,W,3] or [H,W,3].
    *per_image: tensors whose first axis is the batch's (scalars or rows for one image).

  Returns:
    uint8 of the shape of `images`, the same bytes either way.
  """
  if images.shape.rank == 4 and pil_ops.one_image_at_a_time(images):
    return pil_ops.image_by_image(fn, images, *per_image)
  return fn(images, *per_image)


# ---------------------------------------------------------------------------
# Arguments: the image check (the base preprocessing's too), the draws' seed and signs.
# ---------------------------------------------------------------------------

_LAYOUTS = {3: "one image [H,W,{}]", 4: "a batch [B,H,W,{}]"}


def check_images(images, ranks=(3, 4), channels=3, min_size=MIN_SIZE):
  """`images` as a uint8 tensor, or a ValueError naming what is wrong.

  Args:
    images: a tensor or array.
    ranks: the allowed ranks: 3 (one image [H,W,C]), 4 (a batch [B,H,W,C]) or both.
    channels: the required number of channels; None for any.
    min_size: the smallest height and width allowed (checked where static).

  Returns:
    `images` as a tensor.

  Raises:
    ValueError: a dtype other than uint8, another rank or channel count, or a side smaller than
      `min_size`.
  """
  images = tf.convert_to_tensor(images)
  if images.dtype != tf.uint8:
    raise ValueError(f"images must be uint8. Received: images.dtype={images.dtype.name}")
  rank = images.shape.rank
  if rank not in ranks or (channels is not None and images.shape[-1] != channels):
    layouts = " or ".join(_LAYOUTS[r].format("C" if channels is None else channels)
                          for r in ranks)
    with_channels = "" if channels is None else f" with {channels} channels"
    raise ValueError(f"images must be {layouts}{with_channels}. "
                     f"Received: images.shape={images.shape}")
  if any(d is not None and d < min_size for d in images.shape[-3:-1]):
    raise ValueError(f"images must be at least {min_size}x{min_size} pixels. "
                     f"Received: images.shape={images.shape}")
  return images


def check_seed(seed):
  """An int64 [2] seed tensor (a Python int s reads as [s, 0]); a ValueError otherwise."""
  if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
    seed = [seed, 0]
  seed = tf.convert_to_tensor(seed)
  if not seed.dtype.is_integer or seed.shape.rank != 1 or seed.shape[0] not in (2, None):
    raise ValueError("seed must be an int or an integer tensor of shape [2]. "
                     f"Received: seed.dtype={seed.dtype.name}, seed.shape={seed.shape}")
  return tf.cast(seed, tf.int64)


def sample_signs(shape, seed=None):
  """int32 signs in {-1, +1}, uniform; stateless when `seed` (int [2]) is given."""
  if seed is None:
    bits = tf.random.uniform(shape, maxval=2, dtype=tf.int32)
  else:
    bits = tf.random.stateless_uniform(shape, seed, minval=0, maxval=2, dtype=tf.int32)
  return 2 * bits - 1
