"""Image datasets for the OHL trainer, in memory or streamed, with a held-out validation split.

A dataset is named by a *spec* string, one of `KNOWN`:
  * "cifar10", "cifar100", "svhn_cropped": through tensorflow-datasets, converted once to numpy;
  * "imagenet2012": through tensorflow-datasets (manual download), streamed: a `StreamingDataset`;
  * "folder:ROOT": images in ROOT/train/<class>/* (and optionally ROOT/test/<class>/*);
  * "synthetic": a small dataset generated here, with no files, whose label is carried by colour
    so that Invert and Solarize destroy it (`HARMFUL_ELEMENTS`): the known answer of
    docs/correctness.md for the OHL loop.

Small datasets are held in memory as uint8 [N, H, W, 3] numpy arrays (`ImageDataset`; CIFAR-10's
training split is 150 MiB). ImageNet is streamed from tfds' records (`StreamingDataset`): images
of any size, decoded in the input pipeline after its shuffle, so that skipping is cheap.

`load` always holds `val_size` images out of the training split (docs/pipeline.md: the OHL
outer step scores the trajectories on them): in memory with a seeded permutation, so the same
spec, seed and val_size give the same three splits on every call; for ImageNet the first
`val_size` records of tfds' train split (tfds shuffled them once, with a fixed key, when it
prepared the dataset, so they are a fixed random sample whatever the seed).

Augmentation and normalisation are not done here: `mean` and `std` are handed to the pipeline
(ohl_tf.preprocess).

Example:
  >>> data = load("synthetic", val_size=500)
  >>> data.train_images.shape, data.num_classes
  ((4500, 32, 32, 3), 8)
"""

import dataclasses
import functools
import numbers
import pathlib
import re

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from ohl_tf import preprocess

KNOWN = ("cifar10", "cifar100", "svhn_cropped", "imagenet2012", "folder:ROOT", "synthetic")

# tfds datasets held in memory, with the published per-channel statistics in [0, 255] units (the
# values of the Cutout and AutoAugment code) where there are such, else None: computed from the
# training split minus validation.
_IN_MEMORY_TFDS = {
    "cifar10": (preprocess.CIFAR10_MEAN, preprocess.CIFAR10_STD),
    "cifar100": (preprocess.CIFAR100_MEAN, preprocess.CIFAR100_STD),
    "svhn_cropped": None,
}
_TFDS_SIZE = 32  # the side of every in-memory tfds dataset's images
IMAGENET = "imagenet2012"
IMAGENET_SIZE = 224  # the training crop and the evaluation crop (docs/pipeline.md)
_TFDS_BATCH = 4096  # examples per numpy conversion step: bounds the Python loop, not memory

_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


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
    class_names: one name per class; label i is class_names[i].
    mean: per-channel mean in [0, 255] units, for standardisation.
    std: per-channel standard deviation in [0, 255] units.
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

  def __post_init__(self):
    # A loader bug (or a hand-built dataset) fails here, not in the middle of a training run.
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
    class_names: one name per class.
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

  def eval_examples(self, split):
    """(uint8 image [S, S, 3], int32 label) of "val" or "test": resize 256/224 S, centre crop S."""
    tfds_split = {"val": f"train[:{self.num_val}]", "test": "validation"}[split]
    resize = round(self.image_size * 256 / 224)
    return self.read(tfds_split, None).map(
        lambda encoded, label: (preprocess.imagenet_eval(self.decode(encoded), self.image_size,
                                                         resize), tf.cast(label, tf.int32)),
        num_parallel_calls=tf.data.AUTOTUNE)


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


# ---------------------------------------------------------------------------------------------
# Sources: each returns the dataset's own splits, before validation is held out.
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Source:
  train_images: np.ndarray
  train_labels: np.ndarray
  test_images: np.ndarray | None
  test_labels: np.ndarray | None
  class_names: tuple[str, ...]
  stats: tuple | None = None  # (mean, std) when published; None: computed from train minus val


def _tfds_arrays(dataset):
  """(uint8 images, int32 labels) of an (image, label) tf.data.Dataset, as numpy arrays."""
  batches = list(tfds.as_numpy(dataset.batch(_TFDS_BATCH)))
  images = np.concatenate([images for images, _ in batches])
  labels = np.concatenate([labels for _, labels in batches]).astype(np.int32)
  return images, labels


def _tfds_load(name, data_dir, **kwargs):
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


def _load_tfds_in_memory(name, data_dir):
  """CIFAR-10, CIFAR-100 or SVHN (cropped digits) through tfds.load, as numpy arrays."""
  (train, test), info = _tfds_load(name, data_dir, split=["train", "test"], with_info=True)
  train_images, train_labels = _tfds_arrays(train)
  test_images, test_labels = _tfds_arrays(test)
  return _Source(train_images, train_labels, test_images, test_labels,
                 tuple(info.features["label"].names), _IN_MEMORY_TFDS[name])


def _image_files(class_dir):
  """The image files of one class folder, sorted; hidden and non-image files are skipped."""
  return sorted(p for p in class_dir.iterdir() if p.is_file() and not p.name.startswith(".")
                and p.suffix.lower() in _IMAGE_SUFFIXES)


def _class_folders(split_dir):
  return sorted(p.name for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))


def _list_split(split_dir, class_names):
  """(paths, int32 labels) of ROOT/<split>/<class>/<image>, in class then file order."""
  paths, labels = [], []
  for label, name in enumerate(class_names):
    files = _image_files(split_dir / name)
    if not files:
      raise ValueError(f"Class folder {split_dir / name} holds no images: expected files ending "
                       f"in {', '.join(_IMAGE_SUFFIXES)}. Received: class folder {name!r} with "
                       f"{len(list((split_dir / name).iterdir()))} entries")
    paths += files
    labels += [label] * len(files)
  return paths, np.array(labels, np.int32)


def read_image(path):
  """uint8 [H, W, 3] of one image file (the first frame of an animated GIF).

  Raises:
    ValueError: the file is not a readable PNG/JPEG/BMP/GIF (the message names it).
  """
  try:
    image = tf.io.decode_image(tf.io.read_file(str(path)), channels=3, expand_animations=False)
  except tf.errors.OpError as error:
    # The op's message without TensorFlow's "{{function_node ...}}" and "[Op:...] name:" parts.
    reason = re.sub(r"\{\{.*?\}\}\s*", "", error.message).split(" [Op:")[0].rstrip(". ")
    raise ValueError(f"Cannot read image file {path} as PNG/JPEG/BMP/GIF: {reason}. "
                     f"Received: file={str(path)!r}") from error
  return image.numpy()


def _resize(image, size):
  """uint8 [size, size, 3] (the aspect ratio is not kept)."""
  if image.shape[:2] == (size, size):
    return image
  return preprocess.resize_uint8(image, [size, size]).numpy()


def _stack_images(paths, image_size):
  """Decodes every file and stacks them; all must share one size unless `image_size` is set."""
  images = [read_image(p) for p in paths]
  if image_size is not None:
    return np.stack([_resize(image, image_size) for image in images])
  sizes = [image.shape[:2] for image in images]
  for path, size in zip(paths, sizes):
    if size != sizes[0]:
      raise ValueError(
          f"Images differ in size: {paths[0]} is {sizes[0][0]}x{sizes[0][1]} but {path} is "
          f"{size[0]}x{size[1]} (height x width). Pass image_size to resize all of them to "
          f"image_size x image_size. Received: image_size=None")
  return np.stack(images)


def _check_test_classes(root, class_names):
  test_classes = _class_folders(root / "test")
  if test_classes != list(class_names):
    missing = sorted(set(class_names) - set(test_classes))
    extra = sorted(set(test_classes) - set(class_names))
    raise ValueError(f"{root / 'test'} must have the same class folders as {root / 'train'}: "
                     f"missing from test: {missing}, not in train: {extra}. Received: test "
                     f"classes {test_classes}")


def _load_folder(root, image_size):
  """ROOT/train/<class>/<image>, and ROOT/test/<class>/<image> when ROOT/test exists."""
  root = pathlib.Path(root)
  if not root.is_dir():
    raise FileNotFoundError(f"Dataset folder {root} does not exist (or is not a directory): "
                            f"'folder:ROOT' expects ROOT/train/<class>/<image>. "
                            f"Received: spec='folder:{root}'")
  train_dir = root / "train"
  class_names = tuple(_class_folders(train_dir)) if train_dir.is_dir() else ()
  if not class_names:
    raise ValueError(f"No classes in {train_dir}: expected {train_dir}/<class>/<image>, one "
                     f"sub-folder per class. Received: spec='folder:{root}'")
  if len(class_names) < 2:
    raise ValueError(f"A classification dataset needs at least 2 classes, {train_dir} has 1. "
                     f"Received: classes={list(class_names)}")
  train_paths, train_labels = _list_split(train_dir, class_names)
  test_paths, test_labels = [], None
  if (root / "test").is_dir():
    _check_test_classes(root, class_names)
    test_paths, test_labels = _list_split(root / "test", class_names)
  # One stack for both splits, so that a test image of another size is caught like a train one.
  images = _stack_images(train_paths + test_paths, image_size)
  test_images = images[len(train_paths):] if test_paths else None
  return _Source(images[:len(train_paths)], train_labels, test_images, test_labels, class_names)


# ---------------------------------------------------------------------------------------------
# The synthetic dataset: the label is an object's colour code, which Invert and Solarize destroy.
# ---------------------------------------------------------------------------------------------

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


def _load_synthetic():
  splits = _synthetic_splits()
  # Copies: the cached arrays are read-only and shared; a dataset owns its arrays.
  (train_images, train_labels), (test_images, test_labels) = splits["train"], splits["test"]
  return _Source(train_images.copy(), train_labels.copy(), test_images.copy(),
                 test_labels.copy(), SYNTHETIC_CLASS_NAMES)


# ---------------------------------------------------------------------------------------------
# ImageNet, streamed.
# ---------------------------------------------------------------------------------------------

_SHUFFLE_BUFFER = 10_000  # records; tfds also shuffles the order of its 1,024 train files


def _count(dataset):
  """Examples in a dataset: its cardinality where tfds knows it, else by reading it."""
  cardinality = int(dataset.cardinality())
  if cardinality >= 0:
    return cardinality
  return int(dataset.reduce(np.int64(0), lambda count, _: count + 1))


def _load_imagenet(data_dir, val_size, image_size):
  """ImageNet (ILSVRC 2012) as a `StreamingDataset`; tfds' validation split is the test split."""
  skip_decoding = {"image": tfds.decode.SkipDecoding()}
  # Prepares the dataset (or says what is missing) once; every read then uses the builder.
  records, info = _tfds_load(IMAGENET, data_dir, split="train", decoders=skip_decoding,
                             with_info=True)
  builder = tfds.builder(IMAGENET, data_dir=data_dir)

  def read(tfds_split, shuffle_seed=None):
    shuffled = shuffle_seed is not None
    dataset = builder.as_dataset(split=tfds_split, shuffle_files=shuffled, as_supervised=True,
                                 decoders=skip_decoding,
                                 read_config=tfds.ReadConfig(shuffle_seed=shuffle_seed,
                                                             try_autocache=False))
    if shuffled:
      dataset = dataset.shuffle(_SHUFFLE_BUFFER, seed=shuffle_seed)
    return dataset

  count = _count(records)
  if not 1 <= val_size < count:
    raise ValueError(
        f"val_size (--val_size) must be in [1, {count - 1}] for {IMAGENET}, whose training split "
        f"has {count} images (the paper holds out 50000). Received: val_size={val_size}")
  return StreamingDataset(name=IMAGENET, class_names=tuple(info.features["label"].names),
                          mean=preprocess.IMAGENET_MEAN, std=None, image_size=image_size,
                          num_train=count - val_size, num_val=val_size, read=read)


# ---------------------------------------------------------------------------------------------
# load(): parse the spec, read the source, hold out validation, compute the statistics.
# ---------------------------------------------------------------------------------------------


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


def _read_source(spec, data_dir, image_size):
  """The _Source that a spec names."""
  if spec in _IN_MEMORY_TFDS:
    _check_native_size(spec, image_size, _TFDS_SIZE)
    return _load_tfds_in_memory(spec, data_dir)
  if spec == "synthetic":
    _check_native_size(spec, image_size, _SYNTHETIC_SIZE)
    return _load_synthetic()
  if spec.startswith("folder:") and spec != "folder:":
    return _load_folder(spec[len("folder:"):], image_size)
  raise ValueError(f"Unknown dataset {spec!r}. Known: {', '.join(KNOWN)} (ROOT a directory). "
                   f"Received: spec={spec!r}")


def load(spec, *, data_dir=None, val_size, seed=0, image_size=None):
  """Loads a dataset and holds `val_size` training images out for validation.

  Args:
    spec: which dataset, one of `KNOWN`: "cifar10", "cifar100", "svhn_cropped", "imagenet2012",
      "folder:ROOT" or "synthetic".
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
  if not isinstance(spec, str):
    raise ValueError(f"spec must be a string, one of {', '.join(KNOWN)}. Received: spec={spec!r}")
  val_size = _check_int("val_size", val_size)  # its range is checked once the data is read
  seed = _check_int("seed", seed, 0)
  if image_size is not None:
    image_size = _check_int("image_size", image_size, 1)
  if spec == IMAGENET:
    return _load_imagenet(data_dir, val_size, image_size or IMAGENET_SIZE)
  source = _read_source(spec, data_dir, image_size)
  train_images, train_labels, val_images, val_labels = _split_validation(
      source, val_size, seed, spec)
  mean, std = source.stats or _channel_stats(train_images)
  return ImageDataset(name=spec, train_images=train_images, train_labels=train_labels,
                      val_images=val_images, val_labels=val_labels,
                      test_images=source.test_images, test_labels=source.test_labels,
                      class_names=source.class_names, mean=mean, std=std)
