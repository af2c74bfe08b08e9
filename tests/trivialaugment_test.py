"""ohl_tf.trivialaugment against Pillow, its draws, and a reproducible run.

  * The bins: torchvision 0.29.1's `TrivialAugmentWide._augmentation_space(31)`, typed below from
    the values torch 2.14.1 printed (its scalar linspace kernel), not computed like the module.
  * Every operation at all 31 bins and both signs, through the public batched path, on 256 real
    CIFAR-10 images, on a synthetic non-square 37x29 image, and at a spread of bins on a real
    224x224 mosaic: Pillow's bytes exactly. The Pillow calls (`_pillow`) are the ones
    torchvision's `_apply_op` makes on a PIL image, with the project's grey fill; unsigned
    operations give the same bytes for both signs, unbinned ones for every bin.
  * `apply_trivialaugment` end to end: Pillow replays each image's drawn operation, bin and sign.
  * The draws, with a fixed seed: each operation within 4 standard errors of 1/14, each bin of
    1/31, fair signs, operations and bins independent (chi-square); the same seed gives the same
    bytes, another seed other bytes, eagerly, in tf.function and in tf.data.
  * --policy=trivialaugment with --deterministic, run twice into two model_dirs: the same weights.

Run: .venv/bin/python -m pytest tests/trivialaugment_test.py -q
"""

import math

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from PIL import ImageEnhance
from PIL import ImageOps

import reproducible_run
from ohl_tf import augmentation_policies
from ohl_tf import operations
from ohl_tf import trivialaugment

_FILL = (128, 128, 128)  # docs/search_space.md; torchvision's default would be 0

# torch.linspace(0, 0.99, 31), torch 2.14.1 with ATEN_CPU_CAPABILITY=default (float32 values).
_POINT_99 = (
    0.0, 0.032999999821186066, 0.06599999964237213, 0.0989999994635582, 0.13199999928474426,
    0.16499999165534973, 0.1979999989271164, 0.23100000619888306, 0.2639999985694885,
    0.296999990940094, 0.32999998331069946, 0.3630000054836273, 0.3959999978542328,
    0.42899999022483826, 0.4620000123977661, 0.4950000047683716, 0.527999997138977,
    0.5609999895095825, 0.593999981880188, 0.6269999742507935, 0.6600000262260437,
    0.6930000185966492, 0.7260000109672546, 0.7590000033378601, 0.7919999957084656,
    0.8250000476837158, 0.8580000400543213, 0.8910000324249268, 0.9240000247955322,
    0.9570000171661377, 0.9900000095367432)
# int(torch.linspace(0, 32, 31)): bin 15 is 16 (torch's AVX kernels give 15.999999, i.e. 15).
_TRANSLATE_PIXELS = (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 16, 17, 18, 19, 20, 21, 22,
                     23, 24, 25, 26, 27, 28, 29, 30, 32)
_POSTERIZE_BITS = (8, 8, 8, 7, 7, 7, 7, 7, 6, 6, 6, 6, 6, 5, 5, 5, 5, 5, 4, 4, 4, 4, 4, 3, 3, 3, 3,
                   3, 2, 2, 2)
_BINS = range(31)
_SIGNS = (-1, 1)
_ENHANCERS = {"Brightness": ImageEnhance.Brightness, "Color": ImageEnhance.Color,
              "Contrast": ImageEnhance.Contrast, "Sharpness": ImageEnhance.Sharpness}


def _affine(img, coefficients):
  return img.transform(img.size, Image.Transform.AFFINE, coefficients, Image.Resampling.NEAREST,
                       fillcolor=_FILL)


def _shear_angle(shear):
  """torchvision passes `F.affine` the shear in degrees, degrees(atan(m)); it works in radians."""
  return math.radians(math.degrees(math.atan(shear)))


def _pillow(image, name, k, sign):
  """What torchvision's `_apply_op` does to a PIL image for TrivialAugmentWide's bin k and sign.

  Written from torchvision 0.29.1's functional code: shears about the top-left corner by the
  angle atan(m) (the inverse affine matrix (1, tan a, 0, 0, 1, 0), or (1, 0, 0, sin a / cos a,
  1, 0) as its matrix algebra computes the y-shear), translations by int(m) pixels (content moves
  right/down for m > 0: Pillow samples x - t), `Image.rotate` about the centre, ImageEnhance at
  1 + m, ImageOps for the rest; fill (128, 128, 128) instead of torchvision's default black.
  """
  img = Image.fromarray(image)
  if name == "ShearX":
    out = _affine(img, (1, math.tan(_shear_angle(sign * _POINT_99[k])), 0, 0, 1, 0))
  elif name == "ShearY":
    angle = _shear_angle(sign * _POINT_99[k])
    out = _affine(img, (1, 0, 0, math.sin(angle) / math.cos(angle), 1, 0))
  elif name == "TranslateX":
    out = _affine(img, (1, 0, -sign * _TRANSLATE_PIXELS[k], 0, 1, 0))
  elif name == "TranslateY":
    out = _affine(img, (1, 0, 0, 0, 1, -sign * _TRANSLATE_PIXELS[k]))
  elif name == "Rotate":
    out = img.rotate(sign * 4.5 * k, resample=Image.Resampling.NEAREST, fillcolor=_FILL)
  elif name in _ENHANCERS:
    out = _ENHANCERS[name](img).enhance(1.0 + sign * _POINT_99[k])
  elif name == "Posterize":
    out = ImageOps.posterize(img, _POSTERIZE_BITS[k])
  elif name == "Solarize":
    out = ImageOps.solarize(img, 255.0 - 8.5 * k)  # a float threshold, as torchvision passes it
  elif name == "AutoContrast":
    out = ImageOps.autocontrast(img)
  elif name == "Equalize":
    out = ImageOps.equalize(img)
  else:
    assert name == "Identity", name
    out = img
  return np.asarray(out)


def _forced(num_images, name, k, sign):
  """Decisions that apply `name` at bin k with `sign` to each of num_images images."""
  return trivialaugment.Decisions(
      np.full([num_images], trivialaugment.OPERATION_NAMES.index(name), np.int32),
      np.full([num_images], k, np.int32), np.full([num_images], sign, np.int32))


def _concatenate(decisions):
  return trivialaugment.Decisions(*(np.concatenate(parts) for parts in zip(*decisions)))


def _assert_exact(what, ours, pillow):
  assert ours.dtype == np.uint8 and ours.shape == pillow.shape, (what, ours.dtype, ours.shape)
  where = np.argwhere((ours != pillow).any(axis=-1))[:3].tolist()
  assert np.array_equal(ours, pillow), (
      f"{what}: {np.mean(ours == pillow):.5f} of the values equal; first differing pixels {where}")


@pytest.fixture(scope="module")
def synthetic_image():
  """A non-square 37x29 image: gradients (every intensity region) plus noise (edges)."""
  rng = np.random.default_rng(5)
  rows, columns = np.mgrid[0:29, 0:37]
  base = np.stack([columns * 7, rows * 9, (columns + rows) * 4], axis=-1)
  return np.clip(base + rng.integers(-40, 40, base.shape), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------
# The bins and the operations against Pillow.
# ---------------------------------------------------------------------------

def test_the_bins_are_torchvisions():
  assert trivialaugment.OPERATION_NAMES == (
      "Identity", "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness", "Color",
      "Contrast", "Sharpness", "Posterize", "Solarize", "AutoContrast", "Equalize")
  magnitudes = trivialaugment.MAGNITUDES
  for name in ("ShearX", "ShearY", "Brightness", "Color", "Contrast", "Sharpness"):
    assert magnitudes[name] == _POINT_99, name
  assert [int(m) for m in magnitudes["TranslateX"]] == list(_TRANSLATE_PIXELS)
  assert magnitudes["TranslateY"] == magnitudes["TranslateX"]
  assert magnitudes["Rotate"] == tuple(4.5 * k for k in _BINS)
  assert magnitudes["Posterize"] == _POSTERIZE_BITS
  assert magnitudes["Solarize"] == tuple(255 - 8.5 * k for k in _BINS)
  table = trivialaugment.operation_table()
  assert len(table.operations) == 3 + 11 * 31 and table.operations[0] == ("Identity", 0)
  index = table.operations.index
  # The parameters the kernels get: signed factors, ceil'd thresholds, Pillow's bit masks.
  np.testing.assert_array_equal(table.factors[index(("Contrast", 30))],
                                np.float32([1.0 - _POINT_99[30], 1.0 + _POINT_99[30]]))
  assert table.thresholds[index(("Solarize", 1))] == 247  # i < 246.5 keeps 0..246
  assert table.thresholds[index(("Solarize", 30))] == 0  # every pixel inverted
  assert table.masks[index(("Posterize", 30))] == 0b11000000


@pytest.mark.parametrize("name", trivialaugment.OPERATION_NAMES)
def test_every_bin_and_sign_matches_pillow_on_cifar(cifar_images, synthetic_image, name):
  """All 31 bins x both signs, on the 256 CIFAR images and on the synthetic image at once."""
  cases = [(k, sign) for k in _BINS for sign in _SIGNS]
  for batch in (cifar_images, synthetic_image[None]):
    decisions = _concatenate([_forced(len(batch), name, k, sign) for k, sign in cases])
    out = trivialaugment.apply_decisions(np.concatenate([batch] * len(cases)), decisions).numpy()
    reference = {}
    for (k, sign), ours in zip(cases, np.split(out, len(cases))):
      # What must not matter (a sign without direction, a bin without magnitude) is not passed.
      key = (k if name not in trivialaugment.UNBINNED else 0,
             sign if name in trivialaugment.SIGNED else 1)
      if key not in reference:
        reference[key] = np.stack([_pillow(x, name, *key) for x in batch])
      _assert_exact(f"{len(batch)} images {batch.shape[1:3]}, {name} bin {k} sign {sign:+d}",
                    ours, reference[key])


# The bins checked at 224x224 (all 31 are checked at 32x32 and 37x29 above). An image of a
# geometric operation costs the most here: at 224 each image runs alone and eagerly, a shear's
# blocks of shifted rows or columns (up to 222) one slice at a time; the full spread of bins would
# double this test's time. So those take the bins that reach each of their paths at 224: bin 0
# (the identity: a translation by 0; Pillow copies), bins 1 and 30 of the shears and translations
# (the smallest and largest: 8 and 222 blocks of shifted rows or columns, 1 and 32 pixels), and
# Rotate's bins 20 and 30 (the gather; 90 degrees, which Pillow transposes, and 135). The other
# operations cost little: the full spread.
_SPREAD_BINS_AT_224 = {
    **{name: (0, 1, 7, 15, 20, 30) for name in trivialaugment.OPERATION_NAMES},
    **{name: (0, 1, 30) for name in ("ShearX", "ShearY", "TranslateX", "TranslateY")},
    "Rotate": (0, 20, 30),
}


def test_a_spread_of_bins_matches_pillow_at_224(mosaic_224):
  cases = [(name, k, sign) for name in trivialaugment.OPERATION_NAMES
           for k in _SPREAD_BINS_AT_224[name] for sign in _SIGNS]
  decisions = _concatenate([_forced(1, *case) for case in cases])
  out = trivialaugment.apply_decisions(np.repeat(mosaic_224[None], len(cases), axis=0),
                                       decisions).numpy()
  for (name, k, sign), ours in zip(cases, out):
    _assert_exact(f"224x224 mosaic, {name} bin {k} sign {sign:+d}", ours,
                  _pillow(mosaic_224, name, k, sign))


def test_bin_0_is_the_identity_and_the_last_bin_changes_the_images(cifar_images):
  names = [n for n in trivialaugment.OPERATION_NAMES if n != "Identity"]
  batch = np.concatenate([cifar_images] * len(names))
  for k in (0, 30):
    decisions = _concatenate([_forced(len(cifar_images), name, k, 1) for name in names])
    out = dict(zip(names, np.split(trivialaugment.apply_decisions(batch, decisions).numpy(),
                                   len(names))))
    for name, ours in out.items():
      changed = (ours != cifar_images).any(axis=(1, 2, 3))
      if name == "Solarize" and k == 0:  # threshold 255: only the images holding a 255 change
        np.testing.assert_array_equal(changed, (cifar_images == 255).any(axis=(1, 2, 3)))
      elif k == 30 or name in trivialaugment.UNBINNED:
        assert changed.mean() > 0.5, (name, k, changed.mean())
      else:
        assert not changed.any(), (name, k, changed.mean())
  # Translating 32 pixels moves a 32x32 image out entirely: all fill, as torchvision's.
  assert (out["TranslateX"] == 128).all() and (out["TranslateY"] == 128).all()


def test_apply_trivialaugment_is_pillow_per_image(cifar_images, synthetic_image):
  seed = [2021, 3]
  for images in (cifar_images, np.repeat(synthetic_image[None], 64, axis=0)):
    decisions = trivialaugment.sample_decisions(len(images), seed)
    ours = trivialaugment.apply_trivialaugment(images, seed).numpy()
    pillow = np.stack([
        _pillow(image, trivialaugment.OPERATION_NAMES[operation], k, sign)
        for image, operation, k, sign in zip(images, *(t.numpy() for t in decisions))])
    _assert_exact(f"{len(images)} images {images.shape[1:3]}, seed {seed}", ours, pillow)
    assert (ours != images).any(axis=(1, 2, 3)).mean() > 0.5


# ---------------------------------------------------------------------------
# The draws, determinism, contexts.
# ---------------------------------------------------------------------------

def test_operations_and_bins_are_uniform_and_independent_and_signs_fair():
  n = 40000
  operations, bins, signs = (t.numpy() for t in trivialaugment.sample_decisions(n, [7, 8]))
  assert operations.shape == bins.shape == signs.shape == (n,)
  for draws, categories in ((operations, trivialaugment.NUM_OPERATIONS),
                            (bins, trivialaugment.NUM_MAGNITUDE_BINS)):
    counts = np.bincount(draws, minlength=categories)
    assert len(counts) == categories  # nothing out of range
    p = 1 / categories
    standard_error = np.sqrt(n * p * (1 - p))
    assert np.all(np.abs(counts - n * p) < 4 * standard_error), counts
  assert set(np.unique(signs)) == {-1, 1}
  assert abs(signs.mean()) < 4 / np.sqrt(n)
  # Independence of operation and bin: chi-square of the 14 x 31 table, 390 degrees of
  # freedom, within 4 of its standard deviations (sqrt(2 df)) of its mean df.
  joint = np.zeros([trivialaugment.NUM_OPERATIONS, trivialaugment.NUM_MAGNITUDE_BINS])
  np.add.at(joint, (operations, bins), 1)
  expected = np.outer(joint.sum(1), joint.sum(0)) / n
  chi_square = ((joint - expected) ** 2 / expected).sum()
  dof = (joint.shape[0] - 1) * (joint.shape[1] - 1)
  assert chi_square < dof + 4 * np.sqrt(2 * dof), chi_square
  # The sign is independent of the operation too: fair within each.
  for operation in range(trivialaugment.NUM_OPERATIONS):
    chosen = signs[operations == operation]
    assert abs(chosen.mean()) < 4 / np.sqrt(len(chosen)), operation


def test_same_seed_same_bytes_other_seed_other_bytes(cifar_images):
  images = cifar_images[:64]
  first = trivialaugment.apply_trivialaugment(images, [1, 2]).numpy()
  for seed in ([1, 2], np.array([1, 2], np.int32), tf.constant([1, 2], tf.int64)):
    np.testing.assert_array_equal(trivialaugment.apply_trivialaugment(images, seed), first)
  assert not np.array_equal(trivialaugment.apply_trivialaugment(images, [1, 3]), first)
  assert not np.array_equal(trivialaugment.apply_trivialaugment(images, [2, 2]), first)
  np.testing.assert_array_equal(trivialaugment.apply_trivialaugment(images, 4),
                                trivialaugment.apply_trivialaugment(images, [4, 0]))


def test_tf_function_and_tf_data_give_the_eager_bytes(cifar_images):
  images = cifar_images[:96]
  fn = tf.function(trivialaugment.apply_trivialaugment,
                   input_signature=[tf.TensorSpec([None, 32, 32, 3], tf.uint8),
                                    tf.TensorSpec([2], tf.int32)])
  batches = [images[i:i + 32] for i in range(0, 96, 32)]
  eager = [trivialaugment.apply_trivialaugment(b, [9, i]).numpy() for i, b in enumerate(batches)]
  for i, b in enumerate(batches):
    np.testing.assert_array_equal(fn(b, tf.constant([9, i])), eager[i])
  dataset = tf.data.Dataset.from_tensor_slices(images).batch(32).enumerate()
  dataset = dataset.map(lambda i, b: trivialaugment.apply_trivialaugment(
      b, tf.stack([tf.constant(9, tf.int64), i])), num_parallel_calls=2)
  for got, want in zip(dataset, eager):
    assert got.shape.as_list() == [32, 32, 32, 3]
    np.testing.assert_array_equal(got, want)
  assert not np.array_equal(eager[0], eager[1][:32])  # the batches got their own draws


@pytest.mark.parametrize("dataset", ["cifar10", "imagenet2012", "svhn_cropped"])
def test_the_policy_flag_runs_trivialaugment_for_every_dataset(cifar_images, dataset):
  augment_batch = augmentation_policies.parse("trivialaugment").augment_batch(dataset)
  np.testing.assert_array_equal(augment_batch(cifar_images[:32], [5, 6]),
                                trivialaugment.apply_trivialaugment(cifar_images[:32], [5, 6]))


# ---------------------------------------------------------------------------
# Bad arguments: a ValueError naming the argument.
# ---------------------------------------------------------------------------

_IMAGES = np.zeros([2, 8, 8, 3], np.uint8)


def test_bad_images_and_seed():
  with pytest.raises(ValueError, match=r"images must be uint8"):
    trivialaugment.apply_trivialaugment(_IMAGES.astype(np.float32), [0, 1])
  with pytest.raises(ValueError, match=r"images must be a batch \[B,H,W,3\]"):
    trivialaugment.apply_trivialaugment(_IMAGES[0], [0, 1])
  with pytest.raises(ValueError, match=r"images must be at least 3x3"):
    trivialaugment.apply_trivialaugment(_IMAGES[:, :2], [0, 1])
  with pytest.raises(ValueError, match=r"seed must be an int or an integer tensor of shape \[2\]"):
    trivialaugment.apply_trivialaugment(_IMAGES, [0, 1, 2])
  with pytest.raises(ValueError, match=r"seed must be an int or an integer tensor of shape \[2\]"):
    trivialaugment.apply_trivialaugment(_IMAGES, [0.5, 1.0])


def test_a_direction_for_posterize_or_solarize_is_refused():
  """The compiler keeps one mask and threshold per operation: they cannot take a sign."""
  def signed_threshold(name, level, sign, width, height):
    del name, width, height
    return 128 + sign * level
  with pytest.raises(ValueError, match=r"Solarize has no direction: its parameter must not "
                     r"depend on the sign. Received: level=3"):
    operations.compile_operations((("Solarize", 3),), signed_threshold)


# ---------------------------------------------------------------------------
# A reproducible run: --policy=trivialaugment --deterministic, twice.
# ---------------------------------------------------------------------------

def test_a_deterministic_trivialaugment_run_is_reproduced_from_its_seed(tmp_path):
  reproducible_run.assert_two_deterministic_runs_match(tmp_path, "trivialaugment")
