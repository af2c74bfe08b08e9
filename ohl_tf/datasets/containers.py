"""What a loaded dataset is: three splits in memory (`ImageDataset`), streamed from tfds' records
(`StreamingDataset`) or from a folder's image files (`FolderStream`), each with its class names
and standardisation statistics."""

import dataclasses

import numpy as np
import tensorflow as tf

from ohl_tf import preprocess


@dataclasses.dataclass(frozen=True)
class ImageDataset:
  """Three splits of uint8 RGB images with int32 labels, and the statistics to standardise them.

  Attributes:
    name: the spec it was loaded from, e.g. "cifar10", "folder:/data/pets", "synthetic".
    train_images: uint8 [N, H, W, 3], the training split minus the validation images.
    train_labels: int32 [N], in [0, num_classes).
    val_images: uint8 [V, H, W, 3], held out of the training split with a fixed seed.
    val_labels: int32 [V].
    test_images: uint8 [T, H, W, 3], the dataset's test split; None when it has none.
    test_labels: int32 [T]; None when there is no test split.
    class_names: one name per class; label i is class_names[i] (`check_class_names`).
    mean: per-channel mean in [0, 255] units, for standardisation.
    std: per-channel standard deviation in [0, 255] units.
    description: what the run's summary line adds about the data (a folder's: where its test
      split came from); empty for the datasets that need no word.
  """
  name: str
  train_images: np.ndarray
  train_labels: np.ndarray
  val_images: np.ndarray
  val_labels: np.ndarray
  test_images: np.ndarray | None
  test_labels: np.ndarray | None
  class_names: tuple[str, ...]
  mean: tuple[float, float, float]
  std: tuple[float, float, float]
  description: str = ""

  def __post_init__(self):
    # A loader bug (or a hand-built dataset) fails here, not in the middle of a training run.
    check_class_names(self.class_names)
    splits = [("train", self.train_images, self.train_labels),
              ("val", self.val_images, self.val_labels)]
    if (self.test_images is None) != (self.test_labels is None):
      raise ValueError("test_images and test_labels must both be arrays or both be None. "
                       f"Received: test_images is None={self.test_images is None}, "
                       f"test_labels is None={self.test_labels is None}")
    if self.test_images is not None:
      splits.append(("test", self.test_images, self.test_labels))
    for split, images, labels in splits:
      _check_split(split, images, labels, self.train_images.shape[1:], len(self.class_names))
    for field in ("mean", "std"):
      if len(getattr(self, field)) != 3:
        raise ValueError(f"{field} must have 3 values, one per RGB channel. "
                         f"Received: {field}={getattr(self, field)!r}")

  @property
  def num_classes(self):
    return len(self.class_names)

  @property
  def image_shape(self):
    """(H, W, 3), shared by the three splits."""
    return tuple(self.train_images.shape[1:])

  @property
  def num_train(self):
    return len(self.train_images)

  @property
  def has_test(self):
    return self.test_images is not None

  @staticmethod
  def train_base(image, seed):
    """Base training preprocessing: random flip, pad 4 and random crop (docs/pipeline.md)."""
    return preprocess.cifar_train_base(image, seed)

  def serving_preprocess(self, image):
    """uint8 `image_shape` of one decoded image of any size, as this dataset's own are prepared.

    Evaluation reads the splits as stored, all at `image_shape`: CIFAR's at their size, a
    folder's resized by `preprocess.resize_uint8` when --image_size is given. So an image of
    another size is resized to `image_shape` by that same `resize_uint8` (antialiased bilinear,
    the aspect ratio not kept), and one of that size passes unchanged (`resize_uint8` to its own
    size is the identity).

    Args:
      image: uint8 [h, w, 3], any h and w.

    Returns:
      uint8 [H, W, 3], `image_shape`.
    """
    return tf.ensure_shape(preprocess.resize_uint8(image, self.image_shape[:2]), self.image_shape)

  def eval_examples(self, split):
    """(uint8 image [H, W, 3], int32 label) examples of "val" or "test", in order."""
    images, labels = {"val": (self.val_images, self.val_labels),
                      "test": (self.test_images, self.test_labels)}[split]
    return tf.data.Dataset.from_tensor_slices((images, labels))


@dataclasses.dataclass(frozen=True)
class StreamingDataset:
  """A dataset read from tensorflow-datasets' records as it trains: ImageNet.

  Records stay encoded until the input pipeline decodes them, after its shuffle and skip, so that
  a period that starts in the middle of an epoch skips records without decoding them.

  Attributes:
    name: the spec, "imagenet2012".
    class_names: one name per class; label i is class_names[i] (`check_class_names`).
    mean: per-channel mean in [0, 255] units.
    std: None: mean subtraction only (docs/pipeline.md).
    image_size: side of the training crop and of the evaluation centre crop.
    num_train: training records (tfds' train split minus the validation records).
    num_val: validation records, held out of tfds' train split.
    read: callable(tfds_split, shuffle_seed) -> tf.data.Dataset of (encoded image, int64 label)
      of a tfds split such as "train[50000:]"; shuffle_seed None reads in order.
  """
  name: str
  class_names: tuple[str, ...]
  mean: tuple[float, float, float]
  std: None
  image_size: int
  num_train: int
  num_val: int
  read: object

  num_classes = ImageDataset.num_classes
  has_test = True  # tfds' validation split: the paper's test figures
  description = ""

  def __post_init__(self):
    check_class_names(self.class_names)

  @property
  def image_shape(self):
    return (self.image_size, self.image_size, 3)

  @staticmethod
  def decode(encoded):
    """uint8 [H, W, 3] of one encoded record."""
    return tf.image.decode_image(encoded, channels=3, expand_animations=False)

  def train_base(self, image, seed):
    """Base training preprocessing: random-resized crop to image_size, random flip."""
    return preprocess.imagenet_train_base(image, seed, self.image_size)

  def train_epoch(self, shuffle_seed):
    """The training records of one epoch, shuffled by `shuffle_seed` (files and a buffer)."""
    return self.read(f"train[{self.num_val}:{self.num_val + self.num_train}]", shuffle_seed)

  def serving_preprocess(self, image):
    """uint8 [S, S, 3] of one decoded image of any size, as evaluation prepares the records:
    shorter side resized to 256/224 S, then the centre S x S crop (`preprocess.imagenet_eval`).

    Args:
      image: uint8 [h, w, 3], any h and w.

    Returns:
      uint8 [S, S, 3], S = image_size.
    """
    return preprocess.imagenet_eval(image, self.image_size, round(self.image_size * 256 / 224))

  def eval_examples(self, split):
    """(uint8 image [S, S, 3], int32 label) of "val" or "test", by `serving_preprocess`."""
    tfds_split = {"val": f"train[:{self.num_val}]", "test": "validation"}[split]
    return self.read(tfds_split, None).map(
        lambda encoded, label: (self.serving_preprocess(self.decode(encoded)),
                                tf.cast(label, tf.int32)),
        num_parallel_calls=tf.data.AUTOTUNE)


@dataclasses.dataclass(frozen=True)
class FolderStream:
  """A folder dataset read from its image files as it trains (`folder:ROOT`, streamed).

  The splits are lists of files; an image is decoded (and resized) by `decode` when the input
  pipeline reaches it (`pipeline.FileSource`), so memory holds the file names, not the images.
  The same folder, seed and sizes give the same files in the same splits, the same statistics
  and, through the pipeline, the same batches as its in-memory `ImageDataset`.

  Attributes:
    name: the spec, "folder:ROOT".
    class_names: one name per class; label i is class_names[i] (`check_class_names`).
    mean, std: per-channel statistics in [0, 255] units.
    image_shape: (H, W, 3) of every decoded image.
    train_paths, train_labels: str tuple and int32 [N]: the training files minus validation.
    val_paths, val_labels: the validation files, held out with `registry.validation_indices`.
    test_paths, test_labels: the test split, or both None.
    decode: fn(string path tensor) -> uint8 image_shape tensor, in a tf.data map.
    description: as `ImageDataset.description`.
    check_files: fn(paths) that decodes those files and raises ValueError naming the first
      unreadable one (or one of another size), as `decode` reads them; None: no check
      (`check_every_file`).
  """
  name: str
  class_names: tuple[str, ...]
  mean: tuple[float, float, float]
  std: tuple[float, float, float]
  image_shape: tuple[int, int, int]
  train_paths: tuple[str, ...]
  train_labels: np.ndarray
  val_paths: tuple[str, ...]
  val_labels: np.ndarray
  test_paths: tuple[str, ...] | None
  test_labels: np.ndarray | None
  decode: object
  description: str = ""
  check_files: object = None

  num_classes = ImageDataset.num_classes
  # The same base preprocessing as the folder held in memory (`ImageDataset.train_base`).
  train_base = staticmethod(preprocess.cifar_train_base)
  # `decode` resizes with the same resize_uint8 to image_shape: serving prepares images alike.
  serving_preprocess = ImageDataset.serving_preprocess

  def __post_init__(self):
    check_class_names(self.class_names)
    for split in ("train", "val", "test"):
      paths, labels = getattr(self, f"{split}_paths"), getattr(self, f"{split}_labels")
      if (paths is None) != (labels is None) or (
          paths is not None and (labels.dtype != np.int32 or labels.shape != (len(paths),))):
        raise ValueError(f"{split}_labels must be int32 [{split}_paths], one per file. Received: "
                         f"{split}_paths of {None if paths is None else len(paths)} files, "
                         f"{split}_labels={None if labels is None else labels.shape}")

  @property
  def num_train(self):
    return len(self.train_paths)

  def check_every_file(self):
    """Decodes every file of the three splits (`check_files`), raising ValueError naming the
    first that fails. A file that fails mid-run fails its batch with TensorFlow's message, which
    does not name it (`search.OnlineSearch.run` calls this then)."""
    self.check_files([*self.train_paths, *self.val_paths, *(self.test_paths or ())])

  @property
  def has_test(self):
    return self.test_paths is not None

  def eval_examples(self, split):
    """(uint8 image [H, W, 3], int32 label) examples of "val" or "test", in order."""
    paths, labels = {"val": (self.val_paths, self.val_labels),
                     "test": (self.test_paths, self.test_labels)}[split]
    return tf.data.Dataset.from_tensor_slices((list(paths), labels)).map(
        lambda path, label: (self.decode(path), label), num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True)


def check_class_names(class_names, num_classes=None):
  """Checks that `class_names` names each class once, on one line (the SavedModel's asset file
  holds one name per line), and returns it.

  Args:
    class_names: tuple of str, label i is class_names[i].
    num_classes: when given, how many names there must be.

  Returns:
    `class_names`, unchanged.

  Raises:
    ValueError: not a non-empty tuple of str, a name that is empty or spans lines, a name given
      twice, or not `num_classes` names (the message names the culprit).
  """
  if not isinstance(class_names, tuple) or not class_names:
    raise ValueError(f"class_names must be a non-empty tuple of str, one per class. Received: "
                     f"class_names={class_names!r}")
  for label, name in enumerate(class_names):
    # splitlines: the line breaks that a reader of the asset file may split on, not only "\n".
    if not isinstance(name, str) or name.splitlines() != [name]:
      raise ValueError(f"Every class name must be a non-empty str on one line. Received: "
                       f"class_names[{label}]={name!r}")
  duplicates = sorted({name for name in class_names if class_names.count(name) > 1})
  if duplicates:
    raise ValueError(f"class_names must be unique, one per class. Received: class_names with "
                     f"{duplicates} more than once")
  if num_classes is not None and len(class_names) != num_classes:
    raise ValueError(f"class_names must have one name per class, {num_classes}. Received: "
                     f"{len(class_names)} class_names")
  return class_names


def _check_split(split, images, labels, image_shape, num_classes):
  """Checks one split's dtypes, shapes and label range against the training images."""
  if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
    raise ValueError(f"{split}_images must be uint8 [N, H, W, 3]. Received: {split}_images with "
                     f"dtype={images.dtype}, shape={images.shape}")
  if images.shape[1:] != image_shape:
    raise ValueError(f"{split}_images must have the training images' shape {image_shape} per "
                     f"image. Received: {split}_images.shape={images.shape}")
  if labels.dtype != np.int32 or labels.shape != images.shape[:1]:
    raise ValueError(f"{split}_labels must be int32 [{len(images)}], one per image. Received: "
                     f"{split}_labels with dtype={labels.dtype}, shape={labels.shape}")
  if labels.size and not 0 <= labels.min() <= labels.max() < num_classes:
    raise ValueError(f"{split}_labels must be in [0, {num_classes}). Received: {split}_labels "
                     f"in [{labels.min()}, {labels.max()}]")
