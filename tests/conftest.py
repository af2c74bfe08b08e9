"""Shared pytest fixtures: the real CIFAR-10 images of ../shared/data/cifar10-reduced."""

import os
import pathlib

# Before TensorFlow is imported by any test module: keep its C++ start-up chatter out of the logs.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
from PIL import Image
import tensorflow as tf

# Four logical CPU devices for the whole session, set before anything touches a device: the
# multi-device logic (a MirroredStrategy per trajectory) runs here as it would on GPUs.
NUM_CPU_DEVICES = 4
tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0],
    [tf.config.LogicalDeviceConfiguration()] * NUM_CPU_DEVICES)

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


@pytest.fixture(scope="session")
def cifar_images():
  """256 real CIFAR-10 images, uint8 [256,32,32,3], spread over the ten classes."""
  return load_cifar10_reduced(limit=256)[0]


@pytest.fixture(scope="session")
def mosaic_224(cifar_images):
  """A real 224x224 image: a 7x7 mosaic of CIFAR-10 images (sharp edges, natural content)."""
  tiles = cifar_images[:49].reshape(7, 7, 32, 32, 3)
  return tiles.transpose(0, 2, 1, 3, 4).reshape(224, 224, 3).copy()
