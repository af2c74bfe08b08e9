"""CIFAR-10, CIFAR-100 and SVHN through tensorflow-datasets, held in memory as numpy arrays; and
tfds' loading with its failures turned into messages that say what to do (ImageNet uses it too)."""

import functools

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from ohl_tf import preprocess
from ohl_tf.datasets import containers
from ohl_tf.datasets import registry

# tfds datasets held in memory, with the published per-channel statistics in [0, 255] units (the
# values of the Cutout and AutoAugment code) where there are such, else None: computed from the
# training split minus validation.
_IN_MEMORY_TFDS = {
    "cifar10": (preprocess.CIFAR10_MEAN, preprocess.CIFAR10_STD),
    "cifar100": (preprocess.CIFAR100_MEAN, preprocess.CIFAR100_STD),
    "svhn_cropped": None,
}
_TFDS_SIZE = 32  # the side of every in-memory tfds dataset's images
_TFDS_BATCH = 4096  # examples per numpy conversion step: bounds the Python loop, not memory


def _tfds_arrays(dataset):
  """(uint8 images, int32 labels) of an (image, label) tf.data.Dataset, as numpy arrays."""
  batches = list(tfds.as_numpy(dataset.batch(_TFDS_BATCH)))
  images = np.concatenate([images for images, _ in batches])
  labels = np.concatenate([labels for _, labels in batches]).astype(np.int32)
  return images, labels


def load_with_help(name, data_dir, **kwargs):
  """tfds.load with its failures turned into an OSError that says what to do."""
  where = f"data_dir={data_dir!r}" + (" (tfds's default: $TFDS_DATA_DIR or ~/tensorflow_datasets)"
                                      if data_dir is None else "")
  try:
    return tfds.load(name, data_dir=data_dir, as_supervised=True, download=True, **kwargs)
  # A failed download raises requests' ConnectionError, an OSError (seen offline, after about
  # 3 minutes of retries), tfds's DownloadError on an HTTP error, or a tf.errors.OpError from
  # tf.io.gfile.
  except (OSError, tfds.download.DownloadError, tf.errors.OpError) as error:
    raise OSError(
        f"Could not load {name}: tensorflow-datasets found no prepared copy in {where} and "
        f"downloading it failed (is this machine offline?). Prepare "
        f"{name} where there is internet (tfds.load or `tfds build {name}`) and place the "
        f"prepared tfds data (the folder {name}/<version>/) in a directory passed as --data_dir. "
        f"Cause: {type(error).__name__}: {error}") from error
  except AssertionError as error:  # tfds' way of saying that a manual download is missing
    raise OSError(f"Could not prepare {name} in {where}: it needs a manual download. "
                  f"tensorflow-datasets says: {error}") from error


def class_names(info):
  """The label names of a tfds dataset, checked; its ids as strings ("0", "1", ...) where it has
  none: tfds' ClassLabel answers so. ImageNet's synsets ship with tfds; CIFAR's names are read
  from the archive when tfds prepares it, so its mock data, for one, has none."""
  label = info.features["label"]
  return containers.check_class_names(tuple(label.names), label.num_classes)


def _read_in_memory(name, request):
  """CIFAR-10, CIFAR-100 or SVHN (cropped digits) through tfds.load, as numpy arrays."""
  (train, test), info = load_with_help(name, request.data_dir, split=["train", "test"],
                                       with_info=True)
  train_images, train_labels = _tfds_arrays(train)
  test_images, test_labels = _tfds_arrays(test)
  return registry.Source(train_images, train_labels, test_images, test_labels, class_names(info),
                         _IN_MEMORY_TFDS[name])


def _register_in_memory():
  for name in _IN_MEMORY_TFDS:
    registry.register(name, help_text="tensorflow-datasets, held in memory",
                      native_size=_TFDS_SIZE)(functools.partial(_read_in_memory, name))


_register_in_memory()
