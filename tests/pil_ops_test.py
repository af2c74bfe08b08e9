"""Tests of ohl_tf.pil_ops' fast paths: each gives Pillow's bytes exactly, not only within the
tolerances of augment_pillow_test.py.

* The integer and float identities the kernels rely on, checked on every value they can meet.
* Shifts for translations and shears (`shift_blocks`) reproduce Pillow's sampling table.
* At 224x224 (`one_image_at_a_time`: kernels image by image, shifts by slices) every element
  and sign equals Pillow byte for byte on real images, on the batched and per-image paths.
* The table kernels (Equalize, AutoContrast, Color, Contrast, Brightness, the point operations)
  equal Pillow on images built for their edge cases, both compiled (`compiled_lookups`: one 224x224 image) and on a batch.
"""

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from PIL import ImageEnhance
from PIL import ImageOps

import pillow_reference as ref
from ohl_tf import augment
from ohl_tf import pil_ops
from ohl_tf import preprocess
from ohl_tf import trivialaugment

_CASES = [(e, s) for e in range(augment.NUM_ELEMENTS) for s in (1, -1)]


def test_sharpness_rounding_is_pillows_on_every_sum():
  # S = the SMOOTH-weighted sum of a 3x3 neighbourhood, 0 .. 13 * 255.
  sums = np.arange(13 * 255 + 1)
  ours = np.floor((sums.astype(np.float32) + np.float32(6.5)) * np.float32(1 / 13))
  np.testing.assert_array_equal(ours, (2 * sums + 13) // 26)


def test_posterize_solarize_in_uint8_equals_the_tables():
  values = tf.constant(np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1))
  for mask in [pil_ops.posterize_mask(b) for b in range(1, 9)]:
    thresholds = np.arange(257)
    out = pil_ops.posterize_solarize(tf.repeat(values, 257, axis=0),
                                     tf.fill([257], mask), tf.constant(thresholds)).numpy()
    posterized = np.arange(256) & mask
    expected = np.where(posterized[None] >= thresholds[:, None], 255 - posterized[None],
                        posterized[None])
    np.testing.assert_array_equal(out.reshape(257, 256), expected, err_msg=f"mask {mask}")


def test_color_luminance_in_float32_is_pillows_on_every_pixel():
  # color's float32 L, in its order of operations, against convert('L') on all 256**3 pixels.
  green, blue = [v.astype(np.float32).ravel() for v in np.mgrid[0:256, 0:256]]
  for red in range(256):
    sums = 19595 * np.float32(red) + 38470 * green + 7471 * blue + 0x8000
    ours = np.floor(sums * np.float32(2.0**-16))
    expected = (19595 * red + 38470 * green.astype(np.int64) + 7471 * blue.astype(np.int64)
                + 0x8000) >> 16
    np.testing.assert_array_equal(ours, expected, err_msg=f"red {red}")


def test_autocontrast_stretch_equals_pillow_for_every_range():
  """Every (lo, hi), lo <= hi, as a channel holding every value in [lo, hi]: the stretch without
  a clip gives ImageOps.autocontrast's bytes (its clip never acts)."""
  ranges = [(lo, hi) for lo in range(256) for hi in range(lo, 256)]
  ranges += ranges[:(-len(ranges)) % 3]  # whole images of three channels
  channels = np.array([np.minimum(lo + np.arange(256), hi) for lo, hi in ranges], np.uint8)
  images = channels.reshape(-1, 3, 1, 256).transpose(0, 2, 3, 1)  # [N, 1, 256, 3]
  ours = pil_ops.autocontrast_stretch(tf.constant(images)).numpy()
  expected = np.stack([np.asarray(ImageOps.autocontrast(Image.fromarray(x))) for x in images])
  np.testing.assert_array_equal(ours, expected)
  # The tables of the compiled path, looked up at every pixel, give the same bytes.
  tables = pil_ops.autocontrast_tables(images.min(axis=(1, 2)), images.max(axis=(1, 2))).numpy()
  looked_up = np.take_along_axis(tables[:, None, None], images[..., None], axis=-1)[..., 0]
  np.testing.assert_array_equal(looked_up, expected)


@pytest.mark.parametrize("height,width", [(224, 224), (32, 32), (31, 45)])
def test_shift_blocks_reproduce_the_sampling_table(height, width):
  table = augment.element_table().source_table(height, width)
  for row, source in enumerate(table):
    name = augment.ELEMENTS[row // 2].name
    plan = pil_ops.shift_blocks(source, height, width)
    if name == "Rotate":
      assert plan is None, f"row {row} (Rotate) at {height}x{width} is not a shift"
      continue
    assert plan is not None, f"row {row} ({name}) at {height}x{width} found no shift"
    axis, blocks = plan
    assert axis == (1 if name == "ShearY" else 0), f"row {row} ({name}): axis {axis}"
    rebuilt = np.full((height, width), height * width)
    for start, stop, dy, dx in blocks:
      if dy is None:
        continue
      ys, xs = np.mgrid[0:height, 0:width]
      lines = ys if axis == 0 else xs
      ys, xs = ys + dy, xs + dx
      valid = (lines >= start) & (lines < stop) & (ys >= 0) & (ys < height) & (xs >= 0) & (
          xs < width)
      rebuilt[valid] = (ys * width + xs)[valid]
    np.testing.assert_array_equal(rebuilt.reshape(-1), source, err_msg=f"row {row} ({name})")


def test_shift_blocks_refuse_what_is_not_a_shift():
  rng = np.random.default_rng(0)
  assert pil_ops.shift_blocks(rng.permutation(64), 8, 8) is None


def _shifted(height, width, axis, dy, dx):
  """A row of `affine_source_indices`: out[y, x] = in[y + dy, x + dx] (dy, dx per row, axis 0,
  or per column, axis 1), H*W (the fill) where that is outside."""
  ys, xs = np.mgrid[0:height, 0:width]
  lines = ys if axis == 0 else xs
  ys, xs = ys + np.asarray(dy)[lines], xs + np.asarray(dx)[lines]
  inside = (ys >= 0) & (ys < height) & (xs >= 0) & (xs < width)
  return np.where(inside, ys * width + xs, height * width).reshape(-1).astype(np.int32)


def _remapped(image, source, fill):
  pixels = np.concatenate([image.reshape(-1, image.shape[-1]),
                           np.full([1, image.shape[-1]], fill, np.uint8)])
  return pixels[source].reshape(image.shape)


def _assert_remap_row(image, source, fill, name):
  """`remap_row` (compiled, [H,W,3] and [1,H,W,3]) and `remap_table` on a batch (a gather, not
  compiled) give numpy's remap of `image` through `source`."""
  expected = _remapped(image, source, fill)
  np.testing.assert_array_equal(pil_ops.remap_row(tf.constant(image), source, fill), expected,
                                err_msg=f"{name}: compiled")
  np.testing.assert_array_equal(pil_ops.remap_row(tf.constant(image[None]), source, fill)[0],
                                expected, err_msg=f"{name}: compiled, [1,H,W,3]")
  batch = pil_ops.remap_table(tf.constant(np.stack([image, image])), source[None], [0, 0], fill)
  np.testing.assert_array_equal(batch[1], expected, err_msg=f"{name}: batch")


_H, _W = 130, 150  # not square, and large enough for compiled kernels


def _line_shifts(length, size):
  """Per-line shifts of every kind: 0, +-1, the largest that keeps a pixel (+-(size-1)), and
  +-size (a line of fill throughout), in runs and alone."""
  kinds = np.array([0, 1, -1, size - 1, 1 - size, size, -size, 0, 0, 2, 2, 2, -3])
  return np.resize(kinds, length)


@pytest.mark.parametrize("fill", [0, 128, 255])
@pytest.mark.parametrize("axis", [0, 1])
def test_shifts_by_lines_are_exact_at_every_offset(axis, fill):
  image = np.random.default_rng(axis).integers(0, 256, [_H, _W, 3], dtype=np.uint8)
  lines, size = (_H, _W) if axis == 0 else (_W, _H)
  shifts = _line_shifts(lines, size)
  zeros = np.zeros(lines, np.int32)
  for name, across in [("shear", shifts), ("shear with a shift across", shifts % 3 - 1)]:
    dy, dx = (zeros if axis == 0 else shifts, shifts if axis == 0 else zeros)
    if name != "shear":  # every line also moves across the lines (a shear plus a translation)
      dy, dx = (dy + across, dx) if axis == 0 else (dy, dx + across)
    source = _shifted(_H, _W, axis, dy, dx)
    assert pil_ops.shift_blocks(source, _H, _W) is not None
    _assert_remap_row(image, source, fill, f"axis {axis}, {name}")


@pytest.mark.parametrize("dy,dx", [(0, 0), (0, 149), (0, -149), (129, 0), (-129, 0), (0, 150),
                                   (-130, 0), (7, -11), (-64, 75)])
def test_translations_are_exact_at_every_offset(dy, dx):
  image = np.random.default_rng(1).integers(0, 256, [_H, _W, 3], dtype=np.uint8)
  source = _shifted(_H, _W, 0, np.full(_H, dy), np.full(_H, dx))
  _assert_remap_row(image, source, 128, f"translation ({dy}, {dx})")


def test_what_is_not_a_shift_gathers_exactly():
  image = np.random.default_rng(2).integers(0, 256, [_H, _W, 3], dtype=np.uint8)
  source = np.random.default_rng(3).integers(0, _H * _W + 1, _H * _W).astype(np.int32)
  source[:100] = _H * _W  # the fill, at the first index and elsewhere
  assert pil_ops.shift_blocks(source, _H, _W) is None
  _assert_remap_row(image, source, 77, "a random remap")


@pytest.mark.slow  # 300 rows' tables and kernels at 224x224
def test_every_geometric_row_of_trivialaugment_is_exact_at_224(cifar_images):
  """TrivialAugment's 31 bins of each geometric operation (magnitude 0 among them) and both
  signs: the compiled kernel of each row gives its table's pixels."""
  table = trivialaugment.operation_table()
  image = preprocess.resize_uint8(cifar_images[5], [224, 224]).numpy()
  for row, source in enumerate(table.source_table(224, 224)):
    name = table.geometric_operations[row // 2]
    np.testing.assert_array_equal(pil_ops.remap_row(tf.constant(image), source, 128),
                                  _remapped(image, source, 128),
                                  err_msg=f"{name}, sign {1 if row % 2 else -1}")


@pytest.fixture(scope="module")
def images_224(cifar_images):
  """Four real CIFAR-10 images upscaled to 224x224 (the size one_image_at_a_time takes)."""
  return preprocess.resize_uint8(cifar_images[::64][:4], [224, 224]).numpy()


def test_224_takes_the_image_by_image_kernels(images_224):
  assert pil_ops.one_image_at_a_time(tf.constant(images_224))
  assert not pil_ops.one_image_at_a_time(tf.zeros([4, 32, 32, 3], tf.uint8))
  assert not pil_ops.one_image_at_a_time(tf.TensorSpec([None, None, None, 3], tf.uint8))


def test_compiled_lookups_take_one_large_image_of_a_static_size():
  assert pil_ops.compiled_lookups(tf.zeros([224, 224, 3], tf.uint8))
  assert pil_ops.compiled_lookups(tf.zeros([1, 224, 224, 3], tf.uint8))
  assert not pil_ops.compiled_lookups(tf.zeros([2, 224, 224, 3], tf.uint8))
  assert not pil_ops.compiled_lookups(tf.zeros([1, 32, 32, 3], tf.uint8))
  assert not pil_ops.compiled_lookups(tf.TensorSpec([None, 224, 224, 3], tf.uint8))


_SIDE = 224
_NUM_PIXELS = _SIDE * _SIDE


def _channel(kind, rng):
  """A 224x224 channel whose histogram is one of the table kernels' edge cases."""
  few = lambda count, below: np.r_[rng.integers(0, below, count),
                                   np.full(_NUM_PIXELS - count, below)]
  values = {
      "one level": lambda: np.full(_NUM_PIXELS, 77),
      "two levels": lambda: np.where(rng.random(_NUM_PIXELS) < 0.3, 10, 200),
      "all 256 levels": lambda: np.r_[np.arange(256), rng.integers(0, 256, _NUM_PIXELS - 256)],
      "0 and 255 only": lambda: np.where(rng.random(_NUM_PIXELS) < 0.5, 0, 255),
      # Equalize's step excludes the highest level's count, h[-1]: step 0 (identity), step 1,
      # and a large h[-1] below 255.
      "step 0": lambda: few(254, 250),
      "step 1": lambda: few(300, 240),
      "large highest level": lambda: few(_NUM_PIXELS // 3, 180),
      "uniform": lambda: rng.integers(0, 256, _NUM_PIXELS),
      "narrow": lambda: rng.integers(100, 104, _NUM_PIXELS),
  }[kind]()
  return rng.permutation(values).reshape(_SIDE, _SIDE)


_KINDS = ("one level", "two levels", "all 256 levels", "0 and 255 only", "step 0", "step 1",
          "large highest level", "uniform", "narrow")


@pytest.fixture(scope="module")
def edge_images():
  """uint8 [9,224,224,3]: every kind of channel, in each of the three channels."""
  rng = np.random.default_rng(19)
  kinds = [(_KINDS[i], _KINDS[(i + 3) % 9], _KINDS[(i + 6) % 9]) for i in range(len(_KINDS))]
  return np.stack([np.stack([_channel(k, rng) for k in three], axis=-1)
                   for three in kinds]).astype(np.uint8)


def _assert_both_ways(kernel, pillow, images, name):
  """`kernel` on each image alone ([H,W,3] and [1,H,W,3], compiled) and on the whole batch
  (not compiled) against `pillow` image by image: every byte equal."""
  expected = np.stack([np.asarray(pillow(Image.fromarray(x))) for x in images])
  batch = kernel(tf.constant(images)).numpy()
  for i, image in enumerate(images):
    np.testing.assert_array_equal(kernel(tf.constant(image)).numpy(), expected[i],
                                  err_msg=f"{name}: image {i}, compiled, [H,W,3]")
    np.testing.assert_array_equal(kernel(tf.constant(image[None]))[0].numpy(), expected[i],
                                  err_msg=f"{name}: image {i}, compiled, [1,H,W,3]")
    np.testing.assert_array_equal(batch[i], expected[i], err_msg=f"{name}: image {i}, batch")


def test_equalize_equals_pillow_on_its_edge_cases(edge_images):
  _assert_both_ways(pil_ops.equalize, ImageOps.equalize, edge_images, "Equalize")


def test_autocontrast_equals_pillow_on_its_edge_cases(edge_images):
  _assert_both_ways(pil_ops.autocontrast, ImageOps.autocontrast, edge_images, "AutoContrast")


_ENHANCERS = {
    "Color": (pil_ops.color, ImageEnhance.Color),
    "Contrast": (lambda images, factors: pil_ops.blend(
        pil_ops.contrast_degenerate(images), images, factors), ImageEnhance.Contrast),
    "Brightness": (pil_ops.brightness, ImageEnhance.Brightness),
}


@pytest.mark.parametrize("name", sorted(_ENHANCERS))
@pytest.mark.parametrize("factor", [0.0, 0.1, 0.7, 1.0, 1.3, 1.9, 3.0])
def test_enhancers_equal_pillow_on_every_kind_of_pixel(edge_images, name, factor):
  """Factors beyond 1 clip at both ends; the uniform channels meet most (L, v) pairs."""
  kernel, enhancer = _ENHANCERS[name]
  def enhance(images):
    return kernel(images, tf.fill(tf.shape(images)[:-3], factor))
  pillow = lambda image: enhancer(image).enhance(factor)
  _assert_both_ways(enhance, pillow, edge_images[[0, 3, 7]], f"{name} {factor}")


_POINT = [(f"Posterize {bits}", pil_ops.posterize_mask(bits), 256,
           lambda image, bits=bits: ImageOps.posterize(image, bits)) for bits in range(1, 9)]
_POINT += [(f"Solarize {t}", 255, t, lambda image, t=t: ImageOps.solarize(image, t))
           for t in (0, 1, 26, 128, 255, 256)]
_POINT += [("Invert", 255, 0, ImageOps.invert)]


@pytest.mark.parametrize("name,mask,threshold,pillow", _POINT, ids=[p[0] for p in _POINT])
def test_point_operations_equal_pillow_on_every_level(edge_images, name, mask, threshold,
                                                      pillow):
  def point(images):
    count = tf.shape(images)[:-3]
    return pil_ops.posterize_solarize(images, tf.fill(count, mask), tf.fill(count, threshold))
  _assert_both_ways(point, pillow, edge_images[[2, 7]], name)


def _pillow(images, elements, signs):
  return np.stack([np.asarray(ref.pillow_element(Image.fromarray(x), e, s))
                   for x, e, s in zip(images, elements, signs)])


@pytest.mark.slow  # ~2 min on a loaded 2-core machine: the 224x224 graphs trace slowly
def test_every_element_is_byte_exact_at_224_on_both_paths(images_224):
  """All 72 cases in one mixed batch (image by image, each through the switch) and in a tf.data map
  (the per-image path), on real images, against Pillow: every byte equal."""
  images = images_224[np.arange(len(_CASES)) % len(images_224)]
  elements = np.array([e for e, _ in _CASES], np.int32)
  signs = np.array([s for _, s in _CASES], np.int32)
  expected = _pillow(images, elements, signs)
  batched = tf.function(augment.apply_element, autograph=False)(
      tf.constant(images), tf.constant(elements), tf.constant(signs)).numpy()
  dataset = tf.data.Dataset.from_tensor_slices((images, elements, signs))
  per_image = next(iter(dataset.map(augment.apply_element).batch(len(_CASES)))).numpy()
  for i, (element, sign) in enumerate(_CASES):
    case = ref.element_id(element, sign)
    np.testing.assert_array_equal(batched[i], expected[i], err_msg=f"batched {case}")
    np.testing.assert_array_equal(per_image[i], expected[i], err_msg=f"per-image {case}")
