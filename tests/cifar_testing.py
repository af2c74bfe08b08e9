"""The real CIFAR-10 images of ../shared/data/cifar10-reduced, for the tests that need them.

`OHL_TF_CIFAR10_REDUCED` points to another copy (as for ohl_tf.datasets.known_answer); a test
that needs the images is skipped, with the reason, where there are none.

Example:
  >>> images, labels, class_names = load_cifar10_reduced(limit=256)
"""

import os
import pathlib

import numpy as np
from PIL import Image
import pytest

_REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
CIFAR10_REDUCED = pathlib.Path(
    os.environ.get("OHL_TF_CIFAR10_REDUCED",
                   _REPO_ROOT.parent / "shared" / "data" / "cifar10-reduced"))


def load_cifar10_reduced(limit=None):
  """Returns (images uint8 [N,32,32,3], labels int [N], class names), sorted by path.

  Skips the calling test, with the reason, when the folder is absent.
  """
  train = CIFAR10_REDUCED / "train"
  if not train.is_dir():
    pytest.skip(f"{train} not found: these tests need the real CIFAR-10 images of "
                "../shared/data/cifar10-reduced (set OHL_TF_CIFAR10_REDUCED to another copy)")
  class_names = sorted(p.name for p in train.iterdir() if p.is_dir())
  paths = sorted((p, label) for label, name in enumerate(class_names)
                 for p in (train / name).glob("*.png"))
  if limit is not None:
    # Every len/limit-th image, so that all classes are represented.
    paths = paths[::max(1, len(paths) // limit)][:limit]
  images = np.stack([np.asarray(Image.open(p).convert("RGB")) for p, _ in paths])
  labels = np.array([label for _, label in paths])
  return images, labels, class_names
