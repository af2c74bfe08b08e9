"""Tests of ohl_tf/datasets/known_answer.py: the dominant-colour labels of real CIFAR-10 images,
the measured harm of the 36 elements, and the folder dataset written from them.

Skipped, with the reason, when ../shared/data/cifar10-reduced is absent (tests/cifar_testing.py).
"""

import numpy as np
from PIL import Image
import pytest

import cifar_testing
import pillow_reference
from ohl_tf import datasets
from ohl_tf.datasets import known_answer

# What `python benchmarks/known_answer.py` measured on all 1,794 kept images: Solarize 26, 102,
# 179, Equalize, Invert.
MEASURED_HARMFUL = [21, 22, 23, 34, 35]
INVERT, TRANSLATE_X_015 = 35, 6


@pytest.fixture(scope="module")
def all_images():
  """The 4,660 real images, uint8 [N,32,32,3] (labels are recomputed, the CIFAR ones unused)."""
  return cifar_testing.load_cifar10_reduced()[0]


@pytest.fixture(scope="module")
def kept(all_images):
  """(images, labels) of the balanced crisp subset, as the script keeps them."""
  labels = known_answer.relabel(all_images)
  indices = known_answer.balanced_subset(labels, seed=0)
  return all_images[indices], labels[indices]


@pytest.fixture(scope="module")
def harm(kept):
  """measure_harm on 360 of the kept images, every 5th (120 per class after balancing)."""
  images, labels = kept
  return known_answer.measure_harm(images[::5][:360], labels[::5][:360])


def test_relabel_is_the_dominant_colour_and_deterministic(all_images):
  labels = known_answer.relabel(all_images)
  np.testing.assert_array_equal(labels, known_answer.relabel(all_images.copy()))
  order = np.random.default_rng(0).permutation(len(all_images))
  np.testing.assert_array_equal(known_answer.relabel(all_images[order]), labels[order])
  crisp = labels != known_answer.AMBIGUOUS
  means = all_images.reshape(len(all_images), -1, 3).mean(1)
  np.testing.assert_array_equal(labels[crisp], means[crisp].argmax(1))
  # Ambiguous exactly when the top two channel means are closer than the margin.
  top_two = np.sort(means, 1)[:, -2:]
  np.testing.assert_array_equal(~crisp, top_two[:, 1] - top_two[:, 0] < known_answer.MARGIN)


def test_relabel_keeps_enough_images_of_every_class(all_images):
  labels = known_answer.relabel(all_images)
  counts = np.bincount(labels[labels != known_answer.AMBIGUOUS], minlength=3)
  # Measured: 3,289 crisp, 1,877 red, 598 green, 814 blue. Every class >= 15% of the crisp ones.
  assert counts.sum() >= 3000, counts
  assert counts.min() >= 0.15 * counts.sum(), counts
  indices = known_answer.balanced_subset(labels, seed=0)
  balanced = np.bincount(labels[indices], minlength=3)
  assert (balanced == counts.min()).all(), balanced
  np.testing.assert_array_equal(indices, known_answer.balanced_subset(labels, seed=0))


def test_relabel_rejects_a_negative_margin():
  with pytest.raises(ValueError, match="margin must be >= 0"):
    known_answer.relabel(np.zeros([1, 4, 4, 3], np.uint8), margin=-1)


def test_pillow_calls_match_the_pillow_reference(all_images):
  # The script's copy of the docs/search_space.md calls against the test suite's reference.
  images = [Image.fromarray(x) for x in all_images[::600]]
  for e in range(36):
    for sign in known_answer.SIGNS:
      for image in images:
        np.testing.assert_array_equal(
            np.asarray(known_answer.pillow_element(image, e, sign)),
            np.asarray(pillow_reference.pillow_element(image, e, sign)),
            err_msg=pillow_reference.element_id(e, sign))


def test_measure_harm_finds_invert_harmful_and_translate_innocent(harm):
  assert harm.shape == (36, 2)
  assert (harm[INVERT] == 1.0).all()  # the dominant channel mean becomes the weakest
  assert harm[TRANSLATE_X_015].max() <= 0.02
  # Colour, Posterize and Sharpness keep the channel means' order (up to rounding).
  assert harm[15:21].max() <= 0.01 and harm[27:30].max() <= 0.01


def test_harmful_set_and_the_gap_around_the_threshold(harm):
  assert known_answer.harmful_elements(harm) == MEASURED_HARMFUL
  lowest_harmful, highest_innocent = known_answer.harm_gap(harm)
  # Measured on all kept images: 0.407 and 0.133; a clear margin either side of 0.25.
  assert lowest_harmful >= known_answer.HARM_THRESHOLD + 0.1, lowest_harmful
  assert highest_innocent <= known_answer.HARM_THRESHOLD - 0.07, highest_innocent
  assert known_answer.uniform_harmful_mass(5) == pytest.approx(1 - (31 / 36) ** 2)


def test_measure_harm_rejects_ambiguous_labels(kept):
  images, labels = kept
  with pytest.raises(ValueError, match="AMBIGUOUS"):
    known_answer.measure_harm(images[:2], np.array([0, known_answer.AMBIGUOUS]))


def test_write_folder_dataset_round_trips_through_the_folder_loader(kept, tmp_path):
  images, labels = kept
  images, labels = images[::10], labels[::10]  # 180 images of the three classes
  splits = known_answer.write_folder_dataset(tmp_path, images, labels, known_answer.CLASS_NAMES,
                                             test_fraction=0.25, seed=3)
  for split in ("train", "test"):
    assert sorted(p.name for p in (tmp_path / split).iterdir()) == list(known_answer.CLASS_NAMES)
  # Stratified: round(0.25 n_c) of each class.
  expected = np.round(0.25 * np.bincount(labels, minlength=3)).astype(int)
  np.testing.assert_array_equal(np.bincount(labels[splits["test"]], minlength=3), expected)
  assert sorted(np.concatenate([splits["train"], splits["test"]]).tolist()) == list(range(180))

  data = datasets.load(f"folder:{tmp_path}", val_size=10, seed=0)
  assert data.class_names == known_answer.CLASS_NAMES
  # The loader reads class by class, files in index order: the same images as the split, sorted.
  test_order = np.argsort(labels[splits["test"]], kind="stable")
  np.testing.assert_array_equal(data.test_images, images[splits["test"]][test_order])
  np.testing.assert_array_equal(data.test_labels, labels[splits["test"]][test_order])
  np.testing.assert_array_equal(known_answer.relabel(data.train_images), data.train_labels)
  np.testing.assert_array_equal(known_answer.relabel(data.val_images), data.val_labels)

  with pytest.raises(FileExistsError, match="already exists"):
    known_answer.write_folder_dataset(tmp_path, images, labels, known_answer.CLASS_NAMES, 0.25, 3)


def test_write_folder_dataset_rejects_unsorted_class_names(tmp_path):
  with pytest.raises(ValueError, match="class_names must be sorted"):
    known_answer.write_folder_dataset(tmp_path, np.zeros([2, 4, 4, 3], np.uint8), [0, 1],
                                      ("red", "blue"), 0.5, 0)
