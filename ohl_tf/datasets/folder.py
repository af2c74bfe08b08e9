"""`folder:ROOT`: images in ROOT/train/<class>/<image>, and optionally ROOT/test/<class>/<image>;
the class names are the folder names, sorted."""

import pathlib
import re

import numpy as np
import tensorflow as tf

from ohl_tf import preprocess
from ohl_tf.datasets import registry

_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


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


@registry.register("folder", argument="ROOT",
                   help_text="ROOT/train/<class>/<image>, optional ROOT/test/<class>/<image>; "
                             "--image_size resizes")
def read_folder(request):
  """ROOT/train/<class>/<image>, and ROOT/test/<class>/<image> when ROOT/test exists."""
  root, image_size = pathlib.Path(request.argument), request.image_size
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
  return registry.Source(images[:len(train_paths)], train_labels, test_images, test_labels, class_names)
