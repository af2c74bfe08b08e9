"""Tests of ohl_tf.preprocess on real CIFAR-10 images: exact pixels, seeds, tf.data."""

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import cifar_testing
from ohl_tf import preprocess

# ---------------------------------------------------------------------------------------------
# Helpers.
# ---------------------------------------------------------------------------------------------

MODES = ("eager", "tf_function", "tf_data")


def _seeds(n):
  return np.stack([np.full(n, 1234), np.arange(n)], axis=1).astype(np.int64)


def _run(fn, images, seeds, mode):
  """Maps fn(image, seed) over aligned images and seeds in one mode; returns a numpy batch."""
  if mode == "tf_data":
    ds = tf.data.Dataset.from_tensor_slices((images, seeds)).map(fn).batch(len(images))
    return next(iter(ds)).numpy()
  call = tf.function(fn) if mode == "tf_function" else fn
  return np.stack([call(tf.constant(x), tf.constant(s)).numpy() for x, s in zip(images, seeds)])


def _tiles(cifar_images, rows, cols):
  """A real [32*rows, 32*cols, 3] image: a mosaic of CIFAR-10 images."""
  tiles = cifar_images[:rows * cols].reshape(rows, cols, 32, 32, 3)
  return tiles.transpose(0, 2, 1, 3, 4).reshape(32 * rows, 32 * cols, 3).copy()


def _cutout_masks(fn, images):
  """Recovers the square painted by fn(images) exactly, whatever the image content.

  fn must paint the same squares whatever the content (the centres depend on the seed only).
  A pixel outside the square keeps its value, so it equals the fill in both x and 255 - x only
  if 2 * fill == 255, impossible for integers: both equal the fill exactly inside the square.
  """
  fill = np.array(FILL, np.uint8)
  return ((fn(images) == fill).all(-1) & (fn(255 - images) == fill).all(-1))


def _square_of(mask, size):
  """Checks that a [H, W] mask is the clipped square of some centre; returns (cy, cx)."""
  height, width = mask.shape
  rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
  assert mask.sum() == len(rows) * len(cols), "the painted region is not a rectangle"
  np.testing.assert_array_equal(np.diff(rows), 1)
  np.testing.assert_array_equal(np.diff(cols), 1)
  centre = []
  for index, extent in ((rows, height), (cols, width)):
    # An unclipped start gives the centre; otherwise the unclipped end does.
    c = index[0] + size // 2 if index[0] > 0 else index[-1] + 1 - size + size // 2
    assert 0 <= c < extent
    lo, hi = max(c - size // 2, 0), min(c - size // 2 + size, extent)
    np.testing.assert_array_equal(index, np.arange(lo, hi))
    centre.append(c)
  return tuple(centre)


FILL = preprocess.mean_colour(preprocess.CIFAR10_MEAN)

# Every random function as fn(image, seed), with the number of distinct outputs that 16 seeds
# must give at least (a flip has only two).
RANDOM_OPS = {
    "random_flip": (preprocess.random_flip, 2),
    "random_pad_crop": (preprocess.random_pad_crop, 12),
    "cifar_train_base": (preprocess.cifar_train_base, 12),
    "cutout": (lambda x, s: preprocess.cutout(x, s, 16, fill=FILL), 14),
    "imagenet_train_base": (lambda x, s: preprocess.imagenet_train_base(
        tf.image.resize(x, [48, 40], "nearest"), s, size=24), 14),
}

# ---------------------------------------------------------------------------------------------
# Seeds, modes.
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", RANDOM_OPS)
def test_same_seed_same_output_and_seeds_vary_it(name, cifar_images):
  fn, min_distinct = RANDOM_OPS[name]
  images = np.repeat(cifar_images[:1], 16, axis=0)
  first = _run(fn, images, _seeds(16), "eager")
  again = _run(fn, images, _seeds(16), "eager")
  np.testing.assert_array_equal(first, again)
  assert len({x.tobytes() for x in first}) >= min_distinct


@pytest.mark.parametrize("mode", MODES[1:])
@pytest.mark.parametrize("name", RANDOM_OPS)
def test_graph_modes_match_eager(name, mode, cifar_images):
  fn, _ = RANDOM_OPS[name]
  images, seeds = cifar_images[:8], _seeds(8)
  np.testing.assert_array_equal(_run(fn, images, seeds, mode), _run(fn, images, seeds, "eager"))


@pytest.mark.parametrize("mode", MODES)
def test_normalize_and_imagenet_eval_in_every_mode(mode, cifar_images):
  images = cifar_images[:4]
  normed = _run(lambda x, s: preprocess.normalize(x, preprocess.CIFAR10_MEAN,
                                                  preprocess.CIFAR10_STD), images, _seeds(4), mode)
  expected = ((images.astype(np.float32) - np.float32(preprocess.CIFAR10_MEAN)) /
              np.float32(preprocess.CIFAR10_STD))
  # Exactly, in every mode: the training step standardises under --augment_on=device, and must
  # give the tf.data pipeline's bytes (a tf.function's Grappler could make it a reciprocal).
  np.testing.assert_array_equal(normed, expected)
  evals = _run(lambda x, s: preprocess.imagenet_eval(x, size=24, resize=32), images, _seeds(4),
               mode)
  np.testing.assert_array_equal(evals, images[:, 4:28, 4:28])


# ---------------------------------------------------------------------------------------------
# Flip and pad-crop: exact copies.
# ---------------------------------------------------------------------------------------------


def _identify_shift(image, out, pad):
  """Returns every (flipped, dy, dx) whose zero-padded, shifted copy of image is out."""
  height, width, _ = image.shape
  found = []
  for flipped in (False, True):
    x = image[:, ::-1] if flipped else image
    padded = np.pad(x, ((pad, pad), (pad, pad), (0, 0)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, (height, width, 3))[:, :, 0]
    found += [(flipped, dy, dx) for dy, dx in np.argwhere((windows == out).all((2, 3, 4)))]
  return found


def test_cifar_train_base_gives_exactly_shifted_and_flipped_copies(cifar_images):
  n = 512
  images = cifar_images[np.arange(n) % len(cifar_images)]
  outs = _run(preprocess.cifar_train_base, images, _seeds(n), "tf_data")
  shifts = []
  for image, out in zip(images, outs):
    found = _identify_shift(image, out, pad=4)
    assert len(found) == 1, found
    shifts.append(found[0])
  flips, dys, dxs = (np.array(v) for v in zip(*shifts))
  assert 0.4 < flips.mean() < 0.6
  # Every offset of the 9 in each direction is used, including the extremes (+-4).
  assert set(dys) == set(range(9)) and set(dxs) == set(range(9))


@pytest.mark.parametrize("pad,height,width", [(0, 32, 32), (2, 24, 20), (6, 32, 28)])
def test_random_pad_crop_general_padding_keeps_the_input_size(pad, height, width, cifar_images):
  images = cifar_images[:, :height, :width]
  outs = _run(lambda x, s: preprocess.random_pad_crop(x, s, pad), images, _seeds(256), "tf_data")
  assert outs.shape == images.shape
  offsets = []
  for image, out in zip(images, outs):
    found = [f[1:] for f in _identify_shift(image, out, pad) if not f[0]]
    assert len(found) == 1, found
    offsets.append(found[0])
  # All 2 * pad + 1 offsets occur in each direction (256 draws among at most 13 values).
  dys, dxs = zip(*offsets)
  assert set(dys) == set(range(2 * pad + 1)) and set(dxs) == set(range(2 * pad + 1))


def test_random_flip_of_a_batch_flips_each_image_independently(cifar_images):
  images = cifar_images[:64]
  outs = preprocess.random_flip(images, tf.constant([7, 8])).numpy()
  flipped = [(out == image[:, ::-1]).all() for image, out in zip(images, outs)]
  kept = [(out == image).all() for image, out in zip(images, outs)]
  assert all(f or k for f, k in zip(flipped, kept))
  assert 16 < sum(flipped) < 48


# ---------------------------------------------------------------------------------------------
# Cutout.
# ---------------------------------------------------------------------------------------------


def test_cutout_single_images_square_size_clipping_and_fill(cifar_images):
  n = 512
  images = cifar_images[np.arange(n) % len(cifar_images)]
  seeds = _seeds(n)
  fn = lambda x: _run(lambda i, s: preprocess.cutout(i, s, 16, fill=FILL), x, seeds, "tf_data")
  masks = _cutout_masks(fn, images)
  outs = fn(images)
  centres = np.array([_square_of(mask, 16) for mask in masks])
  # Outside the square, the image is untouched.
  np.testing.assert_array_equal(outs[~masks], images[~masks])
  # The centre is uniform over the whole image: every row and column occurs, borders included,
  # so some squares are clipped (8 pixels at the least) and the interior ones are 16 x 16.
  assert set(centres[:, 0]) == set(range(32)) and set(centres[:, 1]) == set(range(32))
  sides = np.stack([masks.any(2).sum(1), masks.any(1).sum(1)], 1)
  assert sides.min() == 8 and sides.max() == 16


@pytest.mark.parametrize("size", [0, 5, 40])
def test_cutout_other_sizes(size, cifar_images):
  images = cifar_images[:64]
  fn = lambda x: preprocess.cutout(x, tf.constant([3, 4]), size, fill=FILL).numpy()
  masks = _cutout_masks(fn, images)
  if size == 0:
    np.testing.assert_array_equal(fn(images), images)
    assert not masks.any()
    return
  for mask in masks:
    _square_of(mask, size)
  if size == 5:  # odd sizes are exact: an interior square is 5 x 5
    assert masks.sum((1, 2)).max() == 25
  else:  # larger than the image: the square covers at least a quarter of it
    assert masks.sum((1, 2)).min() >= 16 * 16


def test_cutout_batch_gets_one_independent_square_per_image(cifar_images):
  images = cifar_images[:128]
  fn = lambda x: preprocess.cutout(x, tf.constant([5, 6]), 16, fill=FILL).numpy()
  masks = _cutout_masks(fn, images)
  centres = [_square_of(mask, 16) for mask in masks]
  assert len(set(centres)) >= 110  # 128 draws among 1024 centres: ~121 distinct expected
  outs = fn(images)
  np.testing.assert_array_equal(outs[~masks], images[~masks])


@pytest.mark.parametrize("spec", [[None, None, 3], [None, 32, 32, 3], [None, None, None, 3]])
def test_cutout_and_normalize_with_unknown_sizes_match_static_sizes(spec, cifar_images):
  # Static sizes use full-size constants, unknown ones broadcast at run time: the same bytes.
  images = cifar_images[5] if len(spec) == 3 else cifar_images[:16]
  fn = lambda x: preprocess.normalize(preprocess.cutout(x, tf.constant([2, 9]), 16, fill=FILL),
                                      preprocess.CIFAR10_MEAN, preprocess.CIFAR10_STD)
  dynamic = tf.function(fn, input_signature=[tf.TensorSpec(spec, tf.uint8)])
  static = tf.function(fn, input_signature=[tf.TensorSpec(images.shape, tf.uint8)])
  np.testing.assert_array_equal(dynamic(images), static(images))


def test_cutout_with_the_mean_colour_is_zero_after_normalisation(cifar_images):
  images = cifar_images[:32]
  outs = preprocess.cutout(images, tf.constant([1, 1]), 16, fill=FILL)
  normed = preprocess.normalize(outs, preprocess.CIFAR10_MEAN, preprocess.CIFAR10_STD).numpy()
  masks = _cutout_masks(
      lambda x: preprocess.cutout(x, tf.constant([1, 1]), 16, fill=FILL).numpy(), images)
  # DeVries & Taylor write exact zeros; the uint8 mean colour is within 0.5 / std of them.
  assert masks.sum() > 32 * 64
  assert np.abs(normed[masks]).max() <= 0.5 / min(preprocess.CIFAR10_STD)
  assert preprocess.mean_colour(preprocess.CIFAR10_MEAN) == (125, 123, 114)


# ---------------------------------------------------------------------------------------------
# Standardisation and constants.
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_normalize_matches_numpy(dtype, cifar_images):
  images = cifar_images[:16].astype(dtype)
  for mean, std in ((preprocess.CIFAR100_MEAN, preprocess.CIFAR100_STD),
                    (preprocess.IMAGENET_MEAN, None)):
    out = preprocess.normalize(images, mean, std).numpy()
    expected = images.astype(np.float32) - np.float32(mean)
    if std is not None:
      expected /= np.float32(std)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)


def test_cifar10_statistics_match_the_real_images():
  # 4,660 real training images estimate the full-set mean and pixel std to within ~0.5; this
  # would catch the widespread per-image std (51.6, 50.8, 51.3) and a CIFAR-100 mix-up.
  images = cifar_testing.load_cifar10_reduced()[0].reshape(-1, 3).astype(np.float64)
  np.testing.assert_allclose(images.mean(0), preprocess.CIFAR10_MEAN, atol=2.0)
  np.testing.assert_allclose(images.std(0), preprocess.CIFAR10_STD, atol=2.0)


# ---------------------------------------------------------------------------------------------
# ImageNet.
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_imagenet_train_base_on_non_square_images(mode, cifar_images):
  landscape = _tiles(cifar_images, 10, 14)  # 320 x 448
  images = np.stack([landscape, landscape[:, ::-1]])
  outs = _run(preprocess.imagenet_train_base, images, _seeds(2), mode)
  assert outs.shape == (2, 224, 224, 3) and outs.dtype == np.uint8
  fn = tf.function(preprocess.imagenet_train_base)
  traced = fn.get_concrete_function(tf.TensorSpec([None, None, 3], tf.uint8),
                                    tf.TensorSpec([2], tf.int64))
  assert traced.structured_outputs.shape == (224, 224, 3)


def test_sample_crop_box_respects_scale_and_ratio(cifar_images):
  shape = tf.constant([320, 448, 3])
  boxes = np.array([np.concatenate([b.numpy() for b in preprocess.sample_crop_box(shape, s)])
                    for s in _seeds(200)])
  top, left, height, width = boxes[:, 0], boxes[:, 1], boxes[:, 3], boxes[:, 4]
  assert (top >= 0).all() and (left >= 0).all()
  assert (top + height <= 320).all() and (left + width <= 448).all()
  area = height * width / (320 * 448)
  # Pixel rounding moves area and ratio by a pixel's worth at most.
  assert area.min() >= 0.08 - 0.01 and area.max() <= 1.0
  assert area.min() < 0.2 and area.max() > 0.8  # the whole range is used
  ratio = width / height
  assert ratio.min() >= 3 / 4 - 0.03 and ratio.max() <= 4 / 3 + 0.03


def test_imagenet_eval_matches_pil_resize_and_centre_crop(cifar_images):
  for image in (_tiles(cifar_images, 10, 14), _tiles(cifar_images, 14, 10)):
    out = preprocess.imagenet_eval(image).numpy()
    height, width, _ = image.shape
    short = min(height, width)
    new_h, new_w = 256 * height // short, 256 * width // short
    ref = np.asarray(Image.fromarray(image).resize((new_w, new_h), Image.BILINEAR))
    top, left = round((new_h - 224) / 2), round((new_w - 224) / 2)
    ref = ref[top:top + 224, left:left + 224]
    diff = np.abs(out.astype(int) - ref)
    assert out.shape == (224, 224, 3)
    assert (diff <= 1).mean() >= 0.99 and diff.mean() <= 0.5


def test_imagenet_eval_is_an_exact_centre_crop_at_the_resize_size(cifar_images):
  image = _tiles(cifar_images, 8, 10)  # 256 x 320: the resize is the identity
  np.testing.assert_array_equal(preprocess.imagenet_eval(image).numpy(),
                                image[16:240, 48:272])


# ---------------------------------------------------------------------------------------------
# Argument checks.
# ---------------------------------------------------------------------------------------------

_IMAGE = np.zeros([32, 32, 3], np.uint8)
_SEED = tf.constant([1, 2])


@pytest.mark.parametrize("call,message", [
    (lambda: preprocess.cutout(_IMAGE, _SEED, -1, fill=FILL), r"Received: size=-1"),
    (lambda: preprocess.cutout(_IMAGE, _SEED, 2.5, fill=FILL), r"Received: size=2.5"),
    (lambda: preprocess.cutout(_IMAGE, _SEED, 16, fill=(1, 2)), r"Received: fill=\(1, 2\)"),
    (lambda: preprocess.cutout(_IMAGE, _SEED, 16, fill=preprocess.CIFAR10_MEAN),
     r"3 integers in \[0, 255\]. Received: fill=\(125.307"),
    (lambda: preprocess.cutout(_IMAGE, _SEED, 16, fill=(0, 0, 256)), r"Received: fill="),
    (lambda: preprocess.cutout(_IMAGE.astype(np.float32), _SEED, 16, fill=FILL),
     r"Received: images.dtype=float32"),
    (lambda: preprocess.cutout(_IMAGE[0], _SEED, 16, fill=FILL), r"Received: images.shape="),
    (lambda: preprocess.random_pad_crop(_IMAGE, _SEED, -4), r"Received: pad=-4"),
    (lambda: preprocess.random_pad_crop(_IMAGE[None], _SEED), r"one image \[H,W,C\]. Received"),
    (lambda: preprocess.cifar_train_base(_IMAGE, tf.constant([1, 2, 3])),
     r"shape \[2\]. Received: seed"),
    (lambda: preprocess.random_flip(_IMAGE, tf.constant([1.0, 2.0])), r"Received: seed"),
    (lambda: preprocess.normalize(_IMAGE, preprocess.CIFAR10_MEAN, (1, 0, 1)),
     r"Received: std=\(1, 0, 1\)"),
    (lambda: preprocess.normalize(_IMAGE, (1, 2), None), r"Received: mean=\(1, 2\)"),
    (lambda: preprocess.random_resized_crop(_IMAGE, _SEED, scale=(0.5, 0.1)),
     r"Received: scale=\(0.5, 0.1\)"),
    (lambda: preprocess.random_resized_crop(_IMAGE, _SEED, ratio=(0, 1)),
     r"Received: ratio=\(0, 1\)"),
    (lambda: preprocess.random_resized_crop(_IMAGE, _SEED, size=0), r"Received: size=0"),
    (lambda: preprocess.imagenet_eval(_IMAGE, size=224, resize=200), r"Received: resize=200"),
])
def test_bad_arguments_are_named_with_their_value(call, message):
  with pytest.raises(ValueError, match=message):
    call()
