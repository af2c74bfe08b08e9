"""Tests of ohl_tf.datasets: the tfds path on mock data, folder datasets built from real PNG files,
the synthetic dataset and the proof that its label survives the benign elements only, the
validation split, and bad arguments. Nothing is downloaded.
"""

import dataclasses
import re
import warnings

import numpy as np
import pytest
import requests
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image

from ohl_tf import augment
from ohl_tf import datasets
from ohl_tf.datasets import registry

_GEOMETRIC = ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate")


def _rows(images):
  """The images as a sorted list of bytes: compares two sets of images regardless of order."""
  return sorted(image.tobytes() for image in images)


def _labelled_rows(images, labels):
  """Sorted (image bytes, label) pairs: compares two labelled sets regardless of order."""
  return sorted(zip((image.tobytes() for image in images), labels.tolist()))


# ---------------------------------------------------------------------------------------------
# CIFAR through tfds, on tfds.testing.mock_data.
# ---------------------------------------------------------------------------------------------

_MOCK_EXAMPLES = 24


_PUBLISHED_STATS = {  # the Cutout / AutoAugment constants, in [0, 255] units, to 0.1
    "cifar10": ((125.3, 123.0, 113.9), (63.0, 62.1, 66.7)),
    "cifar100": ((129.3, 124.1, 112.4), (68.2, 65.4, 70.4)),
}


def test_svhn_from_tfds_with_statistics_of_its_training_split():
  with tfds.testing.mock_data(num_examples=_MOCK_EXAMPLES):
    data = datasets.load("svhn_cropped", val_size=4, seed=1)
  assert data.num_classes == 10 and data.image_shape == (32, 32, 3)
  assert data.class_names == tuple("0123456789")
  assert data.train_images.shape == (20, 32, 32, 3) and data.has_test
  pixels = data.train_images.reshape(-1, 3).astype(np.float64)
  np.testing.assert_allclose(data.mean, pixels.mean(axis=0), rtol=1e-9)
  np.testing.assert_allclose(data.std, pixels.std(axis=0), rtol=1e-9)


def test_imagenet_from_tfds_mock_data():
  with tfds.testing.mock_data(num_examples=40):  # mock data ignores split slices: 40 each
    data = datasets.load("imagenet2012", val_size=8, image_size=48)
    label_names = tfds.builder("imagenet2012").info.features["label"].names
    val = [(x.numpy(), int(y)) for x, y in data.eval_examples("val").take(3)]
    record = next(iter(data.train_epoch(shuffle_seed=5)))[0]
    base = data.train_base(data.decode(record), tf.constant([1, 2])).numpy()
  assert isinstance(data, datasets.StreamingDataset)
  assert data.num_classes == 1000 and data.image_shape == (48, 48, 3)
  assert data.class_names == tuple(label_names) and data.class_names[:2] == ("n01440764",
                                                                             "n01443537")
  assert (data.num_train, data.num_val) == (32, 8) and data.std is None
  np.testing.assert_allclose(data.mean, (123.675, 116.28, 103.53))
  assert all(x.shape == (48, 48, 3) and x.dtype == np.uint8 for x, _ in val)
  assert record.dtype == tf.string  # encoded until the pipeline decodes it
  assert base.shape == (48, 48, 3) and base.dtype == np.uint8


def _labels(dataset):
  return [int(y) for _, y in dataset]


def test_imagenet_prepared_by_tfds_from_its_manual_download(imagenet_data_dir):
  data = datasets.load("imagenet2012", data_dir=imagenet_data_dir, val_size=5, image_size=32)
  records = tfds.load("imagenet2012", data_dir=imagenet_data_dir, split="train",
                      as_supervised=True)
  all_labels = _labels(records)
  assert (data.num_train, data.num_val) == (19, 5) and len(all_labels) == 24
  # Validation: the first 5 records of tfds' (shuffled at preparation) train split, in order.
  assert _labels(data.eval_examples("val")) == all_labels[:5]
  # Training: the other 19, each once per epoch, in an order that the seed fixes.
  epoch = _labels(data.train_epoch(1))
  assert sorted(epoch) == sorted(all_labels[5:])
  assert epoch == _labels(data.train_epoch(1)) and epoch != _labels(data.train_epoch(2))
  # Test: tfds' validation split with the labels of ImageNet's validation list.
  test = [(x.numpy(), y) for x, y in data.eval_examples("test")]
  assert len(test) == 6 and all(x.shape == (32, 32, 3) for x, _ in test)
  assert sorted(int(y) for _, y in test) == sorted([65, 970, 230, 809, 516, 57])
  assert data.class_names[0] == "n01440764"


def test_imagenet_without_its_manual_download_says_what_tfds_needs(tmp_path):
  with pytest.raises(OSError, match=r"(?s)imagenet2012 .*manual download.*"
                                    r"ILSVRC2012_img_train.tar"):
    datasets.load("imagenet2012", data_dir=str(tmp_path), val_size=50000)


def test_imagenet_rejects_a_validation_split_as_large_as_train():
  with tfds.testing.mock_data(num_examples=10):
    with pytest.raises(ValueError, match=r"val_size \(--val_size\) must be in \[1, 9\] for "
                                         r"imagenet2012.*Received: val_size=10"):
      datasets.load("imagenet2012", val_size=10)


@pytest.mark.parametrize("name,num_classes", [("cifar10", 10), ("cifar100", 100)])
def test_cifar_from_tfds(name, num_classes):
  with tfds.testing.mock_data(num_examples=_MOCK_EXAMPLES):
    data = datasets.load(name, val_size=6, seed=3)
    again = datasets.load(name, val_size=6, seed=3)
    other_seed = datasets.load(name, val_size=6, seed=4)
    raw_images, raw_labels = next(iter(tfds.as_numpy(
        tfds.load(name, split="train", as_supervised=True).batch(_MOCK_EXAMPLES))))

  assert data.name == name
  assert data.num_classes == num_classes
  # tfds reads CIFAR's names from the archive when it prepares the data; mock data has none, so
  # the labels are named by their ids.
  assert data.class_names == tuple(str(i) for i in range(num_classes))
  assert data.image_shape == (32, 32, 3)
  assert data.train_images.shape == (18, 32, 32, 3) and data.train_labels.shape == (18,)
  assert data.val_images.shape == (6, 32, 32, 3) and data.val_labels.shape == (6,)
  assert data.test_images.shape == (_MOCK_EXAMPLES, 32, 32, 3)
  assert data.test_labels.shape == (_MOCK_EXAMPLES,)
  for images, labels in [(data.train_images, data.train_labels),
                         (data.val_images, data.val_labels),
                         (data.test_images, data.test_labels)]:
    assert images.dtype == np.uint8 and labels.dtype == np.int32
    assert 0 <= labels.min() and labels.max() < num_classes
  np.testing.assert_allclose((data.mean, data.std), _PUBLISHED_STATS[name], atol=0.051)
  # Train and val partition tfds's training split, each image with its label.
  assert (_labelled_rows(np.concatenate([data.train_images, data.val_images]),
                         np.concatenate([data.train_labels, data.val_labels]))
          == _labelled_rows(raw_images, raw_labels))
  # The seed alone fixes which images are held out.
  np.testing.assert_array_equal(again.val_images, data.val_images)
  np.testing.assert_array_equal(again.train_labels, data.train_labels)
  assert _rows(other_seed.val_images) != _rows(data.val_images)


@pytest.mark.parametrize("error", [
    requests.exceptions.ConnectionError("Failed to resolve 'www.cs.toronto.edu'"),
    tfds.download.DownloadError("Failed to get url. HTTP code: 404."),
], ids=["offline", "http_error"])
def test_cifar_download_failure_says_where_to_put_the_data(monkeypatch, error):
  calls = []

  def failing_load(*args, **kwargs):
    calls.append((args, kwargs))
    raise error

  monkeypatch.setattr(tfds, "load", failing_load)
  with pytest.raises(OSError, match=r"Could not load cifar100.*data_dir='/nowhere'.*"
                     r"place the prepared tfds data .* --data_dir") as info:
    datasets.load("cifar100", data_dir="/nowhere", val_size=10)
  assert info.value.__cause__ is error
  # The real path: tfds may download (where there is internet) into the given data_dir.
  (args, kwargs), = calls
  assert args == ("cifar100",)
  assert kwargs["data_dir"] == "/nowhere" and kwargs["download"] and kwargs["as_supervised"]


def test_cifar_rejects_another_image_size():
  with pytest.raises(ValueError, match=r"image_size \(--image_size\).*None \(--image_size=0\) or 32"
                     r".*Received: image_size=64"):
    datasets.load("cifar10", val_size=10, image_size=64)


# ---------------------------------------------------------------------------------------------
# folder:ROOT, on real image files written by Pillow.
# ---------------------------------------------------------------------------------------------


def _write_image(path, array, image_format="PNG"):
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(np.asarray(array, np.uint8)).save(path, image_format)


def _coded_image(label, index, size, tag):
  """A constant image whose colour encodes (label, index, tag), so that tests tell them apart."""
  return np.full([*size, 3], (label * 40, index * 10, tag), np.uint8)


def _make_folder(root, counts, split="train", size=(8, 8)):
  """root/split/<class>/<i>.png for {class: count}; returns the images and labels written.

  Labels follow the sorted class names, in file order; train and test images differ in blue.
  """
  images, labels = [], []
  for label, (name, count) in enumerate(sorted(counts.items())):
    for i in range(count):
      images.append(_coded_image(label, i, size, tag=7 if split == "train" else 99))
      labels.append(label)
      _write_image(root / split / name / f"{i:03d}.png", images[-1])
  return np.array(images), np.array(labels, np.int32)


def test_folder_dataset_reads_classes_splits_and_pixels(tmp_path):
  train_images, train_labels = _make_folder(tmp_path, {"emu": 4, "cat": 5, "dog": 3})
  test_images, test_labels = _make_folder(tmp_path, {"emu": 2, "cat": 1, "dog": 2}, split="test")
  # Not images: skipped rather than decoded.
  (tmp_path / "train" / "cat" / "notes.txt").write_text("not an image")
  (tmp_path / "train" / "cat" / ".hidden.png").write_bytes(b"")

  data = datasets.load(f"folder:{tmp_path}", val_size=3, seed=1)

  assert data.name == f"folder:{tmp_path}"
  assert data.class_names == ("cat", "dog", "emu")  # sorted folder names
  assert data.image_shape == (8, 8, 3)
  assert len(data.train_images) == 9 and len(data.val_images) == 3
  # PNG is lossless: every pixel and label is kept; train and val partition ROOT/train.
  assert (_labelled_rows(np.concatenate([data.train_images, data.val_images]),
                         np.concatenate([data.train_labels, data.val_labels]))
          == _labelled_rows(train_images, train_labels))
  np.testing.assert_array_equal(data.test_images, test_images)  # in class, then file order
  np.testing.assert_array_equal(data.test_labels, test_labels)
  assert data.train_labels.dtype == data.test_labels.dtype == np.int32
  # Statistics of the training split after validation is removed, not of all training images.
  np.testing.assert_allclose(data.mean, data.train_images.mean(axis=(0, 1, 2)), rtol=1e-12)
  np.testing.assert_allclose(data.std, data.train_images.std(axis=(0, 1, 2)), rtol=1e-9)
  assert not np.allclose(data.mean, train_images.mean(axis=(0, 1, 2)))


def test_folder_dataset_without_test_split(tmp_path):
  _make_folder(tmp_path, {"a": 3, "b": 3})
  data = datasets.load(f"folder:{tmp_path}", val_size=2)
  assert data.test_images is None and data.test_labels is None
  assert len(data.train_images) + len(data.val_images) == 6


def test_folder_dataset_decodes_jpeg_bmp_and_gif(tmp_path):
  image = np.zeros([6, 10, 3], np.uint8)
  image[:, 5:] = (200, 100, 50)  # two flat halves: JPEG keeps them within a few levels
  for i, image_format in enumerate(["JPEG", "BMP", "GIF"]):
    _write_image(tmp_path / "train" / "a" / f"{i}.{image_format.lower()}", image, image_format)
  _write_image(tmp_path / "train" / "b" / "x.PNG", image)  # suffixes are case-insensitive
  _write_image(tmp_path / "train" / "b" / "gray.png", image[..., 0])  # L mode: 3 channels out

  data = datasets.load(f"folder:{tmp_path}", val_size=1)

  images = np.concatenate([data.train_images, data.val_images])
  assert images.shape == (5, 6, 10, 3)
  # Channels 0 of every file hold 0 | 200; the GIF palette and JPEG move them a little at most.
  np.testing.assert_allclose(images[:, 1:-1, 1:3, 0], 0, atol=8)
  np.testing.assert_allclose(images[:, 1:-1, 7:9, 0], 200, atol=8)


def test_folder_images_of_different_sizes_need_image_size(tmp_path):
  _make_folder(tmp_path, {"a": 2, "b": 2}, size=(8, 8))
  _write_image(tmp_path / "train" / "b" / "z_big.png", np.zeros([12, 10, 3]))
  with pytest.raises(ValueError, match=r"a/000\.png is 8x8 but .*b/z_big\.png is 12x10.*"
                     r"Pass --image_size.*Received: image_size=None"):
    datasets.load(f"folder:{tmp_path}", val_size=1)


def test_folder_test_image_of_another_size_is_caught(tmp_path):
  _make_folder(tmp_path, {"a": 2, "b": 2}, size=(8, 8))
  _make_folder(tmp_path, {"a": 1, "b": 1}, split="test", size=(9, 8))
  with pytest.raises(ValueError, match=r"test/a/000\.png is 9x8"):
    datasets.load(f"folder:{tmp_path}", val_size=1)


def test_folder_image_size_resizes_with_antialias(tmp_path):
  halves = np.zeros([32, 32, 3], np.uint8)
  halves[:, 16:] = 200  # left half black, right half 200
  _write_image(tmp_path / "train" / "a" / "halves.png", halves)
  _write_image(tmp_path / "train" / "a" / "flat.png", np.full([20, 12, 3], 77))
  _write_image(tmp_path / "train" / "b" / "small.png", np.full([4, 4, 3], 9))
  _write_image(tmp_path / "test" / "a" / "t.png", np.full([40, 40, 3], 250))
  _write_image(tmp_path / "test" / "b" / "t.png", np.full([16, 16, 3], 5))

  data = datasets.load(f"folder:{tmp_path}", val_size=1, seed=0, image_size=16)

  assert data.image_shape == (16, 16, 3) and data.test_images.shape == (2, 16, 16, 3)
  images = np.concatenate([data.train_images, data.val_images])
  # Constant images stay exactly constant, whatever their size and aspect ratio.
  assert sum((image == 77).all() for image in images) == 1
  assert sum((image == 9).all() for image in images) == 1
  (halves_16,) = [image for image in images if image.max() == 200]
  # Down by 2 along the width: columns away from the edge keep their side's value, the two
  # middle columns are blends (the antialiasing filter spans them), and rows are all equal.
  np.testing.assert_array_equal(halves_16[:, :7], 0)
  np.testing.assert_array_equal(halves_16[:, 9:], 200)
  assert 0 < halves_16[0, 7, 0] < halves_16[0, 8, 0] < 200
  assert (halves_16 == halves_16[:1]).all()
  np.testing.assert_array_equal(data.test_images[0], 250)
  np.testing.assert_array_equal(data.test_images[1], 5)


@pytest.mark.parametrize("content", [b"not an image at all", "truncated"], ids=["garbage",
                                                                                "truncated"])
def test_folder_corrupt_image_is_named(tmp_path, content):
  _make_folder(tmp_path, {"a": 2, "b": 2})
  bad = tmp_path / "train" / "b" / "broken.png"
  if content == "truncated":
    _write_image(bad, np.random.default_rng(0).integers(0, 256, [16, 16, 3]))
    content = bad.read_bytes()[:200]
  bad.write_bytes(content)
  with pytest.raises(ValueError, match=rf"Cannot read image file {re.escape(str(bad))} as "
                     rf"PNG/JPEG/BMP/GIF: (Unknown image file format|Invalid PNG data)") as info:
    datasets.load(f"folder:{tmp_path}", val_size=1)
  # TensorFlow's decorations are stripped: the message ends with the file.
  assert str(info.value).endswith(f"Received: file={str(bad)!r}")
  assert "{{function_node" not in str(info.value)
  assert info.value.__cause__ is not None


def test_folder_missing_root(tmp_path):
  root = tmp_path / "nowhere"
  with pytest.raises(FileNotFoundError,
                     match=rf"{re.escape(str(root))} does not exist.*ROOT/train/<class>"):
    datasets.load(f"folder:{root}", val_size=1)


@pytest.mark.parametrize("make_train", [False, True], ids=["no_train_dir", "empty_train_dir"])
def test_folder_without_classes(tmp_path, make_train):
  if make_train:
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "stray.png").write_bytes(b"")  # a file is not a class folder
  where = tmp_path / "train" if make_train else tmp_path
  expected = (rf"{where}/<class>/<image>" if make_train else
              rf"{tmp_path}/<class>/<image> or {tmp_path}/train/<class>/<image>")
  with pytest.raises(ValueError, match=rf"No classes in {where}: expected {expected}, one "
                     rf"sub-folder per class. Received: {int(make_train)} files"):
    datasets.load(f"folder:{tmp_path}", val_size=1)


def test_folder_empty_class(tmp_path):
  _make_folder(tmp_path, {"a": 2, "c": 2})
  (tmp_path / "train" / "b").mkdir()
  (tmp_path / "train" / "b" / "readme.txt").write_text("no images here")
  with pytest.raises(ValueError, match=r"train/b holds no images.*Received: class folder 'b'"):
    datasets.load(f"folder:{tmp_path}", val_size=1)


def test_folder_single_class(tmp_path):
  _make_folder(tmp_path, {"only": 4})
  with pytest.raises(ValueError, match=r"at least 2 classes.*Received: classes=\['only'\]"):
    datasets.load(f"folder:{tmp_path}", val_size=1)


def test_folder_test_classes_must_match(tmp_path):
  _make_folder(tmp_path, {"a": 2, "b": 2, "c": 2})
  _make_folder(tmp_path, {"a": 1, "c": 1, "zebra": 1}, split="test")
  with pytest.raises(ValueError, match=r"missing from test: \['b'\], not in train: \['zebra'\]"):
    datasets.load(f"folder:{tmp_path}", val_size=1)


# ---------------------------------------------------------------------------------------------
# The synthetic dataset.
# ---------------------------------------------------------------------------------------------


def test_synthetic_is_deterministic_and_balanced():
  data = datasets.load("synthetic", val_size=800, seed=5)
  again = datasets.load("synthetic", val_size=800, seed=5)
  for field in dataclasses.fields(data):
    value, other = getattr(data, field.name), getattr(again, field.name)
    if isinstance(value, np.ndarray):
      np.testing.assert_array_equal(value, other, err_msg=field.name)
      assert value is not other and value.flags.writeable  # each load owns its arrays
    else:
      assert value == other, field.name

  assert data.class_names == datasets.SYNTHETIC_CLASS_NAMES and data.num_classes == 8
  assert data.image_shape == (32, 32, 3)
  assert len(data.train_images) == 4200 and len(data.test_images) == 1000
  assert np.bincount(np.concatenate([data.train_labels, data.val_labels])).tolist() == [625] * 8
  assert np.bincount(data.test_labels).tolist() == [125] * 8
  np.testing.assert_allclose(data.mean, data.train_images.mean(axis=(0, 1, 2)), rtol=1e-12)
  np.testing.assert_allclose(data.std, data.train_images.std(axis=(0, 1, 2)), rtol=1e-9)
  # Train and test are drawn independently: no test image repeats a training one.
  assert not set(_rows(data.test_images)) & set(_rows(data.train_images))


def test_synthetic_examples_depend_only_on_the_seed():
  first, second, other = (datasets.synthetic_examples(40, seed) for seed in (1, 1, 2))
  for a, b in zip(first, second):
    np.testing.assert_array_equal(a, b)
  assert not np.array_equal(first[0], other[0])


def test_synthetic_background_channels_share_one_full_range_histogram():
  # The design relies on it: AutoContrast and Equalize then map each channel with the same
  # table, so that they keep a grey disc grey (see synthetic_examples).
  images, _, masks = datasets.synthetic_examples(16, seed=0)
  for image, mask in zip(images, masks):
    histograms = [np.bincount(image[..., c][~mask], minlength=256) for c in range(3)]
    np.testing.assert_array_equal(histograms[0], histograms[1])
    np.testing.assert_array_equal(histograms[0], histograms[2])
    assert histograms[0][0] > 0 and histograms[0][255] > 0


def test_harmful_elements_are_solarize_and_invert():
  names = [augment.ELEMENTS[e].name for e in datasets.HARMFUL_ELEMENTS]
  assert names == ["Solarize"] * 3 + ["Invert"]
  assert {e for e, element in enumerate(augment.ELEMENTS)
          if element.name in ("Solarize", "Invert")} == set(datasets.HARMFUL_ELEMENTS)


# The decoder of the proof. It knows where the disc is (the generator's mask, moved by the same
# element when that element is geometric): it measures whether the colour code survives, not
# whether a detector finds the disc, which a network learns from the shape.
_SPREAD = 8  # levels between a disc's channel medians that make it coloured rather than grey


def _decode_colour_code(images, disc_masks, background_masks):
  """The class that a fixed rule reads from each image's disc; -1 where the disc is out of view.

  Per channel: the median of the disc's pixels and of the background's. If the disc's channel
  medians spread by more than _SPREAD levels, it is coloured and its high channels are those
  above the middle of that spread (Color at factor 0.1 moves every channel close to the disc's
  grey, so only within-disc comparisons survive it). Otherwise it is grey: white if its channels
  are above the background's, else black. Coloured discs keep >= 17 levels of spread after any
  benign element (0.1 x (215 - 40) at Color, Contrast or Brightness 0.1); grey discs have none.
  """
  pixels = images.reshape(len(images), -1, 3).astype(np.float64)

  def medians(masks):
    with warnings.catch_warnings():  # "All-NaN slice": a disc moved out of view, decoded as -1
      warnings.simplefilter("ignore", RuntimeWarning)
      return np.nanmedian(np.where(masks.reshape(len(images), -1, 1), pixels, np.nan), axis=1)

  disc, background = medians(disc_masks), medians(background_masks)
  top, bottom = disc.max(axis=1), disc.min(axis=1)
  high = np.where((top - bottom > _SPREAD)[:, None], disc > ((top + bottom) / 2)[:, None],
                  (disc.mean(axis=1) > background.mean(axis=1))[:, None])
  decoded = high.astype(np.int32) @ np.array([4, 2, 1], np.int32)
  return np.where(np.isnan(disc).any(axis=1), -1, decoded)


@pytest.fixture(scope="module")
def synthetic_batch():
  """320 synthetic images, 40 per class: (images, labels, disc masks)."""
  images, labels, masks = datasets.synthetic_examples(320, seed=11)
  assert np.bincount(labels).tolist() == [40] * 8
  return images, labels, masks


def _decoder_accuracy(batch, element, sign):
  """Decoder accuracy after `augment.apply_element`, or on the clean images if element is None."""
  images, labels, masks = batch
  if element is None:
    return np.mean(_decode_colour_code(images, masks, ~masks) == labels)
  elements, signs = np.full(len(images), element, np.int32), np.full(len(images), sign, np.int32)
  augmented = augment.apply_element(images, elements, signs).numpy()
  if augment.ELEMENTS[element].name in _GEOMETRIC:
    # The mask goes through the same remap: 255 = disc, 0 = background, 128 = the fill colour.
    mask_images = np.repeat(np.where(masks, 255, 0).astype(np.uint8)[..., None], 3, axis=-1)
    moved = augment.apply_element(mask_images, elements, signs).numpy()[..., 0]
    disc, background = moved == 255, moved == 0
  else:
    disc, background = masks, ~masks
  return np.mean(_decode_colour_code(augmented, disc, background) == labels)


def test_synthetic_decoder_reads_clean_images(synthetic_batch):
  assert _decoder_accuracy(synthetic_batch, None, 1) >= 0.95


def _element_param(element, sign):
  name, magnitude = augment.ELEMENTS[element].name, augment.ELEMENTS[element].magnitude
  return pytest.param(element, sign, id=f"{element}_{name}_{magnitude}_{sign:+d}")


@pytest.mark.parametrize("element,sign", [_element_param(e, s) for e in range(augment.NUM_ELEMENTS)
                                          for s in (-1, 1)])
def test_synthetic_label_survives_benign_and_dies_under_harmful_elements(synthetic_batch, element,
                                                                         sign):
  accuracy = _decoder_accuracy(synthetic_batch, element, sign)
  if element in datasets.HARMFUL_ELEMENTS:
    assert accuracy <= 0.3, f"element {element} should destroy the colour code"
  else:
    assert accuracy >= 0.8, f"element {element} should keep the colour code"


# ---------------------------------------------------------------------------------------------
# load(): the validation split and bad arguments.
# ---------------------------------------------------------------------------------------------


def test_validation_split_is_seeded_and_disjoint():
  data = datasets.load("synthetic", val_size=300, seed=0)
  again = datasets.load("synthetic", val_size=300, seed=0)
  other = datasets.load("synthetic", val_size=300, seed=1)
  np.testing.assert_array_equal(data.val_images, again.val_images)
  assert _rows(data.val_images) != _rows(other.val_images)
  assert not set(_rows(data.val_images)) & set(_rows(data.train_images))
  assert len(data.train_images) + len(data.val_images) == 5000


@pytest.mark.parametrize("val_size", [0, -3, 5000, 5001])
def test_val_size_out_of_range(val_size):
  with pytest.raises(ValueError, match=rf"val_size \(--val_size\) must be in \[1, 4999\] for "
                     rf"synthetic.*Received: val_size={val_size}"):
    datasets.load("synthetic", val_size=val_size)


@pytest.mark.parametrize("val_size", [2.5, "10", True, None])
def test_val_size_must_be_an_integer(val_size):
  with pytest.raises(ValueError, match=r"val_size must be an integer. Received: val_size="):
    datasets.load("synthetic", val_size=val_size)


def test_val_size_is_required():
  with pytest.raises(TypeError, match="val_size"):
    datasets.load("synthetic")  # pylint: disable=missing-kwoa


@pytest.mark.parametrize("kwargs,message", [
    ({"seed": -1}, r"seed must be an integer >= 0. Received: seed=-1"),
    ({"seed": 1.5}, r"seed must be an integer >= 0. Received: seed=1.5"),
    ({"image_size": 0}, r"image_size must be an integer >= 1. Received: image_size=0"),
    ({"image_size": 64}, r"synthetic images are 32x32.*Received: image_size=64"),
])
def test_bad_seed_and_image_size(kwargs, message):
  with pytest.raises(ValueError, match=message):
    datasets.load("synthetic", val_size=10, **kwargs)


@pytest.mark.parametrize("spec", ["imagenet", "CIFAR10", "folder:", "synthetic ", ""])
def test_unknown_spec_lists_the_known_ones(spec):
  with pytest.raises(ValueError, match=r"Unknown dataset .*Known: cifar10, cifar100, folder:ROOT, "
                     r"imagenet2012, svhn_cropped, synthetic.*Received: spec="):
    datasets.load(spec, val_size=10)


def test_the_registry_names_every_source_once_and_helps_with_each():
  assert datasets.names() == ["cifar10", "cifar100", "folder:ROOT", "imagenet2012",
                              "svhn_cropped", "synthetic"]
  assert all(name in datasets.flag_help() for name in datasets.names())
  with pytest.raises(ValueError, match="Dataset 'synthetic' is already registered"):
    registry.register("synthetic", help_text="a copy")(lambda request: None)


def test_image_dataset_rejects_inconsistent_arrays():
  data = datasets.load("synthetic", val_size=10)
  with pytest.raises(ValueError, match=r"val_labels must be int32 \[10\].*dtype=int64"):
    dataclasses.replace(data, val_labels=data.val_labels.astype(np.int64))
  with pytest.raises(ValueError,
                     match=r"test_labels must be in \[0, 8\). Received: test_labels in \[1, 8\]"):
    dataclasses.replace(data, test_labels=np.where(data.test_labels == 0, 8, data.test_labels))
  with pytest.raises(ValueError, match=r"test_images must have the training images' shape"):
    dataclasses.replace(data, test_images=data.test_images[:, :16])
  with pytest.raises(ValueError, match=r"both be arrays or both be None"):
    dataclasses.replace(data, test_images=None)


@pytest.mark.parametrize("class_names,message", [
    (("a",) * 8, r"class_names must be unique, one per class. Received: class_names with "
                 r"\['a'\] more than once"),
    (tuple("abcdefg") + ("h\ni",), r"Every class name must be a non-empty str on one line. "
                                   r"Received: class_names\[7\]='h\\ni'"),
    (tuple("abcdefg") + ("",), r"Received: class_names\[7\]=''"),
    (tuple("abcdefg") + (7,), r"Received: class_names\[7\]=7"),
    (list("abcdefgh"), r"class_names must be a non-empty tuple of str, one per class. "
                       r"Received: class_names=\['a'"),
    (tuple("abcdefg"), r"labels must be in \[0, 7\)"),  # a name short: a label unnamed
])
def test_image_dataset_rejects_bad_class_names(class_names, message):
  data = datasets.load("synthetic", val_size=10)
  with pytest.raises(ValueError, match=message):
    dataclasses.replace(data, class_names=class_names)


def test_streaming_dataset_rejects_bad_class_names():
  with tfds.testing.mock_data(num_examples=10):
    data = datasets.load("imagenet2012", val_size=2)
  with pytest.raises(ValueError, match=r"unique.*\['n01440764'\] more than once"):
    dataclasses.replace(data, class_names=("n01440764",) + data.class_names[:-1])


def test_check_class_names_counts_them():
  assert datasets.check_class_names(("x", "y"), num_classes=2) == ("x", "y")
  with pytest.raises(ValueError, match=r"one name per class, 3. Received: 2 class_names"):
    datasets.check_class_names(("x", "y"), num_classes=3)


def test_a_new_source_is_one_registered_reader(tmp_path, monkeypatch):
  # docs/extending.md's example, registered into a copy of the registry.
  monkeypatch.setattr(registry, "_READERS", dict(registry._READERS))  # pylint: disable=protected-access
  images, labels, _ = datasets.synthetic_examples(40, seed=1)
  np.savez(tmp_path / "d.npz", x_train=images[:30], y_train=labels[:30], x_test=images[30:],
           y_test=labels[30:])

  @registry.register("npz_example", argument="PATH", native_size=32, help_text="an .npz")
  def read_npz(request):  # pylint: disable=unused-variable
    arrays = np.load(request.argument)
    return registry.Source(arrays["x_train"], arrays["y_train"].astype(np.int32),
                           arrays["x_test"], arrays["y_test"].astype(np.int32),
                           class_names=tuple(str(i) for i in range(8)))

  assert "npz_example:PATH" in datasets.names() and "an .npz" in datasets.flag_help()
  data = datasets.load(f"npz_example:{tmp_path / 'd.npz'}", val_size=5, seed=2)
  assert (data.num_train, len(data.val_images), len(data.test_images)) == (25, 5, 10)
  with pytest.raises(ValueError, match=r"npz_example:.*d.npz images are 32x32"):
    datasets.load(f"npz_example:{tmp_path / 'd.npz'}", val_size=5, image_size=64)
