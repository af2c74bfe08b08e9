r"""Draws every element of the search space on a few images, as one PNG contact sheet.

Columns: the original, then the 36 elements of paper Table 1 in index order (the paper's
search space: the Identity of --search_space=paper_identity would repeat the original). Rows:
each image twice, with sign +1 and then -1 (directionless elements look the same in both rows).

  python -m ohl_tf.contact_sheet --images_dir=../shared/data/cifar10-reduced/train \
      --output=contact_sheet.png

Without --images_dir it uses ../shared/data/cifar10-reduced/train when that folder exists, and
otherwise a generated test card, so it runs on any machine.
"""

import os
import pathlib

from absl import app
from absl import flags
from absl import logging
import numpy as np
import tensorflow as tf

from ohl_tf import augment
from ohl_tf import datasets
from ohl_tf import preprocess

_DEFAULT_IMAGES = (pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" /
                   "cifar10-reduced" / "train")
_IMAGE_PATTERNS = ("*.png", "*.jpg", "*.jpeg", "*.bmp", "*.gif")

_IMAGES_DIR = flags.DEFINE_string(
    "images_dir", None, "Folder searched recursively for images (PNG, JPEG, BMP, GIF). Default: "
    "../shared/data/cifar10-reduced/train if present, else a generated test card.")
_NUM_IMAGES = flags.DEFINE_integer("num_images", 4, "Images (each drawn on two rows).",
                                   lower_bound=1)
_IMAGE_SIZE = flags.DEFINE_integer("image_size", 32, "Images are resized to this square size.",
                                   lower_bound=8)
_ZOOM = flags.DEFINE_integer("zoom", 3, "Each pixel drawn as zoom x zoom pixels.", lower_bound=1)
_OUTPUT = flags.DEFINE_string("output", "contact_sheet.png", "The PNG to write.")


def test_card(size):
  """A deterministic uint8 [size, size, 3] image: colour ramps, a disc and a grid."""
  y, x = np.mgrid[0:size, 0:size] / (size - 1)
  disc = ((x - 0.6)**2 + (y - 0.4)**2) < 0.06
  stripes = (np.arange(size) // max(1, size // 8)) % 2 == 1
  checker = stripes[:, None] ^ stripes[None, :]
  image = np.stack([x, y, 1 - x * y], axis=-1) * 255
  image[disc] = (250, 220, 40)
  image[checker & (x > 0.5)] //= 2
  return image.astype(np.uint8)


def load_images(images_dir, num_images, size):
  """uint8 [N, size, size, 3]: the first `num_images` images of the folder, in path order."""
  root = pathlib.Path(images_dir)
  paths = sorted(p for pattern in _IMAGE_PATTERNS for p in root.rglob(pattern))
  if not paths:
    raise app.UsageError(f"--images_dir={images_dir}: no {', '.join(_IMAGE_PATTERNS)} files "
                         "found; pass a folder that holds images.")
  # Spread over the folder (e.g. over the classes of an ImageFolder layout).
  chosen = paths[::max(1, len(paths) // num_images)][:num_images]
  try:
    return tf.stack([preprocess.resize_uint8(datasets.read_image(path), [size, size])
                     for path in chosen])
  except ValueError as error:  # names the unreadable file
    raise app.UsageError(str(error)) from error


def contact_sheet(images, zoom):
  """uint8 [2 N (h z + 1), 37 (w z + 1), 3]: original + 36 elements, signs +1 / -1 per image."""
  num_images = images.shape[0]
  elements = tf.range(augment.NUM_ELEMENTS)
  rows = []
  for i in range(num_images):
    for sign in (1, -1):
      repeated = tf.repeat(images[i:i + 1], augment.NUM_ELEMENTS, axis=0)
      augmented = augment.apply_element(repeated, elements, tf.fill([augment.NUM_ELEMENTS], sign))
      tiles = tf.concat([images[i:i + 1], augmented], axis=0)
      tiles = tf.repeat(tf.repeat(tiles, zoom, axis=1), zoom, axis=2)
      tiles = tf.pad(tiles, [[0, 0], [0, 1], [0, 1], [0, 0]], constant_values=255)
      rows.append(tf.concat(tf.unstack(tiles), axis=1))
  return tf.concat(rows, axis=0)


def write_png_atomically(path, image):
  """Writes the PNG beside its destination, then renames: never a half-written file."""
  temporary = f"{path}.tmp-{os.getpid()}"
  tf.io.write_file(temporary, tf.io.encode_png(image))
  os.replace(temporary, path)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  images_dir = _IMAGES_DIR.value or (_DEFAULT_IMAGES if _DEFAULT_IMAGES.is_dir() else None)
  if images_dir is None:
    logging.info("No --images_dir and no ../shared/data/cifar10-reduced: using a test card.")
    images = tf.constant(test_card(_IMAGE_SIZE.value))[None]
  else:
    images = load_images(images_dir, _NUM_IMAGES.value, _IMAGE_SIZE.value)
  write_png_atomically(_OUTPUT.value, contact_sheet(images, _ZOOM.value))
  names = ", ".join(f"{i + 1}:{e.name}({e.magnitude})"
                    for i, e in enumerate(augment.ELEMENTS))
  print(f"Wrote {_OUTPUT.value}: {images.shape[0]} images x signs (+1, -1) in rows; "
        f"columns 0:original, {names}")


if __name__ == "__main__":
  app.run(main)
