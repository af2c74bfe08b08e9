"""Tests of ohl_tf.operations, the compiler every policy shares: the table's ids, one kernel map
for every policy, both execution paths on any table, sizes known at run time only, and the image
check. Pillow's bytes per policy: augment_pillow_test.py, autoaugment_test.py, randaugment_test.py,
trivialaugment_test.py."""

import numpy as np
import pytest
import tensorflow as tf

from ohl_tf import augment
from ohl_tf import autoaugment
from ohl_tf import operations
from ohl_tf import pil_ops
from ohl_tf import preprocess
from ohl_tf import randaugment
from ohl_tf import trivialaugment


def _degrees(name, level, sign, width, height):
  del name, width, height
  return sign * level


def test_ids_are_first_seen_positions_and_a_repeat_keeps_its_first_id():
  table = operations.compile_operations(
      (("Rotate", 10), ("Invert", 0), ("Rotate", 10), ("Rotate", 20), ("Identity", 0)), _degrees)
  assert table.operations == (("Rotate", 10), ("Invert", 0), ("Rotate", 20), ("Identity", 0))
  assert len(table.kernels) == 3  # geometric, point, identity: only the kernels used
  np.testing.assert_array_equal(table.kernel_of_operation, [0, 1, 0, 2])
  np.testing.assert_array_equal(table.geometric_row, [0, 0, 1, 0])
  np.testing.assert_array_equal(table.point_parameters[1], [255, 0])  # Invert: threshold 0
  assert table.source_table(8, 8).shape == (4, 64)  # 2 geometric operations x 2 signs
  assert operations.compile_operations(
      (("Rotate", 10), ("Invert", 0), ("Rotate", 10), ("Rotate", 20), ("Identity", 0)),
      _degrees) is table  # cached


def test_an_unknown_name_is_refused_with_the_known_ones():
  with pytest.raises(ValueError, match=r"operation names must be in \('Identity', 'ShearX'.*"
                     r"Received: \['Cutout'\]"):
    operations.compile_operations((("Cutout", 16),), _degrees)


def test_every_policy_compiles_with_the_one_kernel_map():
  """The OHL elements and the baselines' operations share the kernels, not copies of them."""
  tables = [augment.element_table(augment.PAPER_IDENTITY), autoaugment.operation_table("svhn"),
            randaugment.operation_table(9), trivialaugment.operation_table()]
  kernels = {}
  for table in tables:
    for (name, _), k in zip(table.operations, table.kernel_of_operation):
      kernels.setdefault(name, set()).add(table.kernels[k])
  assert set(kernels) == set(operations.NAMES)
  assert all(len(found) == 1 for found in kernels.values()), kernels
  assert len(augment.element_table(augment.PAPER).kernels) == 8  # no Identity in the paper's


@pytest.mark.parametrize("table", [
    trivialaugment.operation_table(), autoaugment.operation_table("cifar10"),
    augment.element_table(augment.PAPER_IDENTITY)], ids=["trivialaugment", "autoaugment", "ohl"])
def test_per_image_and_batched_paths_give_the_same_bytes_for_any_table(cifar_images, table):
  count = len(table.operations)
  ids = np.arange(2 * count, dtype=np.int32) % count
  signs = np.where(np.arange(2 * count) // count == 0, -1, 1).astype(np.int32)
  images = cifar_images[np.arange(2 * count) % len(cifar_images)]
  batched = operations.apply_operations(images, table, ids, signs).numpy()
  dataset = tf.data.Dataset.from_tensor_slices((images, ids, signs)).map(
      lambda x, i, s: operations.apply_operations(x, table, i, s))
  per_image = np.stack(list(dataset.as_numpy_iterator()))
  np.testing.assert_array_equal(per_image, batched)


def test_a_size_known_at_run_time_only_gives_the_same_bytes(cifar_images):
  table = randaugment.operation_table(9)
  ids = np.arange(64, dtype=np.int32) % len(table.operations)
  signs = np.where(np.arange(64) % 3 == 0, -1, 1).astype(np.int32)
  images = cifar_images[:64, :31]  # 31x32: rows and columns must not be swapped
  dynamic = tf.function(lambda x: operations.apply_operations(x, table, ids, signs),
                        input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8)])
  np.testing.assert_array_equal(dynamic(images).numpy(),
                                operations.apply_operations(images, table, ids, signs).numpy())


@pytest.fixture(scope="module")
def images_224(cifar_images):
  """74 real CIFAR-10 images upscaled to 224x224, a size the batched path runs image by image."""
  return preprocess.resize_uint8(cifar_images[:74], [224, 224]).numpy()


@pytest.mark.slow  # the 224x224 graphs trace slowly
def test_large_batches_image_by_image_give_the_partition_paths_bytes(images_224):
  """At 224x224 a batch runs image by image (the per-image switch, compiled kernels), not the
  partition by kernel; every operation and sign gives the same bytes as the partition path."""
  table = augment.element_table(augment.PAPER_IDENTITY)
  count = len(table.operations)
  ids = np.arange(2 * count, dtype=np.int32) % count
  signs = np.where(np.arange(2 * count) // count == 0, -1, 1).astype(np.int32)
  images = tf.constant(images_224[:2 * count])
  assert pil_ops.one_image_at_a_time(images)
  image_by_image = tf.function(lambda x, i, s: operations.apply_operations(x, table, i, s),
                               autograph=False)(images, ids, signs)
  partitioned = tf.function(lambda x, i, s: operations._partition_path(x, table, i, s),
                            autograph=False)(images, ids, signs)
  np.testing.assert_array_equal(image_by_image.numpy(), partitioned.numpy())


def test_image_by_image_keeps_each_images_parameters_and_empty_batches():
  images = tf.constant(np.arange(3 * 4 * 5 * 3, dtype=np.uint8).reshape(3, 4, 5, 3))
  offsets = tf.constant([0, 7, 100], tf.uint8)
  pairs = tf.constant([[1, 2], [3, 4], [5, 6]], tf.uint8)
  shifted = pil_ops.image_by_image(lambda x, o, p: x + o + p[1], images, offsets, pairs)
  np.testing.assert_array_equal(shifted, images.numpy() + np.array([2, 11, 106], np.uint8)[
      :, None, None, None])
  empty = tf.function(lambda x: pil_ops.image_by_image(lambda y: y, x), autograph=False)(
      tf.zeros([0, 224, 224, 3], tf.uint8))
  assert empty.shape == (0, 224, 224, 3)


@pytest.mark.parametrize("kwargs,images,pattern", [
    ({}, np.zeros([2, 8, 8, 3], np.int32), r"images must be uint8. Received: images.dtype=int32"),
    ({"ranks": (4,)}, np.zeros([8, 8, 3], np.uint8),
     r"images must be a batch \[B,H,W,3\] with 3 channels. Received: images.shape=\(8, 8, 3\)"),
    ({}, np.zeros([2, 8, 8, 1], np.uint8),
     r"images must be one image \[H,W,3\] or a batch \[B,H,W,3\] with 3 channels"),
    ({"ranks": (3,), "channels": None}, np.zeros([2, 8, 8, 1], np.uint8),
     r"images must be one image \[H,W,C\]. Received: images.shape=\(2, 8, 8, 1\)"),
    ({}, np.zeros([8, 2, 3], np.uint8), r"images must be at least 3x3 pixels"),
])
def test_the_image_check_names_what_is_wrong(kwargs, images, pattern):
  with pytest.raises(ValueError, match=pattern):
    operations.check_images(images, **kwargs)


def test_the_image_check_lets_any_channels_and_size_through_where_asked():
  images = operations.check_images(np.zeros([1, 1, 4], np.uint8), ranks=(3,), channels=None,
                                   min_size=0)
  assert images.dtype == tf.uint8 and images.shape == (1, 1, 4)
