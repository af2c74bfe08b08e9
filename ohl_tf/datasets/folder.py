"""`folder:ROOT`: images in one sub-folder per class, in one of four layouts:

  * ROOT/<class>/<image> (keras' `image_dataset_from_directory`, torchvision's `ImageFolder`):
    a test split of `test_size` images is held out, seeded like validation;
  * ROOT/train/<class>/<image> and optionally ROOT/test/<class>/<image>;
  * ROOT/train/<class>/<image> and ROOT/val/<class>/<image> or ROOT/validation/<class>/<image>,
    used as the test split (many datasets ship their evaluation images as val/), the validation
    split held out of the training images;
  * ROOT/train, ROOT/val (or ROOT/validation) and ROOT/test: val/ is the validation split
    (`val_size` of its images, seeded), test/ the test split, and every training image trains.

The class names are the class folder names, sorted. A layout that could be read two ways is
refused, naming what was found. The images are decoded into memory at start-up
(`ImageDataset`), or, for a folder too large to decode quickly, read from their files as
training runs (`FolderStream`, `should_stream`); both give the same splits, statistics and
batches.
"""

import dataclasses
import functools
import os
import re

import numpy as np
import tensorflow as tf

from ohl_tf import preprocess
from ohl_tf.datasets import containers
from ohl_tf.datasets import registry

_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
_TEST_SPLITS = ("test", "val", "validation")  # beside ROOT/train, the folder of the test split
_VALIDATION_SPLITS = ("val", "validation")  # beside ROOT/train and ROOT/test: the validation split
# The standardisation statistics come from a seeded sample of at most this many training
# images, the same rule held in memory or streamed: a full decode pass over a large folder
# would delay the first training step by as long as decoding it into memory (docs/benchmarks.md,
# Streamed folders: 43 s for 100,000 small JPEGs on 2 cores), while 10,000 CIFAR-10 images give its
# per-channel mean within about 0.4 levels and std within 0.2 (standard errors, by bootstrap
# from the shared 4,660 images).
STATS_SAMPLE_SIZE = 10_000
# --folder_stream=auto streams a folder with more training and test files than this, or whose
# decoded images would take more than STREAM_ABOVE_BYTES: decoding into memory costs ~0.4 ms a
# small image before the first step on 2 loaded cores (docs/benchmarks.md, Streamed folders: 43 s
# for 100,000, 6.7 s streamed), so ~9 s at this size; below it, memory spares an accelerator from
# waiting on the CPU's decoding every epoch.
STREAM_ABOVE_FILES = 20_000
STREAM_ABOVE_BYTES = 2 << 30
# Seed streams folded into --seed, beside the validation split's (the seed itself).
_TEST_STREAM, _STATS_STREAM = 1, 2
_DECODE_BATCH = 256


def _visible(path, directories):
  """Sorted names of the entries of `path` that are (not) directories; hidden ones skipped."""
  with os.scandir(path) as entries:
    return sorted(entry.name for entry in entries
                  if not entry.name.startswith(".") and entry.is_dir() == directories)


def _image_files(class_dir):
  """The image files of one class folder (str paths, sorted); non-image files are skipped.

  Raises:
    ValueError: the folder holds sub-folders (nested classes) or no image.
  """
  nested = _visible(class_dir, directories=True)
  if nested:
    raise ValueError(f"Class folder {class_dir} holds sub-folders {nested}: classes must be one "
                     f"level deep, <class>/<image>, with no folder inside a class folder. "
                     f"Received: class folder {os.path.basename(class_dir)!r}")
  files = [os.path.join(class_dir, name) for name in _visible(class_dir, directories=False)
           if os.path.splitext(name)[1].lower() in _IMAGE_SUFFIXES]
  if not files:
    raise ValueError(f"Class folder {class_dir} holds no images: expected files ending "
                     f"in {', '.join(_IMAGE_SUFFIXES)}. Received: class folder "
                     f"{os.path.basename(class_dir)!r} with {len(os.listdir(class_dir))} entries")
  return files


def _list_split(split_dir, class_names):
  """(str paths, int32 labels) of split_dir/<class>/<image>, in class then file order."""
  paths, labels = [], []
  for label, name in enumerate(class_names):
    files = _image_files(os.path.join(split_dir, name))
    paths += files
    labels += [label] * len(files)
  return paths, np.array(labels, np.int32)


def _class_names(split_dir, expected):
  """The sorted class folders of split_dir, at least 2.

  Raises:
    ValueError: none, or one (the message says the layout `expected`).
  """
  names = tuple(_visible(split_dir, directories=True))
  if not names:
    files = _visible(split_dir, directories=False)
    raise ValueError(f"No classes in {split_dir}: expected {expected}, one sub-folder per class. "
                     f"Received: {len(files)} files and no class folder in {split_dir}")
  if len(names) < 2:
    raise ValueError(f"A classification dataset needs at least 2 classes, {split_dir} has 1. "
                     f"Received: classes={list(names)}")
  return names


def _check_split_classes(train_dir, split_dir, class_names):
  """Raises unless the test or validation folder `split_dir` has train_dir's class folders."""
  split_classes = _visible(split_dir, directories=True)
  if split_classes != list(class_names):
    missing = sorted(set(class_names) - set(split_classes))
    extra = sorted(set(split_classes) - set(class_names))
    raise ValueError(f"{split_dir} must have the same class folders as {train_dir}: "
                     f"missing from {os.path.basename(split_dir)}: {missing}, not in train: "
                     f"{extra}. Received: {os.path.basename(split_dir)} classes {split_classes}")


@dataclasses.dataclass(frozen=True)
class Listing:
  """A folder's files and labels, before validation is held out.

  Attributes:
    class_names: the class folder names, sorted.
    train_paths, train_labels: str list and int32 array, in class then file order.
    test_paths, test_labels: the test split, or both None.
    test_origin: where the test split came from, for the run's summary line.
    val_dir: ROOT/val or ROOT/validation in the three-split layout, whose images are the
      validation split; else None (validation is held out of the training images).
    val_paths, val_labels: that folder's files and labels, or both None.
  """
  class_names: tuple[str, ...]
  train_paths: list
  train_labels: np.ndarray
  test_paths: list | None
  test_labels: np.ndarray | None
  test_origin: str
  val_dir: str | None = None
  val_paths: list | None = None
  val_labels: np.ndarray | None = None


def _layout_error(root, folders, problem):
  splits = ", ".join(f"{name}/" for name in _TEST_SPLITS)
  return ValueError(
      f"Dataset folder {root} is ambiguous: {problem}. A folder dataset is ROOT/<class>/<image>, "
      f"or ROOT/train/<class>/<image> with at most one of {splits} beside it, or with test/ and "
      f"one of val/, validation/ (the validation split). Received: folders {folders} in {root}")


def list_folder(root, test_size=0, seed=0):
  """The files of folder dataset `root` in whichever layout it has (module docstring).

  Only directories are listed (os.scandir): no image is opened.

  Args:
    root: the folder (str).
    test_size: ROOT/<class> layout only: images held out as the test split (0: none).
    seed: seeds the test split's choice (with its own stream, so it is not validation's).

  Returns:
    A `Listing`.

  Raises:
    FileNotFoundError: root is not a directory.
    ValueError: an ambiguous or malformed layout, or test_size too large (messages name what
      was found and what would be valid).
  """
  if not os.path.isdir(root):
    raise FileNotFoundError(f"Dataset folder {root} does not exist (or is not a directory): "
                            f"'folder:ROOT' expects ROOT/<class>/<image> or "
                            f"ROOT/train/<class>/<image>. Received: spec='folder:{root}'")
  folders = _visible(root, directories=True)
  splits = [name for name in _TEST_SPLITS if name in folders]
  if "train" not in folders:
    if splits:
      raise _layout_error(root, folders, f"it has {splits[0]}/ but no train/, so {splits[0]}/ "
                          "would be a class")
    return _held_out_test(root, _class_names(root, f"{root}/<class>/<image> or "
                                                   f"{root}/train/<class>/<image>"),
                          test_size, seed)
  others = [name for name in folders if name != "train" and name not in splits]
  if others:
    raise _layout_error(root, folders, f"it has train/ and, beside it, {others}, which look "
                        "like class folders")
  validation = [name for name in splits if name in _VALIDATION_SPLITS]
  if len(validation) > 1:
    role = "validation" if "test" in splits else "test"
    raise _layout_error(root, folders, f"it has train/ and both {validation[0]}/ and "
                        f"{validation[1]}/, and either could be the {role} split")
  train_dir = os.path.join(root, "train")
  class_names = _class_names(train_dir, f"{train_dir}/<class>/<image>")
  train_paths, train_labels = _list_split(train_dir, class_names)
  if not splits:
    return Listing(class_names, train_paths, train_labels, None, None, "no test split")
  test_dir = os.path.join(root, splits[0])
  test_paths, test_labels = _other_split(train_dir, test_dir, class_names)
  listing = Listing(class_names, train_paths, train_labels, test_paths, test_labels,
                    f"test split {test_dir} ({len(test_paths)} images)")
  if len(splits) == 1:
    return listing
  val_dir = os.path.join(root, splits[1])
  val_paths, val_labels = _other_split(train_dir, val_dir, class_names)
  return dataclasses.replace(listing, val_dir=val_dir, val_paths=val_paths, val_labels=val_labels)


def _other_split(train_dir, split_dir, class_names):
  """(paths, labels) of the test or validation folder beside train_dir, its classes checked."""
  _check_split_classes(train_dir, split_dir, class_names)
  return _list_split(split_dir, class_names)


def _held_out_test(root, class_names, test_size, seed):
  """The `Listing` of a ROOT/<class> folder, `test_size` of its images held out as test."""
  paths, labels = _list_split(root, class_names)
  if test_size == 0:
    return Listing(class_names, paths, labels, None, None, "no test split (--test_size=0)")
  if not 1 <= test_size <= len(paths) - 2:
    raise ValueError(
        f"test_size (--test_size) must be in [0, {len(paths) - 2}] for folder:{root}, whose "
        f"{root}/<class> folders hold {len(paths)} images: the test split is held out of them "
        f"before validation, and training and validation need at least one each. Received: "
        f"test_size={test_size}")
  train, test = registry.hold_out(len(paths), test_size, [seed, _TEST_STREAM])
  return Listing(class_names, [paths[i] for i in train], labels[train], [paths[i] for i in test],
                 labels[test], f"test split {test_size} images held out of {root}/<class> "
                               f"(--test_size, seeded by --seed)")


def split_validation(listing, val_size, seed, spec):
  """(train paths, train labels, val paths, val labels): `val_size` images, seeded by `seed`,
  held out of the training files, or chosen from the validation folder of the three-split layout
  (then every training file trains).

  Raises:
    ValueError: val_size outside what the training files or the validation folder hold (the
      message names --val_size and the folder).
  """
  if listing.val_dir is None:
    train, val = registry.validation_indices(len(listing.train_paths), val_size, seed, spec)
    return (_take(listing.train_paths, train), listing.train_labels[train],
            _take(listing.train_paths, val), listing.train_labels[val])
  count = len(listing.val_paths)
  if not 1 <= val_size <= count:
    raise ValueError(f"val_size (--val_size) must be in [1, {count}] for {spec}, whose "
                     f"validation folder {listing.val_dir} holds {count} images: the validation "
                     f"split is chosen from them. Received: val_size={val_size}")
  _, val = registry.hold_out(count, val_size, seed)
  return (listing.train_paths, listing.train_labels, _take(listing.val_paths, val),
          listing.val_labels[val])


def stats_sample(count, seed):
  """Positions, sorted, of the training images (validation removed) that the statistics come
  from: all of them up to `STATS_SAMPLE_SIZE`, else that many chosen with `seed`."""
  if count <= STATS_SAMPLE_SIZE:
    return np.arange(count)
  return np.sort(np.random.default_rng([seed, _STATS_STREAM]).choice(
      count, STATS_SAMPLE_SIZE, replace=False))


def read_image(path):
  """uint8 [H, W, 3] of one image file (the first frame of an animated GIF).

  Raises:
    ValueError: the file is not a readable PNG/JPEG/BMP/GIF (the message names it).
  """
  try:
    image = _decode(tf.constant(str(path)))
  except tf.errors.OpError as error:
    # The op's message without TensorFlow's "{{function_node ...}}" and "[Op:...] name:" parts.
    reason = re.sub(r"\{\{.*?\}\}\s*", "", error.message).split(" [Op:")[0].rstrip(". ")
    raise ValueError(f"Cannot read image file {path} as PNG/JPEG/BMP/GIF: {reason}. "
                     f"Received: file={str(path)!r}") from error
  return image.numpy()


def _decode(path):
  """uint8 [H, W, 3] tensor of the file at string tensor `path`: in memory and streamed alike."""
  return tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)


def _resized(image, image_size):
  """uint8 [image_size, image_size, 3] (the aspect ratio is not kept); an image of that size is
  kept as it is, not resampled."""
  return tf.cond(tf.reduce_all(tf.shape(image)[:2] == image_size), lambda: image,
                 lambda: preprocess.resize_uint8(image, [image_size, image_size]))


def file_decoder(image_shape, image_size):
  """fn(string path tensor) -> uint8 image_shape tensor, for a tf.data map: the decode of
  `read_image` and, with `image_size`, the resize of the in-memory path; without, an image of
  another shape fails its batch with an error naming the file and `--image_size`."""
  def decode(path):
    image = _decode(path)
    if image_size is not None:
      image = _resized(image, image_size)
    else:
      check = tf.debugging.Assert(
          tf.reduce_all(tf.shape(image) == tf.constant(image_shape, tf.int32)),
          [f"Images differ in size: this file is not {image_shape[0]}x{image_shape[1]} (height x "
           f"width) like the others. Pass --image_size to resize all of them to image_size x "
           f"image_size. Received: image_size=None, file=", path])
      with tf.control_dependencies([check]):
        image = tf.identity(image)
    return tf.ensure_shape(image, image_shape)
  return decode


def _decoded_batches(paths, image_shape, image_size, first_path):
  """Yields uint8 [b, *image_shape] numpy batches of the decoded files, in order: `file_decoder`
  in a parallel tf.data map (decoding file by file in eager mode costs about 3 ms an image here,
  10 times more), the decode that streaming uses.

  Raises:
    ValueError: a file is unreadable, or not of `image_shape` without image_size (the message
      names it, and `first_path`, a file of that shape).
  """
  dataset = tf.data.Dataset.from_tensor_slices(list(paths)).map(
      file_decoder(image_shape, image_size), num_parallel_calls=tf.data.AUTOTUNE,
      deterministic=True).batch(_DECODE_BATCH).prefetch(1)
  iterator, start = iter(dataset), 0
  while True:
    try:
      batch = next(iterator)
    except StopIteration:
      return
    except tf.errors.InvalidArgumentError:
      for path in paths[start:start + _DECODE_BATCH]:  # the file that failed, named
        shape = read_image(path).shape
        if image_size is None and shape != image_shape:
          raise ValueError(_size_error(first_path, image_shape, path, shape)) from None
      raise
    yield batch.numpy()
    start += _DECODE_BATCH


def _stack_images(paths, image_shape, image_size, first_path):
  """uint8 [len(paths), *image_shape]: every file decoded (`_decoded_batches`)."""
  images = np.empty([len(paths), *image_shape], np.uint8)
  start = 0
  for batch in _decoded_batches(paths, image_shape, image_size, first_path):
    images[start:start + len(batch)] = batch
    start += len(batch)
  return images


def check_files(paths, image_shape, image_size, first_path):
  """Decodes every file of `paths` (`_decoded_batches`), keeping nothing.

  Raises:
    ValueError: a file is unreadable, or not of `image_shape` without image_size (named).
  """
  for _ in _decoded_batches(paths, image_shape, image_size, first_path):
    pass


def _size_error(first_path, first_size, path, size):
  return (f"Images differ in size: {first_path} is {first_size[0]}x{first_size[1]} but {path} is "
          f"{size[0]}x{size[1]} (height x width). Pass --image_size to resize all of them to "
          f"image_size x image_size. Received: image_size=None")


def _streamed_stats(paths, image_shape, image_size, first_path):
  """(mean, std) of the decoded images of `paths`, read batch by batch: integer sums, so the
  same numbers as `registry.channel_stats` of the same images stacked."""
  pixels, sums, squares = 0, np.zeros(3, np.int64), np.zeros(3, np.int64)
  for batch in _decoded_batches(paths, image_shape, image_size, first_path):
    batch_pixels, batch_sums, batch_squares = registry.channel_sums(batch)
    pixels, sums, squares = pixels + batch_pixels, sums + batch_sums, squares + batch_squares
  return registry.stats_from_sums(pixels, sums, squares)


def should_stream(stream, listing, image_shape):
  """Whether to read the folder from its files as training runs: `stream` ("always", "never",
  or "auto": when its files, of every split, exceed STREAM_ABOVE_FILES or their decoded images
  2 GiB)."""
  if stream != "auto":
    return stream == "always"
  files = sum(len(paths or ()) for paths in (listing.train_paths, listing.val_paths,
                                              listing.test_paths))
  return files > STREAM_ABOVE_FILES or files * np.prod(image_shape) > STREAM_ABOVE_BYTES


def _take(items, indices):
  return [items[i] for i in indices]


def _validation_origin(val_paths, listing):
  """'<n> of the <m> images of ROOT/val': the validation split of the three-split layout."""
  return f"{len(val_paths)} of the {len(listing.val_paths)} images of {listing.val_dir}"


@registry.register("folder", argument="ROOT",
                   help_text="ROOT/<class>/<image> (a test split held out: --test_size), or "
                             "ROOT/train/<class>/<image> with optional ROOT/test, ROOT/val or "
                             "ROOT/validation (both ROOT/test and ROOT/val: val is the validation "
                             "split); --image_size resizes; --folder_stream")
def read_folder(request):
  """The folder dataset `request.argument`, its validation held out: an `ImageDataset`, or a
  `FolderStream` when streamed (`should_stream`)."""
  root, image_size, seed = request.argument, request.image_size, request.seed
  spec = f"folder:{root}"
  listing = list_folder(root, request.test_size, seed)
  train_paths, train_labels, val_paths, val_labels = split_validation(
      listing, request.val_size, seed, spec)
  sample = stats_sample(len(train_paths), seed)
  first_path = listing.train_paths[0]  # without image_size, all must have its shape
  image_shape = ((image_size, image_size, 3) if image_size is not None else
                 read_image(first_path).shape)
  description = listing.test_origin
  if listing.val_dir is not None:
    description += f"; validation split {_validation_origin(val_paths, listing)}"
  if not should_stream(request.stream, listing, image_shape):
    test_paths = listing.test_paths or []
    # One stack for every split, so that an image of another size is caught wherever it is.
    images = _stack_images(train_paths + val_paths + test_paths, image_shape, image_size,
                           first_path)
    ends = np.cumsum([len(train_paths), len(val_paths)])
    train_images = images[:ends[0]]
    mean, std = registry.channel_stats(train_images[sample])
    # Copies, so that the stack of all the files is freed.
    return containers.ImageDataset(
        name=spec, train_images=train_images.copy(), train_labels=train_labels,
        val_images=images[ends[0]:ends[1]].copy(), val_labels=val_labels,
        test_images=images[ends[1]:].copy() if test_paths else None,
        test_labels=listing.test_labels, class_names=listing.class_names, mean=mean, std=std,
        description=description)
  mean, std = _streamed_stats(_take(train_paths, sample), image_shape, image_size, first_path)
  if listing.test_paths and len(listing.test_paths) <= STREAM_ABOVE_FILES:
    # Read once now, so that an unreadable test file or one of another size stops the run
    # before training (naming the file) rather than after it, when the test split is evaluated.
    check_files(listing.test_paths, image_shape, image_size, first_path)
  paths = lambda split: None if split is None else tuple(split)
  return containers.FolderStream(
      name=spec, class_names=listing.class_names, mean=mean, std=std, image_shape=image_shape,
      train_paths=tuple(train_paths), train_labels=train_labels,
      val_paths=tuple(val_paths), val_labels=val_labels,
      test_paths=paths(listing.test_paths), test_labels=listing.test_labels,
      decode=file_decoder(image_shape, image_size),
      description=f"{description}; streamed from the files",
      check_files=functools.partial(check_files, image_shape=image_shape, image_size=image_size,
                                    first_path=first_path))
