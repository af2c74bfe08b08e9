"""A name -> dataset-reader registry, and `load`, which every dataset goes through.

A reader is a function `reader(request) -> Source | StreamingDataset` registered under a name
with `@register(name, ...)`; `ohl_tf/datasets/__init__.py` imports every source module so that
the registry is complete once `ohl_tf.datasets` is imported. A *spec* (the --dataset flag) is a
name, or `name:ARGUMENT` for a reader that takes one ("folder:/data/pets").

`load` holds the validation images out of an in-memory source and computes its statistics, so a
source only reads its own splits.
"""

import dataclasses
import numbers

import numpy as np

from ohl_tf.datasets import containers


@dataclasses.dataclass(frozen=True)
class Source:
  """A dataset's own splits, as a reader returns them, before validation is held out.

  Attributes:
    train_images, train_labels: uint8 [N, H, W, 3] and int32 [N].
    test_images, test_labels: the test split, or both None.
    class_names: one name per class.
    stats: (mean, std) in [0, 255] units when published; None: computed from train minus val.
  """
  train_images: np.ndarray
  train_labels: np.ndarray
  test_images: np.ndarray | None
  test_labels: np.ndarray | None
  class_names: tuple[str, ...]
  stats: tuple | None = None


@dataclasses.dataclass(frozen=True)
class Request:
  """What `load` asks a reader for: the spec's argument (ROOT of "folder:ROOT", else None),
  tfds' data directory, the requested image side (None: the dataset's own) and, for a streamed
  dataset, which holds its validation records out itself, val_size."""
  argument: str | None
  data_dir: str | None
  image_size: int | None
  val_size: int


@dataclasses.dataclass(frozen=True)
class _Entry:
  read: object
  help_text: str
  argument: str | None  # the argument's name ("ROOT") for a `name:ARGUMENT` spec, else None
  native_size: int | None  # the side of its images when it cannot resize, else None

  def spec(self, name):
    return f"{name}:{self.argument}" if self.argument else name


_READERS = {}


def register(name, *, help_text, argument=None, native_size=None):
  """Returns a decorator that registers a dataset reader under `name`.

  Args:
    name: the spec, or its part before ":" when the reader takes an argument.
    help_text: what --help says of it.
    argument: the name of the spec's argument ("ROOT" for "folder:ROOT"), or None.
    native_size: the side of the dataset's images when it cannot resize them (then image_size
      must be None or this), or None.
  """
  def decorator(reader):
    if name in _READERS:
      raise ValueError(f"Dataset {name!r} is already registered (by "
                       f"{_READERS[name].read.__module__}).")
    _READERS[name] = _Entry(reader, help_text, argument, native_size)
    return reader

  return decorator


def names():
  """The specs the registry knows, sorted ("folder:ROOT" for a reader with an argument)."""
  return sorted(entry.spec(name) for name, entry in _READERS.items())


def flag_help():
  """--dataset's help text: every spec with what it is."""
  return " | ".join(f"{_READERS[name].spec(name)} ({_READERS[name].help_text})"
                    for name in sorted(_READERS)) + "."


def _parse(spec):
  """(entry, argument) of a spec, or a ValueError that lists the known specs."""
  name, colon, argument = spec.partition(":")
  entry = _READERS.get(name)
  if entry is None or bool(colon) != bool(entry.argument) or (colon and not argument):
    raise ValueError(f"Unknown dataset {spec!r}. Known: {', '.join(names())} (ROOT a "
                     f"directory). Received: spec={spec!r}")
  return entry, argument or None


def check_spec(spec):
  """Raises ValueError unless `spec` names a registered dataset (nothing is read)."""
  if not isinstance(spec, str):
    raise ValueError(f"spec must be a string, one of {', '.join(names())}. "
                     f"Received: spec={spec!r}")
  _parse(spec)


def _check_int(name, value, minimum=None):
  if (isinstance(value, bool) or not isinstance(value, numbers.Integral)
      or (minimum is not None and value < minimum)):
    bound = "" if minimum is None else f" >= {minimum}"
    raise ValueError(f"{name} must be an integer{bound}. Received: {name}={value!r}")
  return int(value)


def _split_validation(source, val_size, seed, spec):
  """(train images, train labels, val images, val labels): val_size held out, seeded."""
  count = len(source.train_images)
  if not 1 <= val_size < count:
    raise ValueError(
        f"val_size (--val_size) must be in [1, {count - 1}] for {spec}, whose training split has "
        f"{count} images: the OHL outer step needs validation images, and training needs the "
        f"rest. Received: val_size={val_size}")
  order = np.random.default_rng(seed).permutation(count)
  # Sorted, so both splits keep the source's order; shuffling is the input pipeline's job.
  val, train = np.sort(order[:val_size]), np.sort(order[val_size:])
  return (source.train_images[train], source.train_labels[train], source.train_images[val],
          source.train_labels[val])


def _channel_stats(images):
  """Per-channel mean and population std of uint8 images, in float64 chunks to bound memory."""
  total, total_squares = np.zeros(3), np.zeros(3)
  for start in range(0, len(images), 1024):
    chunk = images[start:start + 1024].astype(np.float64)
    total += chunk.sum(axis=(0, 1, 2))
    total_squares += np.square(chunk).sum(axis=(0, 1, 2))
  count = images.size // 3
  mean = total / count
  std = np.sqrt(np.maximum(total_squares / count - mean**2, 0))
  return tuple(float(m) for m in mean), tuple(float(s) for s in std)


def _check_native_size(spec, image_size, native):
  if image_size is not None and image_size != native:
    raise ValueError(f"{spec} images are {native}x{native}; image_size (--image_size) only "
                     f"resizes 'folder:' datasets and sets ImageNet's crops, so for {spec} it "
                     f"must be None (--image_size=0) or {native}. Received: image_size="
                     f"{image_size}")


def load(spec, *, data_dir=None, val_size, seed=0, image_size=None):
  """Loads a dataset and holds `val_size` training images out for validation.

  Args:
    spec: which dataset, one of `names()`: "cifar10", "cifar100", "svhn_cropped",
      "imagenet2012", "folder:ROOT" or "synthetic".
    data_dir: tensorflow-datasets' data directory (None: tfds's default, ~/tensorflow_datasets);
      where the machine is offline, the prepared tfds data must already be there, and ImageNet's
      manual download (ILSVRC2012_img_train.tar, ILSVRC2012_img_val.tar) in its
      downloads/manual/. Unused by "folder:" and "synthetic".
    val_size: how many training images to hold out, in [1, training images - 1].
    seed: int >= 0, seeds the permutation that picks the validation images (the same seed gives
      the same split on every call and machine); ImageNet's are its first val_size records.
    image_size: "folder:" only: resize every image to image_size x image_size (antialiased
      bilinear, rounded to uint8). None (default) requires all images to share one size.
      "imagenet2012": the side of the training and evaluation crops (None: 224). Other specs
      accept only None or their native size (32).

  Returns:
    An `ImageDataset`, or a `StreamingDataset` for "imagenet2012". mean/std are the published
    values for CIFAR and ImageNet (mean only), and computed from the training split minus
    validation otherwise.

  Raises:
    ValueError: unknown spec, bad val_size/seed/image_size, or a malformed dataset folder (no
      classes, an empty class, fewer than 2 classes, mismatched test classes, an unreadable
      image, differing sizes without image_size).
    FileNotFoundError: the ROOT of "folder:ROOT" does not exist.
    OSError: a tfds dataset is neither in data_dir nor downloadable, or ImageNet's manual
      download is missing (the message includes tfds' instructions; its error is chained).
  """
  check_spec(spec)
  val_size = _check_int("val_size", val_size)  # its range is checked once the data is read
  seed = _check_int("seed", seed, 0)
  if image_size is not None:
    image_size = _check_int("image_size", image_size, 1)
  entry, argument = _parse(spec)
  if entry.native_size is not None:
    _check_native_size(spec, image_size, entry.native_size)
  source = entry.read(Request(argument, data_dir, image_size, val_size))
  if isinstance(source, containers.StreamingDataset):  # it holds its validation out itself
    return source
  train_images, train_labels, val_images, val_labels = _split_validation(
      source, val_size, seed, spec)
  mean, std = source.stats or _channel_stats(train_images)
  return containers.ImageDataset(
      name=spec, train_images=train_images, train_labels=train_labels, val_images=val_images,
      val_labels=val_labels, test_images=source.test_images, test_labels=source.test_labels,
      class_names=source.class_names, mean=mean, std=std)
