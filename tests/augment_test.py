"""Tests of ohl_tf.augment's contract: both paths bit for bit, graph contexts, Pillow's sampling
geometry, and bad input. The element table and fidelity to Pillow: augment_pillow_test.py.
"""

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from ohl_tf import augment
from ohl_tf import operations
from ohl_tf import pil_ops

_PAIRS = [(e, s) for e in range(augment.NUM_ELEMENTS) for s in (-1, 1)]
_GEOMETRIC_PAIRS = [(e, s) for e, s in _PAIRS if e < 15]


def _pair_id(pair):
  element = augment.ELEMENTS[pair[0]]
  return f"{pair[0]}_{element.name}_{element.magnitude}_{pair[1]:+d}"


def _per_image_in_tf_data(images, elements, signs):
  """The per-image path where the trainer runs it: one image per tf.data map call."""
  dataset = tf.data.Dataset.from_tensor_slices((images, elements, signs))
  dataset = dataset.map(augment.apply_element).batch(len(images))
  return next(iter(dataset)).numpy()


# ---------------------------------------------------------------------------
# Pillow's sampling geometry, checked on index images (every pixel holds its own index).
# ---------------------------------------------------------------------------

def _pillow_source_indices(element, sign, width, height):
  index_image = Image.frombytes("I", (width, height),
                                np.arange(width * height, dtype=np.int32).tobytes())
  name, m = augment.ELEMENTS[element].name, augment.ELEMENTS[element].magnitude
  if name == "Rotate":
    out = index_image.rotate(sign * m, resample=Image.NEAREST, fillcolor=-1)
  else:
    matrix = {"ShearX": (1, sign * m, 0, 0, 1, 0), "ShearY": (1, 0, 0, sign * m, 1, 0),
              "TranslateX": (1, 0, sign * m * width, 0, 1, 0),
              "TranslateY": (1, 0, 0, 0, 1, sign * m * height)}[name]
    out = index_image.transform((width, height), Image.AFFINE, matrix, Image.NEAREST,
                                fillcolor=-1)
  source = np.frombuffer(out.tobytes(), np.int32)
  return np.where(source < 0, width * height, source)


@pytest.mark.parametrize("width,height", [(32, 32), (224, 224), (45, 31), (3, 5)])
def test_geometric_source_table_is_pillows_sampling(width, height):
  table = augment.element_table(augment.PAPER)
  sources = table.source_table(height, width)
  for element, sign in _GEOMETRIC_PAIRS:
    expected = _pillow_source_indices(element, sign, width, height)
    row = 2 * table.geometric_row[element] + (sign > 0)
    np.testing.assert_array_equal(sources[row], expected,
                                  err_msg=f"{_pair_id((element, sign))} at {width}x{height}")


def test_affine_source_indices_takes_pillows_float_path_for_large_coordinates():
  # Coordinates beyond +-32768 make Pillow leave its fixed-point path for float64.
  matrix = (1, 0.5, -40000.0, 0.25, 1, 0)
  index_image = Image.frombytes("I", (64, 8), np.arange(512, dtype=np.int32).tobytes())
  expected = np.frombuffer(index_image.transform((64, 8), Image.AFFINE, matrix, Image.NEAREST,
                                                 fillcolor=-1).tobytes(), np.int32)
  np.testing.assert_array_equal(pil_ops.affine_source_indices(matrix, 64, 8),
                                np.where(expected < 0, 512, expected))


# ---------------------------------------------------------------------------
# Two paths, one result: per image (tf.switch_case in tf.data) and batched (partition/stitch).
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def per_image_results(cifar_images):
  """32 images through every (element, sign), one image per map call, in one tf.data pass."""
  images = np.tile(cifar_images[:32], [len(_PAIRS), 1, 1, 1])
  elements, signs = (np.repeat(np.array(column, np.int32), 32) for column in zip(*_PAIRS))
  return _per_image_in_tf_data(images, elements, signs).reshape(len(_PAIRS), 32, 32, 32, 3)


@pytest.mark.parametrize("pair", _PAIRS, ids=_pair_id)
def test_per_image_and_batched_paths_are_bit_identical(cifar_images, per_image_results, pair):
  images = cifar_images[:32]
  batched = augment.apply_element(images, np.full(32, pair[0], np.int32),
                                  np.full(32, pair[1], np.int32)).numpy()
  np.testing.assert_array_equal(per_image_results[_PAIRS.index(pair)], batched)
  assert (batched != images).any(), "the element changed nothing"


def test_mixed_batch_matches_per_image_operations(cifar_images):
  # One batch holding many different ops exercises dynamic_partition/dynamic_stitch.
  images = cifar_images
  ops = tf.random.stateless_uniform([len(images)], [7, 1], maxval=augment.NUM_OPERATIONS,
                                    dtype=tf.int32)
  signs = operations.sample_signs([len(images), 2], seed=[7, 2])
  batched = augment.apply_operation(images, ops, signs).numpy()
  dataset = tf.data.Dataset.from_tensor_slices((images, ops, signs))
  per_image = np.stack([x.numpy() for x, *_ in dataset.map(
      lambda x, op, s: (augment.apply_operation(x, op, s), op, s))])
  np.testing.assert_array_equal(per_image, batched)


def test_operation_is_first_element_then_second(cifar_images):
  images = cifar_images[:16]
  ops = np.arange(16, dtype=np.int32) * 81 % augment.NUM_OPERATIONS
  signs = np.where(np.arange(32).reshape(16, 2) % 3 == 0, 1, -1).astype(np.int32)
  first = augment.apply_element(images, ops // 36, signs[:, 0])
  expected = augment.apply_element(first, ops % 36, signs[:, 1])
  np.testing.assert_array_equal(augment.apply_operation(images, ops, signs), expected)


_IDENTITY_SPACE = augment.PAPER_IDENTITY
_IDENTITY = 36  # Identity's element index in paper_identity


def test_identity_is_the_image_on_both_paths(cifar_images):
  images = cifar_images[:32]
  for sign in (-1, 1):
    batched = augment.apply_element(images, np.full(32, _IDENTITY, np.int32),
                                    np.full(32, sign, np.int32), space=_IDENTITY_SPACE)
    np.testing.assert_array_equal(batched, images)
    per_image = augment.apply_element(images[3], _IDENTITY, sign, space=_IDENTITY_SPACE)
    np.testing.assert_array_equal(per_image, images[3])


def test_every_identity_space_operation_is_its_first_element_then_its_second(cifar_images):
  # All 1369 ops of paper_identity, random signs: apply_operation (checked and drawn, batched
  # and per image in tf.data) gives the bytes of e1 = k // 37, then e2 = k % 37; and an op
  # without Identity gives the bytes of the same pair in the paper's space (k' = 36 e1 + e2).
  space = _IDENTITY_SPACE
  ops = np.arange(space.num_operations, dtype=np.int32)
  images = cifar_images[ops % len(cifar_images)]
  signs = operations.sample_signs([len(ops), 2], seed=[9, 1]).numpy()
  e1, e2 = ops // 37, ops % 37
  first = augment.apply_element(images, e1, signs[:, 0], space=space)
  expected = augment.apply_element(first, e2, signs[:, 1], space=space).numpy()
  checked = augment.apply_operation(images, ops, signs, space=space).numpy()
  np.testing.assert_array_equal(checked, expected)
  np.testing.assert_array_equal(augment.apply_drawn_operation(images, ops, signs, space), expected)
  dataset = tf.data.Dataset.from_tensor_slices((images, ops, signs)).map(
      lambda image, op, sign: augment.apply_drawn_operation(image, op, sign, space))
  np.testing.assert_array_equal(next(iter(dataset.batch(len(ops)))), expected)
  paper = (e1 < _IDENTITY) & (e2 < _IDENTITY)
  np.testing.assert_array_equal(
      augment.apply_operation(images[paper], 36 * e1[paper] + e2[paper], signs[paper]),
      expected[paper])
  no_operation = ops == 37 * _IDENTITY + _IDENTITY
  np.testing.assert_array_equal(expected[no_operation], images[no_operation])
  one_element = (e1 == _IDENTITY) != (e2 == _IDENTITY)  # (Identity, e) or (e, Identity)
  lone = np.where(e1 == _IDENTITY, e2, e1)[one_element]
  lone_signs = np.where(e1 == _IDENTITY, signs[:, 1], signs[:, 0])[one_element]
  np.testing.assert_array_equal(
      augment.apply_element(images[one_element], lone, lone_signs), expected[one_element])


def test_drawn_operation_gives_the_checked_bytes_on_every_operation(cifar_images):
  # The pipeline's unchecked entry point, on all 1296 ops with random signs, on both paths.
  ops = np.arange(augment.NUM_OPERATIONS, dtype=np.int32)
  images = cifar_images[ops % len(cifar_images)]
  signs = operations.sample_signs([len(ops), 2], seed=[8, 1]).numpy()
  checked = augment.apply_operation(images, ops, signs).numpy()
  np.testing.assert_array_equal(augment.apply_drawn_operation(images, ops, signs), checked)
  dataset = tf.data.Dataset.from_tensor_slices((images, ops, signs))
  per_image = dataset.map(augment.apply_drawn_operation).batch(len(ops))
  np.testing.assert_array_equal(next(iter(per_image)), checked)


# ---------------------------------------------------------------------------
# Contexts: eager, tf.function, tf.data, 224x224, unknown sizes, empty batches.
# ---------------------------------------------------------------------------

def test_tf_function_with_unknown_sizes_matches_eager(cifar_images):
  images = cifar_images[:24]
  ops = np.arange(0, 1296, 54, dtype=np.int32)
  signs = np.ones([24, 2], np.int32)
  eager = augment.apply_operation(images, ops, signs).numpy()
  batch_fn = tf.function(augment.apply_operation, input_signature=[
      tf.TensorSpec([None, None, None, 3], tf.uint8), tf.TensorSpec([None], tf.int32),
      tf.TensorSpec([None, 2], tf.int32)])
  np.testing.assert_array_equal(batch_fn(images, ops, signs), eager)
  image_fn = tf.function(augment.apply_operation, input_signature=[
      tf.TensorSpec([None, None, 3], tf.uint8), tf.TensorSpec([], tf.int32),
      tf.TensorSpec([2], tf.int32)])
  np.testing.assert_array_equal(image_fn(images[5], ops[5], signs[5]), eager[5])


def test_works_at_224(mosaic_224):
  images = np.stack([mosaic_224, mosaic_224[::-1]])
  out = augment.apply_operation(images, [36 * 12 + 34, 36 * 35 + 2], [[1, -1], [-1, 1]])
  assert out.shape == (2, 224, 224, 3) and out.dtype == tf.uint8
  single = augment.apply_operation(mosaic_224, 36 * 12 + 34, [1, -1])
  np.testing.assert_array_equal(single, out[0])


def test_empty_batch():
  out = augment.apply_operation(np.zeros([0, 32, 32, 3], np.uint8), np.zeros([0], np.int32))
  assert out.shape == (0, 32, 32, 3)


def test_drawn_signs_are_stateless_with_a_seed(cifar_images):
  images = cifar_images[:64]
  ops = np.full(64, 36 * 12 + 0, np.int32)  # Rotate 10 then ShearX 0.1: both have directions
  first = augment.apply_operation(images, ops, seed=[1, 2])
  np.testing.assert_array_equal(first, augment.apply_operation(images, ops, seed=[1, 2]))
  assert not np.array_equal(first, augment.apply_operation(images, ops, seed=[1, 3]))
  signs = operations.sample_signs([10000], seed=[5, 6]).numpy()
  assert set(np.unique(signs)) == {-1, 1} and abs(signs.mean()) < 0.05


# ---------------------------------------------------------------------------
# Bad input: a clear error naming the argument and the valid range, never a silent wrap.
# ---------------------------------------------------------------------------

_IMAGES = np.zeros([2, 8, 8, 3], np.uint8)


@pytest.mark.parametrize("images,error,pattern", [
    (np.zeros([2, 8, 8, 3], np.float32), ValueError, r"images must be uint8.*float32"),
    (np.zeros([8, 8], np.uint8), ValueError,
     r"images must be one image \[H,W,3\] or a batch \[B,H,W,3\].*\(8, 8\)"),
    (np.zeros([1, 2, 8, 8, 3], np.uint8), ValueError, r"images must be one image \[H,W,3\]"),
    (np.zeros([2, 8, 8, 4], np.uint8), ValueError, r"3 channels.*\(2, 8, 8, 4\)"),
    (np.zeros([2, 2, 8, 3], np.uint8), ValueError, r"at least 3x3"),
])
def test_bad_images(images, error, pattern):
  with pytest.raises(error, match=pattern):
    augment.apply_element(images, [0, 0], [1, 1])


@pytest.mark.parametrize("element,sign,pattern", [
    ([0, 36], [1, 1], r"element must be in \[0, 36\)"),
    ([-1, 0], [1, 1], r"element must be in \[0, 36\)"),
    ([0, 1], [1, 0], r"sign must be -1 or \+1"),
    ([0, 1], [2, 1], r"sign must be -1 or \+1"),
])
def test_out_of_range_indices_raise(element, sign, pattern):
  with pytest.raises(tf.errors.InvalidArgumentError, match=pattern):
    augment.apply_element(_IMAGES, element, sign)


def test_out_of_range_op_raises():
  with pytest.raises(tf.errors.InvalidArgumentError, match=r"op must be in \[0, 1296\)"):
    augment.apply_operation(_IMAGES, [0, 1296])
  with pytest.raises(tf.errors.InvalidArgumentError, match=r"op must be in \[0, 1369\)"):
    augment.apply_operation(_IMAGES, [0, 1369], space=_IDENTITY_SPACE)
  with pytest.raises(tf.errors.InvalidArgumentError, match=r"element must be in \[0, 37\)"):
    augment.apply_element(_IMAGES, [0, 37], [1, 1], space=_IDENTITY_SPACE)
  with pytest.raises(tf.errors.InvalidArgumentError, match=r"signs must be -1 or \+1"):
    augment.apply_operation(_IMAGES, [0, 1], [[1, 1], [0, 1]])


def test_wrong_argument_shapes_and_dtypes_raise():
  with pytest.raises(ValueError, match=r"element must have shape \[2\].*element.shape=\(3,\)"):
    augment.apply_element(_IMAGES, [0, 1, 2], [1, 1, 1])
  with pytest.raises(ValueError, match=r"signs must have shape \[2, 2\]"):
    augment.apply_operation(_IMAGES, [0, 1], [1, 1])
  with pytest.raises(ValueError, match=r"sign must have shape \[\]"):
    augment.apply_element(_IMAGES[0], 3, [1])
  with pytest.raises(TypeError, match=r"element must be an integer tensor.*float32"):
    augment.apply_element(_IMAGES, [0.0, 1.0], [1, 1])


def test_mismatched_batch_sizes_raise_at_run_time_in_a_graph():
  fn = tf.function(augment.apply_element, input_signature=[
      tf.TensorSpec([None, 8, 8, 3], tf.uint8), tf.TensorSpec([None], tf.int32),
      tf.TensorSpec([None], tf.int32)])
  with pytest.raises(tf.errors.InvalidArgumentError, match="mismatched batch sizes"):
    fn(_IMAGES, [0, 1, 2], [1, 1, 1])


def test_search_spaces_by_name_and_size():
  assert augment.search_space("paper") is augment.PAPER
  assert augment.search_space("paper_identity") is _IDENTITY_SPACE
  assert augment.space_of_operations(1369) is _IDENTITY_SPACE
  assert augment.space_of_elements(36) is augment.PAPER
  with pytest.raises(ValueError, match=r"--search_space must be one of paper, paper_identity, "
                                       r"autoaugment_cifar10. "
                                       r"Received: --search_space=identity"):
    augment.search_space("identity")
  with pytest.raises(ValueError, match=r"no search space has 1300 operations.*1296 \(paper\)"):
    augment.space_of_operations(1300)


def test_bad_index_inside_tf_data_raises_when_iterated():
  dataset = tf.data.Dataset.from_tensor_slices((_IMAGES, [3, 40], [1, 1]))
  with pytest.raises(tf.errors.InvalidArgumentError, match=r"element must be in \[0, 36\)"):
    list(dataset.map(augment.apply_element))
