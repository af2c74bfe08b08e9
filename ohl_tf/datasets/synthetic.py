"""`synthetic`: a small dataset generated here, with no files, whose label is an object's colour
code, which Invert and Solarize destroy (`HARMFUL_ELEMENTS`): a known answer for the OHL loop."""

import functools

import numpy as np

from ohl_tf.datasets import registry

# Elements of ohl_tf.augment that destroy the synthetic label: Solarize 26, 102, 179 and Invert.
# The other 32 leave it readable (tests/datasets_test.py measures both), so the OHL loop should
# learn to lower the probability of operations that contain these.
HARMFUL_ELEMENTS = (21, 22, 23, 35)

# Class k paints the object with channel c high iff bit (2 - c) of k is set: k = 4 R + 2 G + B.
SYNTHETIC_CLASS_NAMES = ("black", "blue", "green", "cyan", "red", "magenta", "yellow", "white")
_SYNTHETIC_SIZE = 32
_SYNTHETIC_TRAIN_SIZE, _SYNTHETIC_TEST_SIZE = 5000, 1000
_SYNTHETIC_SEEDS = {"train": 2019, "test": 2020}  # fixed: the data is part of the code
_LOW, _HIGH = 40, 215  # the two levels of a channel; 40 >= 26, so Solarize 26 flips both
_LEVEL_JITTER = 6  # per image, shared by the channels: levels stay in [34, 46] and [209, 221]
_NOISE_STD = 2.0  # per pixel, shared by the channels, so that a grey object stays exactly grey
_RADIUS = (6.0, 10.0)  # of the disc, in pixels
# The disc's centre stays within [11, 21] px on both axes, so that the largest translation
# (45%, 14.4 px) leaves part of it in view.
_CENTRE = (11.0, 21.0)
_COARSE = 4  # the background's low-frequency component is a 4x4 grid, bilinearly upsampled


def _bilinear_matrix(size_out, size_in):
  """[size_out, size_in] weights of 1-D bilinear upsampling with half-pixel centres."""
  position = (np.arange(size_out) + 0.5) * size_in / size_out - 0.5
  lower = np.clip(np.floor(position).astype(int), 0, size_in - 1)
  upper = np.minimum(lower + 1, size_in - 1)
  weight = np.clip(position - lower, 0, 1)
  matrix = np.zeros([size_out, size_in])
  np.add.at(matrix, (np.arange(size_out), lower), 1 - weight)
  np.add.at(matrix, (np.arange(size_out), upper), weight)
  return matrix


def _disc_masks(rng, num_images):
  """bool [N, S, S]: a disc of random radius and centre per image."""
  centre_y, centre_x = rng.uniform(*_CENTRE, size=[2, num_images, 1, 1])
  radius = rng.uniform(*_RADIUS, size=[num_images, 1, 1])
  y, x = np.mgrid[:_SYNTHETIC_SIZE, :_SYNTHETIC_SIZE] + 0.5
  return (y - centre_y)**2 + (x - centre_x)**2 <= radius**2


def _backgrounds(rng, masks):
  """int [N, S, S, 3] texture whose background pixels are uniform over 0..255 in each channel.

  A smooth component (blobs) plus per-pixel noise, then replaced by its rank among the
  image's background pixels. So every channel spans the full range (AutoContrast is then close
  to the identity) and all three channels have the same histogram (AutoContrast and Equalize
  then apply the same table to each channel, so a grey object stays grey).
  """
  num_images, size = masks.shape[0], _SYNTHETIC_SIZE
  upsample = _bilinear_matrix(size, _COARSE)
  smooth = np.einsum("ia,jb,nabc->nijc", upsample, upsample,
                     rng.normal(size=[num_images, _COARSE, _COARSE, 3]), optimize=True)
  texture = smooth + rng.standard_normal(size=[num_images, size, size, 3], dtype=np.float32)
  # Object pixels sort last, so the background pixels take ranks 0 .. count - 1.
  texture = np.where(masks[..., None], np.inf, texture).reshape(num_images, size * size, 3)
  ranks = np.empty(texture.shape, np.int32)  # int32: the division below is 10x faster than int64
  np.put_along_axis(ranks, np.argsort(texture, axis=1),
                    np.broadcast_to(np.arange(size * size, dtype=np.int32)[:, None], texture.shape),
                    axis=1)
  background_count = size * size - masks.reshape(num_images, -1).sum(axis=1, dtype=np.int32)
  return (ranks * 256 // background_count[:, None, None]).reshape(num_images, size, size, 3)


def _object_colours(rng, labels):
  """float [N, 3]: each channel low or high as the label's bits say, jittered per image."""
  bits = (labels[:, None] >> np.array([2, 1, 0])) & 1
  jitter = rng.uniform(-_LEVEL_JITTER, _LEVEL_JITTER, size=[2, len(labels), 1])
  return np.where(bits == 1, _HIGH + jitter[1], _LOW + jitter[0])


def synthetic_examples(num_images, seed):
  """Generates synthetic images: a disc whose colour code is the label, on a full-range texture.

  Class k paints a disc (radius 6 to 10 px, centre within 11..21 px) with channel c at a low
  level (40 +- 6) or a high one (215 +- 6), as bit 2 - c of k says: 8 colour codes, from black
  (0) to white (7). Small noise (std 2, the same in the three channels) is added to the disc;
  the background is a texture whose every channel spans 0..255 with the same histogram.
  Labels are balanced (to within one image) and shuffled.

  What the search space's elements do to the code (measured in tests/datasets_test.py):
    * Invert maps each level to the other one (class k becomes class 7 - k); so does
      Solarize 26, as both levels are >= 26. Solarize 102 and 179 keep 40 and map 215 to 40:
      every disc becomes black. These are `HARMFUL_ELEMENTS`.
    * Shear, Translate and Rotate move the disc and keep its colour (part of it stays in view).
    * Color blends each pixel with its own grey level, with a factor > 0: a high channel stays
      above the disc's grey and a low one below, and a grey disc is unchanged.
    * Contrast, Brightness, Posterize, AutoContrast and Equalize are non-decreasing maps of the
      levels (per channel for the last two, but the same map for each channel because the
      background histograms are equal), so high stays above low and above the background's
      median. Sharpness alters only the disc's rim.

  Args:
    num_images: how many images, >= 1.
    seed: int, seeds numpy's generator; the same seed gives the same images.

  Returns:
    (images uint8 [N, 32, 32, 3], labels int32 [N] in [0, 8), object masks bool [N, 32, 32]).
  """
  rng = np.random.default_rng(seed)
  labels = rng.permutation(np.arange(num_images) % len(SYNTHETIC_CLASS_NAMES)).astype(np.int32)
  masks = _disc_masks(rng, num_images)
  background = _backgrounds(rng, masks)
  noise = _NOISE_STD * rng.normal(size=[num_images, _SYNTHETIC_SIZE, _SYNTHETIC_SIZE, 1])
  disc = _object_colours(rng, labels)[:, None, None, :] + noise
  images = np.where(masks[..., None], disc, background)
  return np.clip(np.round(images), 0, 255).astype(np.uint8), labels, masks


@functools.lru_cache(maxsize=1)
def _synthetic_splits():
  """The fixed train and test splits, generated once per process (about a second)."""
  splits = {}
  for split, size in (("train", _SYNTHETIC_TRAIN_SIZE), ("test", _SYNTHETIC_TEST_SIZE)):
    images, labels, _ = synthetic_examples(size, _SYNTHETIC_SEEDS[split])
    images.flags.writeable = labels.flags.writeable = False  # shared by every load() call
    splits[split] = images, labels
  return splits


@registry.register("synthetic", help_text="embedded, generated: a colour code as the label",
                   native_size=_SYNTHETIC_SIZE)
def read_synthetic(unused_request):
  """The fixed synthetic splits (the request has nothing to choose)."""
  splits = _synthetic_splits()
  # Copies: the cached arrays are read-only and shared; a dataset owns its arrays.
  (train_images, train_labels), (test_images, test_labels) = splits["train"], splits["test"]
  return registry.Source(train_images.copy(), train_labels.copy(), test_images.copy(),
                 test_labels.copy(), SYNTHETIC_CLASS_NAMES)
