"""Pillow-exact image kernels, on a batch or on one image, with per-image parameters.

Each function reproduces one of Pillow's C routines bit for bit on uint8 RGB images, and works on a
batch [B,H,W,3] (B may be 0) with a parameter per image ([B]), or on one image [H,W,3] with scalar
parameters (the per-image `tf.data` map). Nothing here knows about any policy's operations:
`operations` compiles an operation and sign into a kernel and its parameters. Every kernel treats each image independently,
so one image, a batch of one and a batch of many give identical bytes.

On one 32x32 image the cost is the number of TensorFlow ops, not arithmetic, and a few ops are far
slower than the rest on the CPU: `tf.where` on images (~15 us at 32x32, against ~1 us for an
elementwise op), broadcasting along the channel axis, gathers with `batch_dims`. The kernels avoid
them (see `python benchmarks/augment_throughput.py --profile`). On a 224x224 image the cost is
passes over memory: the kernels avoid int32/float64 round trips, per-pixel gathers where slices
or arithmetic give the same bytes, and run image by image so that intermediates stay in the cache
(`python benchmarks/augment_vs_pillow.py`, against Pillow per element). There the kernels that
are tables of the pixel's value (all but Sharpness and the geometric ones) compute Pillow's table
in TensorFlow and run the per-pixel histogram and lookup as small XLA-compiled integer functions,
the point operations their uint8 arithmetic and Brightness its one product, and shears and
Rotate gather their pixels compiled (`compiled_lookups`).

Why our own graph code: `python benchmarks/library_fidelity.py` measures the closest tf.image,
Keras and keras-cv functions against Pillow 13 on 256 real CIFAR-10 images (exact-equal values):
  * Shear: tf.raw_ops.ImageProjectiveTransformV3 97.6% even with a half-pixel matrix (Pillow's
    16.16 fixed-point ties at ShearX/Y 0.2 fail the 98% test); no layer applies a fixed-sign shear.
    Rotate 99.97%, Translate 100%: they would pass, but the shear table is needed anyway and one
    gather from a per-size table serves all 15 geometric elements with per-image parameters.
  * Contrast: tf.image.adjust_contrast 22.6% (a per-channel mean; Pillow uses one mean of L).
  * Equalize: keras-cv Equalization 83.4%, keras Equalization 2.6% (other LUT formulas).
  * Color 85.0% with tf.image.rgb_to_grayscale (off by one), Sharpness 84.9% (keras-cv),
    AutoContrast 99.4% (keras-cv): within docs/correctness.md's +-1, not Pillow's bytes.
  * Posterize, Solarize, Invert: keras-cv's layers match exactly but take one magnitude per call;
    `posterize_solarize` serves all seven with a per-image mask and threshold.
"""

import functools
import math

import numpy as np
import tensorflow as tf

from ohl_tf import private_api

_LEVELS = 256


def _shape(images):
  """The shape of `images` as a list: Python ints where static, scalar tensors elsewhere.

  Static sizes keep reshapes and fills constant (folded once), which matters per image.
  """
  dynamic = tf.shape(images)
  return [d if d is not None else dynamic[i] for i, d in enumerate(images.shape.as_list())]


def per_image(values, images):
  """Per-image parameters `values` ([B] or a scalar) shaped to broadcast against `images`.

  A scalar (one image) stays a scalar: broadcasting a scalar is Eigen's fast path, a [1,1,1]
  tensor is not.
  """
  if values.shape.rank == 0:
    return values
  return values[(...,) + (None,) * (images.shape.rank - values.shape.rank)]


# ---------------------------------------------------------------------------
# Geometry: Pillow's nearest-neighbour affine transform, replayed in numpy.
# ---------------------------------------------------------------------------

def rotate_matrix(angle, width, height):
  """The inverse affine matrix that `PIL.Image.rotate(angle)` builds (about the image centre).

  Mirrors Image.rotate line by line, including `angle % 360` and the rounding to 15 decimals, so
  that the float64 coefficients equal Pillow's.

  Args:
    angle: degrees, counter-clockwise.
    width: image width in pixels.
    height: image height in pixels.

  Returns:
    The 6 coefficients (a, b, c, d, e, f) mapping output (x, y) to input (ax+by+c, dx+ey+f).
  """
  angle = -math.radians(angle % 360.0)
  cos, sin = round(math.cos(angle), 15), round(math.sin(angle), 15)
  a, b, d, e = cos, sin, round(-math.sin(angle), 15), cos
  center_x, center_y = width / 2, height / 2
  c = a * (-center_x - 0) + b * (-center_y - 0) + 0.0 + center_x
  f = d * (-center_x - 0) + e * (-center_y - 0) + 0.0 + center_y
  return (a, b, c, d, e, f)


def affine_matrix(name, value, width, height):
  """The coefficients passed to Pillow for a geometric operation (docs/search_space.md).

  Args:
    name: "ShearX", "ShearY", "TranslateX", "TranslateY" or "Rotate".
    value: signed: the shear factor, the translation in pixels, or the rotation in degrees.
    width: image width in pixels.
    height: image height in pixels.

  Returns:
    The 6 coefficients of `Image.transform(AFFINE, ...)`, or what `Image.rotate` builds.
  """
  return {
      "ShearX": lambda: (1, value, 0, 0, 1, 0),
      "ShearY": lambda: (1, 0, 0, value, 1, 0),
      "TranslateX": lambda: (1, 0, value, 0, 1, 0),
      "TranslateY": lambda: (1, 0, 0, 0, 1, value),
      "Rotate": lambda: rotate_matrix(value, width, height),
  }[name]()


def affine_source_indices(matrix, width, height):
  """Source pixel of every output pixel under Pillow's NEAREST affine transform.

  Replays libImaging/Geometry.c, which samples at pixel centres (the first centre maps to
  a[2] + a[1]/2 + a[0]/2) and picks one of three arithmetics; the rounding of each decides the
  pixels whose coordinates fall on integers (e.g. ShearX 0.2 every fifth row), so each is replayed
  exactly rather than computed in closed form:
    * a[1] == a[3] == 0 (translation, ImagingScaleAffine): float64, a[0] added column by column
      and a[4] row by row;
    * coordinates within +-32768 at the corners (affine_fixed): 16.16 fixed point, coefficients
      rounded to 1/65536, source = coordinate >> 16;
    * otherwise: float64 accumulated as in the first case.

  Args:
    matrix: 6 affine coefficients as given to `Image.transform(size, AFFINE, matrix)`.
    width: image width (input and output).
    height: image height (input and output).

  Returns:
    int32 [height * width]: the flat source index y*W + x per output pixel in row-major order, or
    height * width where the source falls outside the image (Pillow leaves the fill colour).
  """
  a = tuple(float(v) for v in matrix)
  origin_x = a[2] + a[1] * 0.5 + a[0] * 0.5
  origin_y = a[5] + a[4] * 0.5 + a[3] * 0.5
  if (a[1] != 0 or a[3] != 0) and _fits_fixed_point(a, width, height):
    xs, ys = _fixed_point_coordinates(a, origin_x, origin_y, width, height)
  else:
    xs, ys = _float_coordinates(a, origin_x, origin_y, width, height)
  # Pillow's COORD(v) is -1 for v < 0 and (int)v otherwise: inside iff 0 <= v < size.
  inside = (xs >= 0) & (xs < width) & (ys >= 0) & (ys < height)
  flat = np.floor(np.where(inside, ys, 0)) * width + np.floor(np.where(inside, xs, 0))
  return np.where(inside, flat, height * width).astype(np.int32).reshape(-1)


def _fits_fixed_point(a, width, height):
  """Geometry.c check_fixed at the four corners: |coordinate| < 32768."""
  return all(abs(x * a[0] + y * a[1] + a[2]) < 32768.0 and
             abs(x * a[3] + y * a[4] + a[5]) < 32768.0
             for x in (0, width) for y in (0, height))


def _fixed_point_coordinates(a, origin_x, origin_y, width, height):
  """affine_fixed: exact integer sums of 16.16 coefficients; >> 16 is a floor."""
  fix = lambda v: int(np.floor(v * 65536.0 + 0.5))
  y, x = np.mgrid[0:height, 0:width].astype(np.int64)
  xs = (fix(origin_x) + y * fix(a[1]) + x * fix(a[0])) >> 16
  ys = (fix(origin_y) + y * fix(a[4]) + x * fix(a[3])) >> 16
  return xs, ys


def _float_coordinates(a, origin_x, origin_y, width, height):
  """ImagingScaleAffine / ImagingTransformAffine: float64 sums in Pillow's order."""
  row_x = np.add.accumulate(np.r_[origin_x, np.full(height - 1, a[1])])
  row_y = np.add.accumulate(np.r_[origin_y, np.full(height - 1, a[4])])
  steps = np.ones((height, width - 1))
  xs = np.add.accumulate(np.c_[row_x, steps * a[0]], axis=1)
  ys = np.add.accumulate(np.c_[row_y, steps * a[3]], axis=1)
  return xs, ys


def remap(images, source_indices, fill):
  """Gathers every output pixel from its source pixel, or `fill` (the index H*W).

  Args:
    images: uint8 [B,H,W,C] or [H,W,C].
    source_indices: int32 [B, H*W] (or [H*W]), e.g. rows of `affine_source_indices` tables.
    fill: the fill value (an int, one for all channels).

  Returns:
    uint8 of the shape of `images`.
  """
  shape = _shape(images)
  batch = shape[:-3]  # [] for one image: a plain gather, much cheaper than batch_dims=1
  flat = tf.reshape(images, batch + [shape[-3] * shape[-2], shape[-1]])
  fill_pixel = tf.fill(batch + [1, shape[-1]], tf.constant(fill, tf.uint8))
  pixels = tf.gather(tf.concat([flat, fill_pixel], axis=-2), source_indices,
                     batch_dims=len(batch))
  return tf.reshape(pixels, shape)


def shift_blocks(source_indices, height, width):
  """Pillow's sampling of one transform as blocks of shifted rows or columns, or None.

  Translations move the whole image by whole pixels, ShearX moves each row and ShearY each
  column; at Pillow's nearest sampling the moves are whole pixels, so slices of a padded image
  give the same bytes as a per-pixel gather at a fraction of the cost (TensorFlow's gather pays
  ~5-8 ns a pixel on the CPU, a slice copies rows). Found by checking every output row (then
  every column) against a pure shift, so the blocks reproduce `source_indices` exactly.

  Args:
    source_indices: int [height * width], a row of `affine_source_indices`.
    height: image height.
    width: image width.

  Returns:
    (axis, blocks): axis 0 for blocks of rows, 1 for blocks of columns; blocks a tuple of
    (start, stop, dy, dx): output rows (columns) [start, stop) take input pixel (y + dy, x + dx),
    or None for fill throughout. None when the transform is not a shift by rows or columns.
  """
  source = np.asarray(source_indices).reshape(height, width)
  fill = height * width
  for axis in (0, 1):
    lines = source if axis == 0 else source.T
    blocks = []
    for i, line in enumerate(lines):
      shift = _line_shift(line, i, axis, height, width, fill)
      if shift is False:
        break
      if blocks and blocks[-1][1] == i and blocks[-1][2:] == shift:
        blocks[-1] = (blocks[-1][0], i + 1) + blocks[-1][2:]
      else:
        blocks.append((i, i + 1) + shift)
    else:
      return axis, tuple(blocks)
  return None


def _line_shift(line, i, axis, height, width, fill):
  """(dy, dx) if output row (axis 0) or column (axis 1) i is input pixel (y + dy, x + dx) where
  that lies inside the image and fill elsewhere; (None, None) if all fill; False otherwise."""
  inside = np.flatnonzero(line != fill)
  if inside.size == 0:
    return (None, None)
  j = inside[0]
  y, x = (i, j) if axis == 0 else (j, i)
  dy, dx = int(line[j] // width - y), int(line[j] % width - x)
  positions = np.arange(line.size)
  ys, xs = (np.full(line.size, i) + dy, positions + dx) if axis == 0 else (
      positions + dy, np.full(line.size, i) + dx)
  valid = (ys >= 0) & (ys < height) & (xs >= 0) & (xs < width)
  expected = np.where(valid, ys * width + xs, fill)
  return (dy, dx) if np.array_equal(expected, line) else False


def line_offsets(axis, blocks, height, width):
  """`shift_blocks`' plan as offsets per line: int32 (dy, dx), each [H,1] (axis 0, one per row)
  or [1,W] (axis 1, one per column), broadcasting to the image; a line of fill throughout reads
  from (y + H, x + W), outside the image."""
  lines = height if axis == 0 else width
  offsets = np.zeros([2, lines], np.int32)
  for start, stop, dy, dx in blocks:
    offsets[:, start:stop] = [[height], [width]] if dy is None else [[dy], [dx]]
  shape = [lines, 1] if axis == 0 else [1, lines]
  return offsets[0].reshape(shape), offsets[1].reshape(shape)


def _translation(axis, blocks, source, height, width):
  """(dy, dx) if `shift_blocks`' plan is one translation of the whole image, else None."""
  shifts = {(dy, dx) for _, _, dy, dx in blocks if dy is not None}
  if len(shifts) != 1:
    return None
  dy, dx = shifts.pop()
  ys, xs = np.mgrid[0:height, 0:width]
  ys, xs = ys + dy, xs + dx
  inside = (ys >= 0) & (ys < height) & (xs >= 0) & (xs < width)
  expected = np.where(inside, ys * width + xs, height * width).reshape(-1)
  return (dy, dx) if np.array_equal(expected, np.asarray(source).reshape(-1)) else None


def _pad_with_fill(images, pads, fill):
  """`images` [..., H, W, C] padded by pads = [(top, bottom), (left, right)] pixels of `fill`.

  Concatenated constant blocks rather than `tf.pad`: on a 224x224 uint8 image the pad costs
  about three times the copy that the concatenation makes (Eigen evaluates the padding per
  element).
  """
  for axis, (before, after) in zip((-3, -2), pads):
    if before or after:
      blocks = [_fill_block(images, axis, before, fill), images,
                _fill_block(images, axis, after, fill)]
      images = tf.concat([b for b in blocks if b is not None], axis=images.shape.rank + axis)
  return images


def _fill_block(images, axis, size, fill):
  """uint8 `fill` of the shape of `images` but `size` along `axis`; None when size is 0."""
  if not size:
    return None
  shape = _shape(images)
  shape[axis] = size
  return tf.fill(shape, tf.constant(fill, tf.uint8))


def _translate(images, dy, dx, fill):
  """out[y, x] = images[y + dy, x + dx], `fill` outside: the part that stays, padded once."""
  height, width = images.shape[-3], images.shape[-2]
  kept = images[..., max(dy, 0):height + min(dy, 0), max(dx, 0):width + min(dx, 0), :]
  return _pad_with_fill(kept, [(max(-dy, 0), max(dy, 0)), (max(-dx, 0), max(dx, 0))], fill)


# Python loops over static plans only: AutoGraph's conversion of them took 30 s per trace.
@tf.autograph.experimental.do_not_convert
def remap_table(images, table, rows, fill):
  """`remap` by rows of a static table: each image's source pixels are table[rows[b]].

  On one image of a static size (`compiled_lookups`), a switch over the table's rows runs the
  selected row's kernel (`remap_row`), each branch holding only its own row (TrivialAugment's 310
  rows at 224x224 are 62 MB); a row known when tracing (eagerly: every call) runs that row alone,
  the branch the switch would select. Everything else gathers.

  Args:
    images: uint8 [B,H,W,C] or [H,W,C].
    table: numpy int32 [R, H*W], rows of `affine_source_indices` for the images' size.
    rows: int32 [B] (or a scalar for one image), in [0, R).
    fill: the fill value (an int, one for all channels).

  Returns:
    uint8 of the shape of `images`.
  """
  if not compiled_lookups(images):
    return remap(images, tf.gather(tf.constant(table), rows), fill)
  row = tf.reshape(rows, [])
  known = tf.get_static_value(row)
  if known is not None:  # the switch's choice; it takes an index out of range as the last row
    chosen = int(known) if 0 <= known < len(table) else len(table) - 1
    return tf.ensure_shape(remap_row(images, table[chosen], fill), images.shape)
  branches = [functools.partial(remap_row, images, source, fill) for source in table]
  return tf.ensure_shape(private_api.unlowered_switch_case(row, branches), images.shape)


@tf.autograph.experimental.do_not_convert
def remap_row(images, source_indices, fill):
  """`remap` of a `compiled_lookups` image by one static row of `affine_source_indices`.

  A translation (`shift_blocks`) is one slice of the part that stays and one pad; another shift
  by rows or columns (ShearX, ShearY) one compiled gather at offsets computed per line
  (`_shift_lines`); anything else (Rotate) one compiled gather through the row. Measured at
  224x224 (one thread, CPU us per image): TranslateX 35-45 by slices against ~55 gathered, ShearX
  50-55 gathered against 55-110 by slices (up to 68 blocks of rows), ShearY 110-150 against
  110-250, Rotate ~170-190 against ~240 for TensorFlow's gather.

  Args:
    images: uint8 [H,W,C] or [1,H,W,C] (`compiled_lookups`).
    source_indices: numpy int [H*W], a row of `affine_source_indices`.
    fill: the fill value (an int, one for all channels).

  Returns:
    uint8 of the shape of `images`.
  """
  height, width = images.shape[-3], images.shape[-2]
  fill_value = tf.constant(fill, tf.uint8)
  plan = shift_blocks(source_indices, height, width)
  if plan is None:
    indices = tf.constant(np.asarray(source_indices, np.int32).reshape(height, width))
    return _one_image(images, lambda image: _gather_pixels(image, indices, fill_value))
  translation = _translation(*plan, source_indices, height, width)
  if translation is not None:  # one slice and one pad, not a pad of the whole image
    # Uncompiled: XLA's pad + dynamic slice (or concat) of uint8 [H,W,3] took 52-54 us, not 31-33.
    return _translate(images, *translation, fill)
  dy, dx = line_offsets(*plan, height, width)
  return _one_image(images, lambda image: _shift_lines(image, dy, dx, fill_value))


# ---------------------------------------------------------------------------
# Point operations: per-image, per-channel lookup tables.
# ---------------------------------------------------------------------------

def posterize_solarize(images, masks, thresholds):
  """Pillow's fixed point operations as arithmetic, one (mask, threshold) per image.

  out = x & mask, then 255 - that where it is >= threshold: ImageOps.posterize(b) is
  mask = ~(2**(8-b) - 1), threshold 256; ImageOps.solarize(t) is mask 255, threshold t;
  ImageOps.invert is mask 255, threshold 0. The same bytes as their 256-entry tables, without a
  per-pixel gather (an order of magnitude slower on the CPU, see augment_throughput --profile);
  255 - v is written v XOR 255, which needs no `tf.where`. Everything stays uint8: a threshold
  of 256 (never) becomes threshold 255 with nothing to XOR, so no pixel is widened to int32.

  Args:
    images: uint8 [B,H,W,C] or [H,W,C].
    masks: int32 [B] (or a scalar), bit masks in [0, 255].
    thresholds: int32 [B] (or a scalar), in [0, 256].

  Returns:
    uint8 of the shape of `images`.
  """
  if compiled_lookups(images):
    # One compiled pass of the same arithmetic: ~25 us at 224x224, against ~75 for a lookup of
    # the 256 levels' bytes and ~80 for these ops uncompiled (one thread).
    return _one_image(images, lambda image: _posterize_solarize_compiled(
        image, tf.reshape(masks, []), tf.reshape(thresholds, [])))
  return _posterize_solarize(images, masks, thresholds)


def _posterize_solarize(images, masks, thresholds):
  """`posterize_solarize`'s uint8 arithmetic, uncompiled (any batch) or compiled (below)."""
  thresholds = tf.cast(thresholds, tf.int32)
  flips = per_image(tf.cast(tf.where(thresholds <= 255, 255, 0), tf.uint8), images)
  thresholds = per_image(tf.cast(tf.minimum(thresholds, 255), tf.uint8), images)
  posterized = tf.bitwise.bitwise_and(images, per_image(tf.cast(masks, tf.uint8), images))
  inverted = tf.cast(posterized >= thresholds, tf.uint8) * flips
  return tf.bitwise.bitwise_xor(posterized, inverted)


_posterize_solarize_compiled = tf.function(_posterize_solarize, jit_compile=True)


def posterize_mask(bits):
  """The `posterize_solarize` mask of `ImageOps.posterize(image, bits)`: the top `bits` bits."""
  return 255 & ~(2**(8 - bits) - 1)


def _flat_channel_levels(images):
  """int32 [B,H,W,3]: each pixel value offset by 256 (3 b + c), its row in a [B*3*256] table.

  One index per (image, channel, level) serves both the histogram and the table lookup, with
  neither `batch_dims` nor `axis` (both several times slower per pixel on the CPU).
  """
  batch = tf.shape(images)[0]
  offsets = tf.reshape(tf.range(batch * 3) * _LEVELS, [batch, 1, 1, 3])
  return tf.cast(images, tf.int32) + offsets


def channel_histograms(images, levels=None):
  """int32 [B,3,256]: the per-channel histogram of each image (Image.histogram).

  Args:
    images: uint8 [B,H,W,3].
    levels: `_flat_channel_levels(images)` when the caller has it already.
  """
  if levels is None:
    levels = _flat_channel_levels(images)
  # histogram_fixed_width with one bin per flat level (bin width exactly 1, computed in float64)
  # counts them about twice as fast as tf.math.bincount(axis=-1) or unsorted_segment_sum.
  num_bins = tf.shape(images)[0] * 3 * _LEVELS
  bins = tf.maximum(num_bins, 1)  # the op needs a bin even for an empty batch
  counts = tf.histogram_fixed_width(levels, tf.stack([0, bins]), bins)
  return tf.reshape(counts[:num_bins], [-1, 3, _LEVELS])


def _autocontrast_map(values, lo, hi):
  """float64 `values` (pixels or table levels) through the stretch of a channel ranging lo..hi.

  Unchanged when hi <= lo, else v * scale + offset with scale = 255.0 / (hi - lo) and
  offset = -lo * scale, in float64 in Pillow's order (the order decides the value at hi).
  """
  stretch = hi > lo
  scale = tf.where(stretch, 255.0 / tf.maximum(hi - lo, 1.0), 1.0)
  offset = tf.where(stretch, -lo * scale, 0.0)  # scale 1, offset 0: v exactly
  return values * scale + offset


def autocontrast_stretch(images):
  """`ImageOps.autocontrast(image)` (cutoff 0) per image, as arithmetic on the pixels.

  Per channel, with lo/hi its lowest/highest value: unchanged when hi <= lo, else
  int(v * scale + offset) (`_autocontrast_map`). Pillow builds that table from the
  histogram; lo and hi are the channel's min and max, and every pixel lies in [lo, hi], so the
  same float64 expression evaluated per pixel gives the table's bytes without a histogram or a
  per-pixel gather (both far slower on the CPU than four elementwise ops).

  Args:
    images: uint8 [B,H,W,3].

  Returns:
    uint8 [B,H,W,3].
  """
  lo = tf.cast(tf.reduce_min(images, axis=[1, 2], keepdims=True), tf.float64)
  hi = tf.cast(tf.reduce_max(images, axis=[1, 2], keepdims=True), tf.float64)
  stretched = _autocontrast_map(tf.cast(images, tf.float64), lo, hi)
  # No clip (two float64 passes): Pillow's clip never acts on a pixel, which lies in [lo, hi].
  # At lo the sum is exactly 0 (offset is -round(lo * scale)) and rounding is monotone, so no
  # pixel goes below 0; at hi it is 255 within a few ulps, so none reaches 256.
  return tf.cast(stretched, tf.uint8)


def autocontrast_tables(lo, hi):
  """uint8 [..., 256]: `ImageOps.autocontrast`'s table of each channel from its lowest and
  highest values lo, hi (int [...]): `_autocontrast_map` of every level, clipped to [0, 255] as
  Pillow clips it (only levels outside [lo, hi], which no pixel has, need it)."""
  levels = tf.range(_LEVELS, dtype=tf.float64)
  lo, hi = (tf.cast(v, tf.float64)[..., None] for v in (lo, hi))
  return tf.cast(tf.clip_by_value(_autocontrast_map(levels, lo, hi), 0.0, 255.0), tf.uint8)


def equalize_luts(histograms, num_pixels):
  """The tables of `ImageOps.equalize(image)` (Pillow 13), from `channel_histograms`.

  Per channel: identity when at most one level is occupied or step == 0, else
  step = (num_pixels - count of the highest occupied level) // 255 and
  lut[i] = (step // 2 + number of pixels below level i) // step, clipped to 255 as
  Image.point clips its table.

  Args:
    histograms: int32 [B,3,256].
    num_pixels: int32 scalar, H*W.

  Returns:
    int32 [B,3,256].
  """
  levels = tf.range(_LEVELS)
  occupied = histograms > 0
  highest = tf.reduce_max(tf.where(occupied, levels, -1), axis=-1)
  highest_count = tf.gather(histograms, tf.maximum(highest, 0), batch_dims=2)
  step = ((num_pixels - highest_count) // 255)[..., None]
  below = tf.cumsum(histograms, axis=-1, exclusive=True)
  lut = tf.minimum((step // 2 + below) // tf.maximum(step, 1), 255)
  num_occupied = tf.reduce_sum(tf.cast(occupied, tf.int32), axis=-1, keepdims=True)
  return tf.where((num_occupied <= 1) | (step == 0), levels, lut)


# Per-pixel passes of one large image compiled by XLA. Measured on one 224x224 image (one thread,
# CPU us): TensorFlow's gather through a 768-entry table ~500-1,000 (a memcpy per value), the
# int32 levels with the channel offsets broadcast ~600, the bincount ~500; the compiled lookup
# with its levels ~150-200, the histogram ~100-200. Integer arithmetic and lookups only (and
# Brightness's lone float32 product, `_scale`): exact on any backend, nothing for XLA to contract
# into a fused multiply-add; the tables come from the kernels' own TensorFlow float ops. XLA
# compiles per shape, so only `compiled_lookups` images (one image of a static size) take this
# path; batches of varying sizes keep the plain ops.

def compiled_lookups(images):
  """Whether the kernels run their per-pixel passes compiled (`_histogram`, `_lookup`, the point
  arithmetic, Brightness's product, the shears' and Rotate's gathers): one image ([H,W,3] or
  [1,H,W,3]) of a static size that `one_image_at_a_time` takes."""
  return (images.shape.rank in (3, 4) and images.shape.is_fully_defined() and
          images.shape.num_elements() == images.shape[-3] * images.shape[-2] * images.shape[-1]
          and one_image_at_a_time(images))


def _channel_levels(image):
  """int32 [H,W,3]: each value offset by 256 c, its row in a flat [3*256] per-channel table."""
  return tf.cast(image, tf.int32) + tf.range(3) * _LEVELS


@tf.function(jit_compile=True)
def _histogram(image):
  """int32 [3,256]: the per-channel histogram of one image [H,W,3] (compiled, see above)."""
  levels = tf.reshape(_channel_levels(image), [-1])
  counts = tf.math.unsorted_segment_sum(tf.ones_like(levels), levels, 3 * _LEVELS)
  return tf.reshape(counts, [3, _LEVELS])


@tf.function(jit_compile=True)
def _channel_range(image):
  """uint8 [2,3]: the lowest and highest value of each channel of one image [H,W,3]."""
  return tf.stack([tf.reduce_min(image, axis=[0, 1]), tf.reduce_max(image, axis=[0, 1])])


@tf.function(jit_compile=True)
def _lookup(image, tables):
  """uint8 [H,W,3]: tables[c, image[y,x,c]], Image.point with a per-channel uint8 [3,256]
  table, on one image [H,W,3] (compiled, see above)."""
  return tf.gather(tf.reshape(tables, [-1]), _channel_levels(image))


@tf.function(jit_compile=True)
def _gather_pixels(image, indices, fill):
  """uint8 [H,W,C]: pixel indices[y,x] of one image [H,W,C] (flat, y*W + x), or `fill` at
  index H*W: `remap` compiled (see above)."""
  height, width, channels = image.shape
  pixels = tf.concat([tf.reshape(image, [height * width, channels]),
                      tf.fill([1, channels], fill)], axis=0)
  return tf.gather(pixels, indices)


@tf.function(jit_compile=True)
def _shift_lines(image, dy, dx, fill):
  """uint8 [H,W,C]: out[y,x] = image[y + dy, x + dx], or `fill` where that is outside the
  image, for offsets dy, dx (int32) that broadcast to [H,W]: one per row or per column
  (`line_offsets`). One compiled gather with the fill (see above)."""
  height, width, channels = image.shape
  ys = tf.range(height)[:, None] + dy
  xs = tf.range(width)[None, :] + dx
  inside = (ys >= 0) & (ys < height) & (xs >= 0) & (xs < width)
  # Clipped indices and a select: every index in range, so the gather needs no fill pixel.
  indices = tf.clip_by_value(ys, 0, height - 1) * width + tf.clip_by_value(xs, 0, width - 1)
  pixels = tf.gather(tf.reshape(image, [height * width, channels]), indices)
  return tf.where(inside[..., None], pixels, fill)


def _one_image(images, kernel):
  """`kernel` (fn(image [H,W,3]) -> uint8 [H,W,3]) on a `compiled_lookups` image of any rank."""
  return tf.reshape(kernel(tf.reshape(images, images.shape[-3:])), images.shape)


def _look_up_levels(images, table):
  """A `compiled_lookups` image through one uint8 [256] table in every channel."""
  return _one_image(images, lambda image: _lookup(image, tf.tile(table[None], [3, 1])))


def _one_image_as_batch(kernel):
  """Lets a batch-only kernel take one image [H,W,3] too, as a batch of one."""
  def wrapped(images):
    if images.shape.rank == 3:
      return kernel(images[None])[0]
    return kernel(images)
  wrapped.__doc__ = kernel.__doc__
  return wrapped


def autocontrast(images):
  """`ImageOps.autocontrast(image)` per image ([B,H,W,3] or [H,W,3]): on one large image its
  table (`autocontrast_tables`), else the stretch per pixel (`autocontrast_stretch`)."""
  if compiled_lookups(images):
    def one(image):
      lo, hi = tf.unstack(_channel_range(image))
      return _lookup(image, autocontrast_tables(lo, hi))
    return _one_image(images, one)
  return _one_image_as_batch(autocontrast_stretch)(images)


def equalize(images):
  """`ImageOps.equalize(image)` per image ([B,H,W,3] or [H,W,3]), as Image.point with its
  768-entry table: out[b,y,x,c] = lut[b,c,images[b,y,x,c]]."""
  if compiled_lookups(images):
    num_pixels = images.shape[-3] * images.shape[-2]
    def one(image):
      luts = equalize_luts(_histogram(image)[None], num_pixels)[0]
      return _lookup(image, tf.cast(luts, tf.uint8))
    return _one_image(images, one)
  return _one_image_as_batch(_equalize_batch)(images)


def _equalize_batch(images):
  """`equalize` of a batch [B,H,W,3] without compiling: one histogram and gather for all."""
  levels = _flat_channel_levels(images)
  num_pixels = tf.shape(images)[1] * tf.shape(images)[2]
  luts = equalize_luts(channel_histograms(images, levels), num_pixels)
  return tf.gather(tf.reshape(tf.cast(luts, tf.uint8), [-1]), levels)


# ---------------------------------------------------------------------------
# ImageEnhance: blends with a degenerate image.
# ---------------------------------------------------------------------------

def blend(degenerate, images, factors):
  """`Image.blend(degenerate, images, factor)` per image, as ImageEnhance's `enhance` runs it.

  Pillow computes in float32, `degenerate + factor * (image - degenerate)`, then clips to
  [0, 255] and truncates (libImaging/Blend.c); the same float32 operations are used here. The
  difference of two bytes is exact in float32, so both are cast once to float32 (not through
  int32 first).

  Args:
    degenerate: uint8, or float32 holding integers in [0, 255]: [B,H,W,3] or [H,W,3], or
      anything that broadcasts to `images` (e.g. one value per image, [B,1,1,1]).
    images: uint8 [B,H,W,3] or [H,W,3] (or float32 holding its integers, or one colour plane
      [B,H,W] or [H,W]).
    factors: float32 [B] (or a scalar for one image; Pillow passes the factor as a C float).

  Returns:
    uint8 of the shape of `images`.
  """
  if (images.dtype == tf.uint8 and compiled_lookups(images)
      and degenerate.shape.num_elements() == 1):
    # One degenerate value on one large image: the blend of the 256 levels, looked up.
    levels = tf.range(_LEVELS, dtype=tf.float32)
    return _look_up_levels(images, blend(tf.reshape(degenerate, []), levels,
                                         tf.reshape(factors, [])))
  degenerate = tf.cast(degenerate, tf.float32)
  blended = degenerate + per_image(factors, images) * (tf.cast(images, tf.float32) - degenerate)
  return tf.cast(tf.clip_by_value(blended, 0.0, 255.0), tf.uint8)


def grayscale(images):
  """int32 [...,H,W]: `convert('L')`, L = (19595 R + 38470 G + 7471 B + 0x8000) >> 16.

  The channels are unstacked rather than multiplied by a [3] vector and summed: broadcasting
  along the channel axis is several times slower per image on the CPU. The sum is never
  negative, so >> 16 is a shift rather than TensorFlow's (slower) integer floor division.
  """
  red, green, blue = tf.unstack(tf.cast(images, tf.int32), axis=-1)
  return tf.bitwise.right_shift(19595 * red + 38470 * green + 7471 * blue + 0x8000, 16)


def color(images, factors):
  """`ImageEnhance.Color(image).enhance(factor)` per image ([B,H,W,3] or [H,W,3]).

  On one large image (`compiled_lookups`), `color_table`'s blend of every (L, level) pair and a
  lookup by each pixel's L and value: 65,536 blends instead of three per pixel. Otherwise the
  blend with `convert('L').convert('RGB')`, plane by plane: L in float32 rather than in
  `grayscale`'s int32 (the weighted sum is an integer below 2**24, as the weights sum to 65536,
  so exact; the floor of its product with 2**-16 is the shift), from the float32 pixels the
  blend needs anyway, and each colour plane blended with L before one uint8 stack. Neither L nor
  a float32 image is stacked to three channels: two to three fewer passes over the image than
  an int32 L, stacked as a uint8 image and blended (which casts it and the image to float32).
  """
  if compiled_lookups(images):
    table = color_table(tf.reshape(factors, []))
    return _one_image(images, lambda image: _lookup_by_luminance(image, table))
  planes = tf.unstack(tf.cast(images, tf.float32), axis=-1)
  red, green, blue = planes
  luminance = tf.floor((19595 * red + 38470 * green + 7471 * blue + 0x8000) * 2.0**-16)
  return tf.stack([blend(luminance, plane, factors) for plane in planes], axis=-1)


# Every (L, level) pair as two float32 [256, 256] planes: rows L, columns the level.
_LUMINANCE_GRID, _LEVEL_GRID = np.mgrid[0:_LEVELS, 0:_LEVELS].astype(np.float32)


def color_table(factor):
  """uint8 [256,256]: `blend` of level v with luminance L by the factor (a scalar) at [L, v],
  the same float32 operations as on a pixel, so the same bytes."""
  return blend(tf.constant(_LUMINANCE_GRID), tf.constant(_LEVEL_GRID), factor)


@tf.function(jit_compile=True)
def _lookup_by_luminance(image, table):
  """uint8 [H,W,3]: table[L, image[y,x,c]], L the pixel's `grayscale`, with a uint8 [256,256]
  table, on one image [H,W,3] (compiled, see above; L in integers, exact)."""
  luminance = grayscale(image)[..., None]
  return tf.gather(tf.reshape(table, [-1]), _LEVELS * luminance + tf.cast(image, tf.int32))


def contrast_degenerate(images):
  """uint8 [B,1,1,1] (or a scalar for one image [H,W,3]): ImageEnhance.Contrast's degenerate, a
  flat image of the rounded L mean, as the one value `blend` broadcasts.

  Pillow's int(mean + 0.5) equals (2 * sum + n) // (2 * n) exactly in integers.
  """
  shape = _shape(images)
  num_pixels = shape[-3] * shape[-2]
  # int32 holds the sum of L over an image up to 8.4 megapixels; int64 beyond (or if unknown).
  wide = tf.int32 if isinstance(num_pixels, int) and 255 * num_pixels < 2**30 else tf.int64
  if compiled_lookups(images):
    total = tf.reshape(_luminance_total(tf.reshape(images, shape[-3:]), wide), shape[:-3])
  else:
    total = tf.reduce_sum(tf.cast(grayscale(images), wide), axis=[-2, -1])
  num_pixels = tf.cast(num_pixels, wide)
  mean = (2 * total + num_pixels) // (2 * num_pixels)
  return per_image(tf.cast(mean, tf.uint8), images)


@tf.function(jit_compile=True)
def _luminance_total(image, dtype):
  """The sum of `grayscale` over one image [H,W,3], in `dtype` (compiled, see above)."""
  return tf.reduce_sum(tf.cast(grayscale(image), dtype))


def brightness(images, factors):
  """`ImageEnhance.Brightness(image).enhance(factor)` per image ([B,H,W,3] or [H,W,3]): `blend`
  with a black image, whose float32 arithmetic 0 + factor * (v - 0) is the product alone.

  On one large image (`compiled_lookups`) that product, clipped and truncated, in one compiled
  pass: ~45 us at 224x224 against ~85 for the lookup of the 256 levels' blend (Pillow ~75). Exact
  under XLA: a single rounding of one float32 product, and no addition for XLA to contract it
  into a fused multiply-add with.
  """
  if compiled_lookups(images):
    return _one_image(images, lambda image: _scale(image, tf.reshape(factors, [])))
  return blend(tf.zeros_like(images), images, factors)  # full size: faster than broadcasting


@tf.function(jit_compile=True)
def _scale(image, factor):
  """uint8: the float32 product factor * v of each value v, clipped to [0, 255] and truncated."""
  return tf.cast(tf.clip_by_value(factor * tf.cast(image, tf.float32), 0.0, 255.0), tf.uint8)


# ImageFilter.SMOOTH: [[1, 1, 1], [1, 5, 1], [1, 1, 1]] / 13, one filter per channel.
_SMOOTH = np.tile(np.array([[1, 1, 1], [1, 5, 1], [1, 1, 1]], np.float32)[..., None, None],
                  [1, 1, 3, 1])


def sharpness_degenerate(images):
  """float32 [B,H,W,3] or [H,W,3] of integers: ImageEnhance.Sharpness's degenerate,
  `filter(ImageFilter.SMOOTH)`, in the float32 that `blend` takes.

  SMOOTH is [[1,1,1],[1,5,1],[1,1,1]] / 13 with rounding, and leaves the border unchanged.
  Pillow's rounding floor(S / 13 + 0.5) of the weighted sum S equals floor((S + 6.5) / 13),
  whose fraction is at least 1/26 away from an integer, so multiplying by float32(1/13) cannot
  move it across one. On a batch, S comes from one float32 depthwise convolution (exact: an
  integer below 2**24 in any order; several times faster than int32 slices); on one image, from
  slices, because inside the per-image path's Case branch the convolution ran ~6x slower.
  """
  pixels = tf.cast(images, tf.float32)
  if images.shape.rank == 4:
    sums = tf.nn.depthwise_conv2d(pixels, _SMOOTH, strides=[1, 1, 1, 1], padding="VALID")
    # On an empty batch the op returns the input's shape, not VALID's (TensorFlow 2.21).
    sums = tf.reshape(sums, tf.shape(pixels) - [0, 2, 2, 0])
  else:
    rows = pixels[:-2] + pixels[1:-1] + pixels[2:]
    sums = rows[:, :-2] + rows[:, 1:-1] + rows[:, 2:] + 4 * pixels[1:-1, 1:-1]
  smooth = tf.floor((sums + 6.5) * np.float32(1 / 13))
  middle_rows = tf.concat([pixels[..., 1:-1, :1, :], smooth, pixels[..., 1:-1, -1:, :]], axis=-2)
  return tf.concat([pixels[..., :1, :, :], middle_rows, pixels[..., -1:, :, :]], axis=-3)


# ---------------------------------------------------------------------------
# Mixed batches: each kernel once on its share.
# ---------------------------------------------------------------------------

# A kernel's float32 intermediates take 12 bytes a pixel; past this many pixels per image a
# batch's no longer stay in a core's cache between two elementwise ops, and running one image at a
# time is faster on the CPU (about 2x for a blend at 224x224) despite the loop.
_CACHE_PIXELS = 128 * 128


def one_image_at_a_time(images):
  """Whether a batch runs image by image (`image_by_image`): large images of a static size.

  The same condition makes each of those images' table kernels compiled (`compiled_lookups`).
  Unknown sizes keep the whole batch in one call, which is never much slower.
  """
  height, width = images.shape[-3], images.shape[-2]
  return height is not None and width is not None and height * width >= _CACHE_PIXELS


def image_by_image(fn, images, *per_image):
  """fn(image [H,W,C], *that image's parameters) -> uint8 [H,W,C] on each image of a batch.

  One image after another, in a while loop that slices each image out of the batch (a view of
  its memory, no copy) and collects the outputs in a TensorArray, stacked once. Measured at
  224x224 (one thread, CPU us per image, an identity fn): 18, against 28 for `tf.map_fn`, which
  copies the batch apart first.

  Args:
    fn: the per-image function.
    images: uint8 [B,H,W,C] (B may be 0).
    *per_image: tensors [B, ...], their row b passed with image b.

  Returns:
    uint8 of the shape of `images`.
  """
  count = tf.shape(images)[0]
  outputs = tf.TensorArray(tf.uint8, size=count, element_shape=images.shape[1:])
  def body(i, outputs):
    return i + 1, outputs.write(i, fn(images[i], *(p[i] for p in per_image)))
  _, outputs = tf.while_loop(lambda i, _: i < count, body, (0, outputs),
                             parallel_iterations=1)  # one after another: each image stays cached
  return tf.ensure_shape(outputs.stack(), images.shape)


def apply_partitioned(kernels, kernel_ids, images, *per_image):
  """Runs `kernels[i](images_i, *per_image_i)` on the images whose kernel id is i, in place.

  Each kernel runs once on its whole share.

  Args:
    kernels: fns(uint8 [b,H,W,3], *per-image tensors [b, ...]) -> uint8 [b,H,W,3].
    kernel_ids: int32 [B], in [0, len(kernels)).
    images: uint8 [B,H,W,3].
    *per_image: tensors [B, ...], partitioned alongside the images.

  Returns:
    uint8 [B,H,W,3], each image from its own kernel.
  """
  parts = [tf.dynamic_partition(t, kernel_ids, len(kernels))
           for t in (images, *per_image, tf.range(tf.shape(images)[0]))]
  outputs = [kernel(*args) for kernel, *args in zip(kernels, *parts[:-1])]
  return tf.ensure_shape(tf.dynamic_stitch(parts[-1], outputs), images.shape)
