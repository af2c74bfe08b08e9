"""A name -> dataset-reader registry, and `load`, which every dataset goes through.

A reader is a function `reader(request) -> Source | loaded dataset` registered under a name
with `@register(name, ...)`; `ohl_tf/datasets/__init__.py` imports every source module so that
the registry is complete once `ohl_tf.datasets` is imported. A *spec* (the --dataset flag) is a
name, or `name:ARGUMENT` for a reader that takes one ("folder:/data/pets").

`load` holds the validation images out of an in-memory `Source` and computes its statistics, so
such a source only reads its own splits; a reader that returns a loaded dataset (ImageNet's
`StreamingDataset`, a folder's `ImageDataset` or `FolderStream`) has held them out itself, with
`hold_out` for a seeded choice.
"""

import dataclasses
import numbers

import numpy as np

from ohl_tf.datasets import containers

# How "folder:" datasets are held (`load`'s stream, --folder_stream).
STREAM_CHOICES = ("auto", "always", "never")


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
  tfds' data directory, the requested image side (None: the dataset's own); for a reader that
  holds its validation images out itself, val_size and seed; for "folder:", test_size and
  stream (`load`'s arguments)."""
  argument: str | None
  data_dir: str | None
  image_size: int | None
  val_size: int
  seed: int = 0
  test_size: int = 0
  stream: str = "auto"


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


def hold_out(count, size, seed):
  """(kept, held): `size` of range(count) chosen by a permutation seeded with `seed` (an int or a
  sequence of ints, `np.random.default_rng`), both sorted so that each keeps the source's order
  (shuffling is the input pipeline's job)."""
  order = np.random.default_rng(seed).permutation(count)
  return np.sort(order[size:]), np.sort(order[:size])


def validation_indices(count, val_size, seed, spec):
  """(train, val) indices of a training split of `count` images: `val_size` held out, seeded by
  `seed`; the one choice of every in-memory and folder dataset.

  Raises:
    ValueError: val_size outside [1, count - 1] (the message names --val_size).
  """
  if not 1 <= val_size < count:
    raise ValueError(
        f"val_size (--val_size) must be in [1, {count - 1}] for {spec}, whose training split has "
        f"{count} images: the OHL outer step needs validation images, and training needs the "
        f"rest. Received: val_size={val_size}")
  return hold_out(count, val_size, seed)


def _split_validation(source, val_size, seed, spec):
  """(train images, train labels, val images, val labels): val_size held out, seeded."""
  train, val = validation_indices(len(source.train_images), val_size, seed, spec)
  return (source.train_images[train], source.train_labels[train], source.train_images[val],
          source.train_labels[val])


def channel_sums(images):
  """(pixels, per-channel sums, per-channel sums of squares) of uint8 [N, H, W, 3] images, the
  sums int64 (exact, so that any split of the images into parts adds up to the same numbers),
  in chunks to bound memory."""
  sums, squares = np.zeros(3, np.int64), np.zeros(3, np.int64)
  for start in range(0, len(images), 1024):
    chunk = images[start:start + 1024].astype(np.int64)
    sums += chunk.sum(axis=(0, 1, 2))
    squares += np.square(chunk).sum(axis=(0, 1, 2))
  return images.size // 3, sums, squares


def stats_from_sums(pixels, sums, squares):
  """Per-channel (mean, population std) of `channel_sums`' integers, as tuples of float."""
  mean = np.asarray(sums, np.int64) / pixels
  std = np.sqrt(np.maximum(np.asarray(squares, np.int64) / pixels - mean**2, 0))
  return tuple(float(m) for m in mean), tuple(float(s) for s in std)


def channel_stats(images):
  """Per-channel mean and population std of uint8 [N, H, W, 3] images."""
  return stats_from_sums(*channel_sums(images))


def _check_native_size(spec, image_size, native):
  if image_size is not None and image_size != native:
    raise ValueError(f"{spec} images are {native}x{native}; image_size (--image_size) only "
                     f"resizes 'folder:' datasets and sets ImageNet's crops, so for {spec} it "
                     f"must be None (--image_size=0) or {native}. Received: image_size="
                     f"{image_size}")


def load(spec, *, data_dir=None, val_size, seed=0, image_size=None, test_size=0, stream="auto"):
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
    test_size: "folder:" in the ROOT/<class> layout only: images held out of the folder as its
      test split, seeded by `seed` like validation (0: no test split).
    stream: "folder:" only, one of `STREAM_CHOICES`: "never" decodes every image into memory at
      start-up, "always" reads them from their files as training runs, "auto" streams a folder
      too large to decode quickly (folder.py, `should_stream`).

  Returns:
    An `ImageDataset`, a `StreamingDataset` for "imagenet2012", or a `FolderStream` for a streamed
    "folder:". mean/std are the published values for CIFAR and ImageNet (mean only), computed
    from the training split minus validation otherwise (for a folder, from a seeded sample of
    at most `folder.STATS_SAMPLE_SIZE` of those images).

  Raises:
    ValueError: unknown spec, bad val_size/seed/image_size/test_size/stream, or a malformed or
      ambiguous dataset folder (no classes, an empty or nested class, fewer than 2 classes,
      mismatched test classes, both test/ and val/, an unreadable image, differing sizes
      without image_size).
    FileNotFoundError: the ROOT of "folder:ROOT" does not exist.
    OSError: a tfds dataset is neither in data_dir nor downloadable, or ImageNet's manual
      download is missing (the message includes tfds' instructions; its error is chained).
  """
  check_spec(spec)
  val_size = _check_int("val_size", val_size)  # its range is checked once the data is read
  seed = _check_int("seed", seed, 0)
  test_size = _check_int("test_size", test_size, 0)
  if stream not in STREAM_CHOICES:
    raise ValueError(f"stream (--folder_stream) must be one of {', '.join(STREAM_CHOICES)}. "
                     f"Received: stream={stream!r}")
  if image_size is not None:
    image_size = _check_int("image_size", image_size, 1)
  entry, argument = _parse(spec)
  if entry.native_size is not None:
    _check_native_size(spec, image_size, entry.native_size)
  source = entry.read(Request(argument, data_dir, image_size, val_size, seed, test_size, stream))
  if not isinstance(source, Source):  # a loaded dataset: it held its validation out itself
    return source
  train_images, train_labels, val_images, val_labels = _split_validation(
      source, val_size, seed, spec)
  mean, std = source.stats or channel_stats(train_images)
  return containers.ImageDataset(
      name=spec, train_images=train_images, train_labels=train_labels, val_images=val_images,
      val_labels=val_labels, test_images=source.test_images, test_labels=source.test_labels,
      class_names=source.class_names, mean=mean, std=std)
