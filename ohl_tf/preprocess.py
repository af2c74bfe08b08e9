"""Base preprocessing of docs/pipeline.md: small, pure, seeded graph functions.

Per training image the order is: base preprocessing (this module), the sampled OHL operation
(`ohl_tf.augment`), `cutout` (this module), `normalize` (this module).

Every random function takes `seed`, an int32/int64 tensor of shape [2], and derives the seeds of
its parts with `tf.random.experimental.stateless_split`: the same seed gives the same output,
eagerly, in a `tf.function` and inside a `tf.data` map alike. Nothing reads a global or op-level
random state, so a pipeline is reproducible from its seeds alone (docs/loop.md needs the
trajectories of one period to differ only where their seeds differ).

The image functions take and return uint8, because the augmentation operations are uint8 ops
(PIL semantics, docs/search_space.md); only `normalize` returns float32.

Example, one CIFAR training image (`op_and_signs` stands for the augmentation step):

  base_seed, cutout_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
  image = cifar_train_base(image, base_seed)
  image = op_and_signs(image)
  image = cutout(image, cutout_seed, 16, fill=mean_colour(CIFAR10_MEAN))
  image = normalize(image, CIFAR10_MEAN, CIFAR10_STD)
"""

import numbers

import numpy as np
import tensorflow as tf

from ohl_tf import operations

# Per-channel RGB statistics of the training sets in [0, 255] units. CIFAR: the pixel mean and
# pixel standard deviation over the whole training set, as in AutoAugment's
# augmentation_transforms.py (MEANS/STDS x 255) and Cutout's code (125.3, 123.0, 113.9) /
# (63.0, 62.1, 66.7). The often-copied std (0.2023, 0.1994, 0.2010) is a mean of per-image stds,
# about 20% too small: not used here.
CIFAR10_MEAN = (125.307, 122.950, 113.865)
CIFAR10_STD = (62.993, 62.089, 66.705)
CIFAR100_MEAN = (129.304, 124.070, 112.434)
CIFAR100_STD = (68.170, 65.392, 70.418)
# ImageNet: mean subtraction only (docs/pipeline.md); the usual (0.485, 0.456, 0.406) x 255.
IMAGENET_MEAN = (123.675, 116.280, 103.530)


# ---------------------------------------------------------------------------------------------
# Argument checks. They run once per trace (on static shapes and Python values), so they cost
# nothing per image inside a tf.data map.
# ---------------------------------------------------------------------------------------------


def _check_int(name, value, minimum):
  if (isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum):
    raise ValueError(f"`{name}` must be an integer >= {minimum}. Received: {name}={value!r}")
  return int(value)


def _check_range(name, value, low, high):
  """Checks a (min, max) pair with low < min <= max <= high; returns it as floats."""
  try:
    lo, hi = (float(v) for v in value)
  except (TypeError, ValueError):
    lo = hi = None
  if lo is None or not low < lo <= hi <= high:
    raise ValueError(f"`{name}` must be a pair (min, max) with {low} < min <= max <= {high}. "
                     f"Received: {name}={value!r}")
  return lo, hi


def _check_seed(seed):
  seed = tf.convert_to_tensor(seed)
  if seed.dtype not in (tf.int32, tf.int64) or not seed.shape.is_compatible_with([2]):
    raise ValueError("`seed` must be an int32 or int64 tensor of shape [2]. "
                     f"Received: seed with dtype={seed.dtype.name} and shape={seed.shape}")
  return seed


def _check_images(images, ranks):
  """uint8 `images` of a rank in `ranks`: `operations.check_images`, any channels and size."""
  return operations.check_images(images, ranks, channels=None, min_size=0)


def _check_channel_values(name, value, channels, low, high, integer=False):
  """Checks one value per channel in [low, high]; returns a tuple of Python numbers."""
  kind = int if integer else float
  try:
    values = tuple(value)
    ok = (all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in values) and
          all(low <= v <= high for v in values) and
          (not integer or all(float(v).is_integer() for v in values)) and
          (channels is None or len(values) == channels))
  except TypeError:
    ok = False
  if not ok:
    what = "integers" if integer else "numbers"
    count = "one per channel" if channels is None else f"{channels}"
    raise ValueError(f"`{name}` must be {count} {what} in [{low}, {high}]. "
                     f"Received: {name}={value!r}")
  return tuple(kind(v) for v in values)


def _to_uint8(images):
  """Rounds float pixel values to the nearest integer and saturates to [0, 255]."""
  return tf.cast(tf.clip_by_value(tf.round(images), 0.0, 255.0), tf.uint8)


def resize_uint8(images, size):
  """Resizes uint8 images [H, W, C] or [B, H, W, C] to `size` (height, width), back to uint8.

  Antialiased bilinear (a triangle filter as wide as the scale factor) is what PIL's BILINEAR
  resize does, and PIL is the project's reference; plain bilinear aliases when shrinking a large
  crop to 224. The result is rounded and saturated, since the augmentation ops are uint8 ops.
  """
  return _to_uint8(tf.image.resize(images, size, method="bilinear", antialias=True))


# ---------------------------------------------------------------------------------------------
# CIFAR: flip, pad and crop.
# ---------------------------------------------------------------------------------------------


def random_flip(images, seed):
  """Flips left-right with probability 1/2 (independently per image for a batch).

  Args:
    images: uint8 [H, W, C] or [B, H, W, C].
    seed: int32/int64 [2].

  Returns:
    uint8, same shape as `images`.
  """
  images = _check_images(images, ranks=(3, 4))
  return tf.image.stateless_random_flip_left_right(images, _check_seed(seed))


def random_pad_crop(image, seed, pad=4):
  """Zero-pads `pad` pixels on every side, then crops a random window of the input's size.

  Equivalently, shifts the image by (dy, dx), each uniform in [-pad, pad], filling with zeros.

  Args:
    image: uint8 [H, W, C].
    seed: int32/int64 [2].
    pad: int >= 0, the padding on each side (4 for CIFAR).

  Returns:
    uint8 [H, W, C].
  """
  pad = _check_int("pad", pad, 0)
  image = _check_images(image, ranks=(3,))
  offsets = tf.random.stateless_uniform([2], _check_seed(seed), 0, 2 * pad + 1, tf.int32)
  padded = tf.pad(image, [[pad, pad], [pad, pad], [0, 0]])
  crop = tf.slice(padded, tf.concat([offsets, [0]], 0), tf.shape(image))
  return tf.ensure_shape(crop, image.shape)  # tf.slice with a dynamic size loses it


def cifar_train_base(image, seed, pad=4):
  """CIFAR base training preprocessing: random flip, then zero-pad `pad` and random crop.

  Args:
    image: uint8 [H, W, C] (32x32x3 for CIFAR).
    seed: int32/int64 [2].
    pad: int >= 0.

  Returns:
    uint8 [H, W, C].
  """
  flip_seed, crop_seed = tf.unstack(tf.random.experimental.stateless_split(_check_seed(seed), 2))
  return random_pad_crop(random_flip(image, flip_seed), crop_seed, pad)


# ---------------------------------------------------------------------------------------------
# Cutout.
# ---------------------------------------------------------------------------------------------


def mean_colour(mean):
  """The uint8 RGB colour nearest to a dataset mean: the `fill` that makes Cutout standard.

  Example: `cutout(images, seed, 16, fill=mean_colour(CIFAR10_MEAN))`.
  """
  return tuple(int(round(m)) for m in _check_channel_values("mean", mean, None, 0, 255))


def sample_cutout_centres(batch_size, height, width, seed):
  """Draws one Cutout centre per image, uniform over the pixels of the image.

  Kept apart from `paint_cutout` so that tests and callers can see what was sampled, and so that
  the centres can be drawn where the images are not painted (`ohl_tf.pipeline`).

  Args:
    batch_size, height, width: int32 scalars (Python ints or tensors).
    seed: int32/int64 [2].

  Returns:
    (rows, cols): int32 [batch_size] each, rows in [0, height), cols in [0, width).
  """
  # One uniform pixel index rather than a row and a column: half the random ops, and Cutout
  # runs once per image in the per-image map, where every op costs a microsecond or two.
  pixels = tf.random.stateless_uniform([batch_size], _check_seed(seed), 0, height * width,
                                       tf.int32)
  return pixels // width, pixels % width


def cutout(images, seed, size=16, *, fill):
  """Cutout (DeVries & Taylor, 2017): paints one size x size square per image with `fill`.

  The centre is uniform over the image (`sample_cutout_centres`) and the square is painted by
  `paint_cutout`, which says how it is clipped and why `fill` has no default. A batch gets an
  independent square per image.

  Args:
    images: uint8 [H, W, C] or [B, H, W, C].
    seed: int32/int64 [2].
    size: int >= 0, the side of the square; 0 leaves the images unchanged.
    fill: C integers in [0, 255], the colour of the square.

  Returns:
    uint8, same shape as `images`.
  """
  images = _check_images(images, ranks=(3, 4))
  batched = images.shape.rank == 4
  shape = tf.shape(images)
  rows, cols = sample_cutout_centres(shape[0] if batched else 1, shape[-3], shape[-2], seed)
  if not batched:
    rows, cols = rows[0], cols[0]
  return paint_cutout(images, rows, cols, size, fill=fill)


def paint_cutout(images, rows, cols, size=16, *, fill):
  """Paints the size x size Cutout square centred at (rows, cols) of each image with `fill`.

  The square is clipped at the border, so squares near an edge are smaller: rows
  [cy - size//2, cy - size//2 + size), the paper's code for an even size (theirs loses a row and
  a column for an odd size). Kept apart from the sampling (`cutout`) so that the centres can be
  drawn in one place and the square painted in another: the training pipeline draws them on the
  host and, under --augment_on=device, paints them in the training step (`ohl_tf.pipeline`).

  DeVries & Taylor zero the *normalised* tensor, i.e. paint the dataset mean. Here Cutout runs
  on uint8 images, before `normalize`, so `fill` must be the dataset mean colour,
  `mean_colour(CIFAR10_MEAN)` for CIFAR-10: after `normalize` the square is then within
  0.5 / std (< 0.01) of zero instead of exactly zero. There is deliberately no default: a zero
  fill would be a black square, 2 standard deviations away from what the paper trained with.

  Args:
    images: uint8 [H, W, C] or [B, H, W, C].
    rows, cols: int32, the centre of each image's square: [B] each for a batch, scalars for one
      image (`sample_cutout_centres` draws them).
    size: int >= 0, the side of the square; 0 leaves the images unchanged.
    fill: C integers in [0, 255], the colour of the square.

  Returns:
    uint8, same shape as `images`.
  """
  size = _check_int("size", size, 0)
  images = _check_images(images, ranks=(3, 4))
  fill = _check_channel_values("fill", fill, images.shape[-1], 0, 255, integer=True)
  top, left = (tf.cast(rows, tf.int32) - size // 2), (tf.cast(cols, tf.int32) - size // 2)
  if images.shape.rank == 4:  # one image's stay scalars: Eigen's fast path
    top, left = top[:, None, None, None], left[:, None, None, None]
  # Comparisons against the unclipped square do the clipping at the border for free.
  ys, xs = _pixel_grid(images, 0), _pixel_grid(images, 1)
  inside = (ys >= top) & (ys < top + size) & (xs >= left) & (xs < left + size)
  # x + inside * (fill - x) wraps modulo 256 to `fill` inside and `x` outside: on one image this
  # is ~10 us cheaper than tf.where (measured in a tf.data map at 32x32).
  fill_image = _per_pixel(fill, images, tf.uint8)
  return images + tf.cast(inside, tf.uint8) * (fill_image - images)


def _static_image_shape(images):
  """The [H, W, C] of `images` as Python ints when all are known, else None."""
  image_shape = images.shape[-3:]
  return image_shape.as_list() if image_shape.is_fully_defined() else None


def _pixel_grid(images, axis):
  """int32 [H, W, C]: each pixel's row (axis 0) or column (axis 1), a constant when the size is
  static; else [H, 1, 1] or [W, 1], broadcast when used.

  Full-size operands keep the per-image arithmetic off TensorFlow's broadcasting path, which on
  one 32x32 image costs several times an elementwise op.
  """
  image_shape = _static_image_shape(images)
  if image_shape is not None:
    return tf.constant(np.indices(image_shape, np.int32)[axis])
  return tf.range(tf.shape(images)[axis - 3])[(slice(None),) + (None,) * (2 - axis)]


def _per_pixel(values, images, dtype):
  """One value per channel as a constant [H, W, C] when the size is static, else [C]: see
  `_pixel_grid`."""
  values = np.asarray(values, dtype.as_numpy_dtype)
  image_shape = _static_image_shape(images) if (images.shape.rank or 0) >= 3 else None
  return tf.constant(values if image_shape is None else np.broadcast_to(values, image_shape))


# ---------------------------------------------------------------------------------------------
# Standardisation.
# ---------------------------------------------------------------------------------------------


def normalize(images, mean, std=None):
  """Standardises per channel: float32 (images - mean) / std.

  Args:
    images: uint8 or float, [..., C], pixel values in [0, 255].
    mean: C numbers in [0, 255], e.g. `CIFAR10_MEAN`.
    std: C positive numbers in [0, 255] units, e.g. `CIFAR10_STD`; None for mean subtraction
      only (ImageNet, docs/pipeline.md).

  Returns:
    float32, same shape as `images`.
  """
  images = tf.convert_to_tensor(images)
  channels = images.shape[-1] if images.shape.rank else None
  mean = _check_channel_values("mean", mean, channels, 0, 255)
  centred = tf.cast(images, tf.float32) - _per_pixel(mean, images, tf.float32)
  if std is None:
    return centred
  std = _check_channel_values("std", std, channels, 1e-3, 255)
  # Multiplying by the reciprocal would be faster but differs from numpy by an ulp. So would
  # `centred / std` inside a tf.function: Grappler's constant folding rewrites a division by a
  # constant into that multiplication (not in a tf.data map, nor eagerly), and the training step
  # standardises under --augment_on=device. DivNoNan is the same IEEE division for std > 0 (and
  # as fast: 2.8-3.0 us per 32x32 image either way), and Grappler leaves it alone: the same bytes
  # eagerly, in tf.data and in a tf.function (not under XLA, which the augmentation stays out of).
  return tf.math.divide_no_nan(centred, _per_pixel(std, images, tf.float32))


# ---------------------------------------------------------------------------------------------
# ImageNet: random-resized crop for training, resize and centre crop for evaluation.
# ---------------------------------------------------------------------------------------------


def sample_crop_box(image_shape, seed, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3),
                    max_attempts=10):
  """Draws an Inception-style crop box: area fraction in `scale`, width/height in `ratio`.

  TensorFlow's sampler tries `max_attempts` boxes, like torchvision's RandomResizedCrop; when
  all fail (rare for ImageNet shapes) it returns the whole image, where torchvision falls back to
  a centre crop clipped to `ratio`. It draws the aspect ratio uniformly, torchvision
  log-uniformly: a small difference in the distribution of shapes, not in their range.

  Args:
    image_shape: int32 [3], the shape [H, W, C] of the image.
    seed: int32/int64 [2].
    scale: (min, max), 0 < min <= max <= 1, the fraction of the image area.
    ratio: (min, max), 0 < min <= max, the aspect ratio width / height in pixels.
    max_attempts: int >= 1.

  Returns:
    (begin, size): int32 [3] each, for `tf.slice(image, begin, size)`.
  """
  scale = _check_range("scale", scale, 0.0, 1.0)
  ratio = _check_range("ratio", ratio, 0.0, float("inf"))
  max_attempts = _check_int("max_attempts", max_attempts, 1)
  begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
      image_shape, bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]),
      seed=_check_seed(seed), min_object_covered=0.0, aspect_ratio_range=ratio,
      area_range=scale, max_attempts=max_attempts, use_image_if_no_bounding_boxes=True)
  return begin, size


def random_resized_crop(image, seed, size=224, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)):
  """Crops a box from `sample_crop_box` and resizes it to size x size.

  Args:
    image: uint8 [H, W, C], any H and W.
    seed: int32/int64 [2].
    size: int >= 1, the output side.
    scale, ratio: see `sample_crop_box`.

  Returns:
    uint8 [size, size, C].
  """
  size = _check_int("size", size, 1)
  image = _check_images(image, ranks=(3,))
  begin, box = sample_crop_box(tf.shape(image), seed, scale, ratio)
  # The box's size is a tensor, so tf.slice forgets even the channel count.
  crop = tf.ensure_shape(tf.slice(image, begin, box), [None, None, image.shape[-1]])
  return resize_uint8(crop, [size, size])


def imagenet_train_base(image, seed, size=224):
  """ImageNet base training preprocessing: random-resized crop to `size`, then random flip.

  Args:
    image: uint8 [H, W, 3], any H and W.
    seed: int32/int64 [2].
    size: int >= 1.

  Returns:
    uint8 [size, size, 3].
  """
  crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(_check_seed(seed), 2))
  return random_flip(random_resized_crop(image, crop_seed, size), flip_seed)


def imagenet_eval(image, size=224, resize=256):
  """ImageNet evaluation preprocessing: shorter side to `resize`, then centre crop `size`.

  The longer side becomes floor(resize * long / short), as torchvision's Resize computes it.

  Args:
    image: uint8 [H, W, C], any H and W.
    size: int >= 1, the side of the centre crop.
    resize: int >= size, the shorter side after resizing.

  Returns:
    uint8 [size, size, C].
  """
  size = _check_int("size", size, 1)
  resize = _check_int("resize", resize, size)
  image = _check_images(image, ranks=(3,))
  shape = tf.shape(image)
  height, width = shape[0], shape[1]
  short = tf.minimum(height, width)
  # Integer arithmetic, so that the shorter side is exactly `resize`.
  new_height = tf.where(height == short, resize, resize * height // short)
  new_width = tf.where(width == short, resize, resize * width // short)
  resized = resize_uint8(image, tf.stack([new_height, new_width]))
  # torchvision's CenterCrop rounds the offset: round((new - size) / 2), half to even.
  top = tf.cast(tf.round((new_height - size) / 2), tf.int32)
  left = tf.cast(tf.round((new_width - size) / 2), tf.int32)
  crop = tf.slice(resized, tf.stack([top, left, 0]), [size, size, -1])
  return tf.ensure_shape(crop, [size, size, image.shape[-1]])
