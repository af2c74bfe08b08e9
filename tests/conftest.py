"""Shared pytest fixtures: the real CIFAR-10 images of ../shared/data/cifar10-reduced (read by
tests/cifar_testing.py), and a miniature ImageNet manual download for tfds to prepare."""

import io
import os
import tarfile

# Before TensorFlow is imported by any test module: keep its C++ start-up chatter out of the logs.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
from PIL import Image
import tensorflow as tf

import cifar_testing

# Four logical CPU devices for the whole session, set before anything touches a device: the
# multi-device logic (a MirroredStrategy per trajectory) runs here as it would on GPUs.
NUM_CPU_DEVICES = 4
tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0],
    [tf.config.LogicalDeviceConfiguration()] * NUM_CPU_DEVICES)


@pytest.fixture(scope="session")
def cifar_images():
  """256 real CIFAR-10 images, uint8 [256,32,32,3], spread over the ten classes."""
  return cifar_testing.load_cifar10_reduced(limit=256)[0]


@pytest.fixture(scope="session")
def mosaic_224(cifar_images):
  """A real 224x224 image: a 7x7 mosaic of CIFAR-10 images (sharp edges, natural content)."""
  tiles = cifar_images[:49].reshape(7, 7, 32, 32, 3)
  return tiles.transpose(0, 2, 1, 3, 4).reshape(224, 224, 3).copy()


# ImageNet's manual download in miniature: ILSVRC2012_img_train.tar holds one tar of JPEGs per
# synset, ILSVRC2012_img_val.tar the validation JPEGs (tfds labels them from its own list).
FAKE_IMAGENET_SYNSETS = ("n01440764", "n01443537", "n01484850")
FAKE_IMAGENET_PER_CLASS, FAKE_IMAGENET_VAL = 8, 6


def _tar(members):
  buffer = io.BytesIO()
  with tarfile.open(fileobj=buffer, mode="w") as tar:
    for name, data in members:
      info = tarfile.TarInfo(name)
      info.size = len(data)
      tar.addfile(info, io.BytesIO(data))
  return buffer.getvalue()


def _jpeg(seed):
  rng = np.random.default_rng(seed)
  image = Image.fromarray(rng.integers(0, 256, (20 + seed % 7, 30, 3), dtype=np.uint8))
  buffer = io.BytesIO()
  image.save(buffer, "JPEG")
  return buffer.getvalue()


@pytest.fixture(scope="session")
def imagenet_data_dir(tmp_path_factory):
  """A tfds data_dir with a 24 + 6 image ImageNet in downloads/manual, for tfds to prepare."""
  data_dir = tmp_path_factory.mktemp("tfds")
  manual = data_dir / "downloads" / "manual"
  manual.mkdir(parents=True)
  (manual / "ILSVRC2012_img_train.tar").write_bytes(_tar([
      (f"{synset}.tar", _tar([(f"{synset}_{i}.JPEG", _jpeg(10 * k + i))
                              for i in range(FAKE_IMAGENET_PER_CLASS)]))
      for k, synset in enumerate(FAKE_IMAGENET_SYNSETS)]))
  (manual / "ILSVRC2012_img_val.tar").write_bytes(_tar([
      (f"ILSVRC2012_val_{i:08d}.JPEG", _jpeg(100 + i))
      for i in range(1, FAKE_IMAGENET_VAL + 1)]))
  return str(data_dir)
