"""Tests of ohl_tf.pil_ops' fast paths: each gives Pillow's bytes exactly, not only within the
tolerances of augment_pillow_test.py.

* The integer and float identities the kernels rely on, checked on every value they can meet.
* Shifts for translations and shears (`shift_blocks`) reproduce Pillow's sampling table.
* At 224x224 (`one_image_at_a_time`: kernels image by image, shifts by slices) every element
  and sign equals Pillow byte for byte on real images, on the batched and per-image paths.
"""

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from PIL import ImageOps

import pillow_reference as ref
from ohl_tf import augment
from ohl_tf import pil_ops
from ohl_tf import preprocess

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


@pytest.fixture(scope="module")
def images_224(cifar_images):
  """Four real CIFAR-10 images upscaled to 224x224 (the size one_image_at_a_time takes)."""
  return preprocess.resize_uint8(cifar_images[::64][:4], [224, 224]).numpy()


def test_224_takes_the_image_by_image_kernels(images_224):
  assert pil_ops.one_image_at_a_time(tf.constant(images_224))
  assert not pil_ops.one_image_at_a_time(tf.zeros([4, 32, 32, 3], tf.uint8))
  assert not pil_ops.one_image_at_a_time(tf.TensorSpec([None, None, None, 3], tf.uint8))


def _pillow(images, elements, signs):
  return np.stack([np.asarray(ref.pillow_element(Image.fromarray(x), e, s))
                   for x, e, s in zip(images, elements, signs)])


@pytest.mark.slow  # ~2 min on a loaded 2-core machine: the 224x224 graphs trace slowly
def test_every_element_is_byte_exact_at_224_on_both_paths(images_224):
  """All 72 cases in one mixed batch (each kernel's share image by image) and in a tf.data map
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
