"""Tests of ohl_tf.learned_augment: loading a policy.json, sampling, applying, Keras plumbing."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from ohl_tf import augment
from ohl_tf import export
from ohl_tf import policy_file
from ohl_tf.learned_augment import LearnedAugment

_SIGN_PAIRS = [(s1, s2) for s1 in (-1, 1) for s2 in (-1, 1)]
# ShearX 0.1 then Rotate 10 degrees: both signs change the result, so the 4 sign pairs differ.
_GEOMETRIC_OP = 0 * augment.NUM_ELEMENTS + 12
# Invert then Invert (the identity) and Invert then AutoContrast: the signs change neither.
_INVERT_TWICE = 35 * augment.NUM_ELEMENTS + 35
_INVERT_AUTOCONTRAST = 35 * augment.NUM_ELEMENTS + 33


def _images(count, size=8, seed=0):
  return np.random.RandomState(seed).randint(0, 256, (count, size, size, 3)).astype(np.uint8)


def _one_hot_policy(op):
  probabilities = np.zeros(augment.NUM_OPERATIONS)
  probabilities[op] = 1
  return probabilities


def _candidates(images, op):
  """apply_operation(images, op) for each of the 4 sign pairs: [4, B, H, W, 3]."""
  count = len(images)
  return np.stack([augment.apply_operation(images, tf.fill([count], op),
                                           tf.tile([list(pair)], [count, 1])).numpy()
                   for pair in _SIGN_PAIRS])


def _assert_each_is_a_candidate(outputs, images, op):
  """Each output is `op` applied to its image with one of the 4 sign pairs; returns the pairs."""
  candidates = _candidates(images, op)
  matches = np.all(outputs[None] == candidates, axis=(2, 3, 4))  # [4, B]
  assert matches.any(axis=0).all(), f"images {np.flatnonzero(~matches.any(axis=0))} match none"
  return matches.argmax(axis=0)


def _skewed_theta():
  """θ with almost all mass on two ops, 3:1 (σ(θ) ≈ 1 and 1/3; σ(-30) ≈ 1e-13 elsewhere)."""
  theta = np.full(augment.NUM_OPERATIONS, -30.0)
  theta[_GEOMETRIC_OP] = 30.0
  theta[_INVERT_AUTOCONTRAST] = -np.log(2.0)  # σ = 1/3
  return theta


@pytest.fixture
def policy_path(tmp_path):
  path = tmp_path / "policy.json"
  export.write_json(path, policy_file.learned_payload(_skewed_theta()))
  return path


# ---------------------------------------------------------------------------
# policy.json
# ---------------------------------------------------------------------------

# A fresh process gives the same outputs from policy.json and the same seed:
# tests/main_test.py::test_the_runs_policy_loads_into_learned_augment_in_a_fresh_process, on the
# policy.json of a run (one Python and TensorFlow start for both files).


def test_from_policy_uses_the_probabilities(policy_path):
  layer = LearnedAugment.from_policy(policy_path)
  payload = json.loads(policy_path.read_text())
  np.testing.assert_array_equal(np.reshape(layer.get_config()["probabilities"], -1),
                                np.reshape(payload["probabilities"], -1))


@pytest.mark.parametrize("index, change", [
    (3, {"magnitude": 0.25}),
    (20, {"name": "Solarize"}),
])
def test_from_policy_names_the_file_and_first_mismatching_element(policy_path, index, change):
  payload = json.loads(policy_path.read_text())
  payload["elements"][index].update(change)
  payload["elements"][30]["magnitude"] = 9.0  # a later mismatch, not the first
  export.write_json(policy_path, payload)
  with pytest.raises(ValueError, match=rf"{policy_path.name}.*element {index} is"):
    LearnedAugment.from_policy(policy_path)


def test_from_policy_with_too_few_elements(policy_path):
  payload = json.loads(policy_path.read_text())
  payload["elements"] = payload["elements"][:-1]
  export.write_json(policy_path, payload)
  with pytest.raises(ValueError, match=r"element 35 is <missing>"):
    LearnedAugment.from_policy(policy_path)


def test_from_policy_without_probabilities(policy_path):
  payload = json.loads(policy_path.read_text())
  del payload["probabilities"]
  export.write_json(policy_path, payload)
  with pytest.raises(ValueError, match=r"no `probabilities`"):
    LearnedAugment.from_policy(policy_path)


# ---------------------------------------------------------------------------
# Arguments
# ---------------------------------------------------------------------------

def _bad(update):
  probabilities = np.full(augment.NUM_OPERATIONS, 1 / augment.NUM_OPERATIONS)
  update(probabilities)
  return probabilities


@pytest.mark.parametrize("probabilities, message", [
    (np.full(1295, 1 / 1295), r"shape \[1296\] or \[36, 36\].*Received: probabilities with "
                              r"shape \(1295,\)"),
    (np.full((6, 216), 1 / 1296), r"Received: probabilities with shape \(6, 216\)"),
    (_bad(lambda p: p.__setitem__(7, np.nan)), r"finite.*probabilities\[7\]=nan"),
    (_bad(lambda p: p.__setitem__(7, np.inf)), r"finite.*probabilities\[7\]=inf"),
    (_bad(lambda p: (p.__setitem__(3, -0.01), p.__setitem__(4, p[4] + 0.01))),
     r"non-negative.*probabilities\[3\]=-0.01"),
    (_bad(lambda p: p.__imul__(0.9)), r"sum to 1.*Received: probabilities with sum 0.9"),
], ids=["1295", "6x216", "nan", "inf", "negative", "sum"])
def test_bad_probabilities(probabilities, message):
  with pytest.raises(ValueError, match=message):
    LearnedAugment(probabilities)


def test_bad_seed():
  with pytest.raises(TypeError, match=r"Received: seed=1.5"):
    LearnedAugment(_one_hot_policy(0), seed=1.5)


def test_accepts_a_36x36_matrix_and_keeps_it_in_the_config():
  matrix = _one_hot_policy(_GEOMETRIC_OP).reshape(36, 36)
  layer = LearnedAugment(matrix, seed=1)
  assert np.shape(layer.get_config()["probabilities"]) == (36, 36)
  images = _images(8)
  _assert_each_is_a_candidate(layer(images).numpy(), images, _GEOMETRIC_OP)


@pytest.mark.parametrize("dtype", [tf.float32, tf.int32])
def test_non_uint8_images_raise(dtype):
  layer = LearnedAugment(_one_hot_policy(0))
  with pytest.raises(TypeError, match=r"before any rescaling.*Received: images.dtype="):
    layer(tf.zeros([2, 8, 8, 3], dtype))


# ---------------------------------------------------------------------------
# Sampling and applying
# ---------------------------------------------------------------------------

def test_one_op_policy_is_that_op_with_uniform_signs():
  images = _images(64)
  layer = LearnedAugment(_one_hot_policy(_GEOMETRIC_OP), seed=2)
  pairs = _assert_each_is_a_candidate(layer(images).numpy(), images, _GEOMETRIC_OP)
  counts = np.bincount(pairs, minlength=4)
  assert (counts > 0).all(), counts  # each sign pair drawn: P(some pair missing) < 4 (3/4)^64


def test_one_image_uses_the_per_image_path():
  images = _images(6)
  layer = LearnedAugment(_one_hot_policy(_GEOMETRIC_OP), seed=3)
  outputs = np.stack([layer(image).numpy() for image in images])
  _assert_each_is_a_candidate(outputs, images, _GEOMETRIC_OP)


def test_two_op_policy_gives_the_right_mix():
  count, share = 2000, 0.25
  images = _images(count, size=4)
  probabilities = np.zeros(augment.NUM_OPERATIONS)
  probabilities[_INVERT_TWICE] = 1 - share
  probabilities[_INVERT_AUTOCONTRAST] = share
  outputs = LearnedAugment(probabilities, seed=4)(images).numpy()
  identity = np.all(outputs == images, axis=(1, 2, 3))
  other = np.all(outputs == _candidates(images, _INVERT_AUTOCONTRAST)[0], axis=(1, 2, 3))
  assert not np.any(identity & other)  # the two ops are told apart on these images
  assert np.all(identity | other)
  # Binomial standard deviation sqrt(0.25 * 0.75 / 2000) ≈ 0.0097: 4 of them.
  assert abs(other.mean() - share) < 0.04, other.mean()


def test_sample_operations_follows_the_probabilities():
  probabilities = np.zeros(augment.NUM_OPERATIONS)
  probabilities[[10, 500, 1295]] = [0.5, 0.3, 0.2]
  ops, signs = LearnedAugment(probabilities, seed=6).sample_operations(20000)
  frequencies = np.bincount(ops.numpy(), minlength=augment.NUM_OPERATIONS) / 20000
  np.testing.assert_allclose(frequencies[[10, 500, 1295]], [0.5, 0.3, 0.2], atol=0.015)
  assert frequencies.sum() == pytest.approx(1)  # nothing anywhere else
  assert set(np.unique(signs.numpy())) == {-1, 1}
  assert abs(np.mean(signs.numpy() == 1) - 0.5) < 0.015


def test_training_false_is_the_identity():
  images = _images(8)
  layer = LearnedAugment(_one_hot_policy(_GEOMETRIC_OP), seed=0)
  np.testing.assert_array_equal(layer(images, training=False), images)
  np.testing.assert_array_equal(layer(images[0], training=False), images[0])


def test_same_seed_same_outputs_for_a_fresh_layer():
  images = _images(16)
  probabilities = policy_file.learned_payload(_skewed_theta())["probabilities"]
  first, second = LearnedAugment(probabilities, seed=9), LearnedAugment(probabilities, seed=9)
  for _ in range(2):  # and call after call
    np.testing.assert_array_equal(first(images), second(images))
  uniform = np.full(augment.NUM_OPERATIONS, 1 / augment.NUM_OPERATIONS)
  a, b = LearnedAugment(uniform, seed=1)(images), LearnedAugment(uniform, seed=2)(images)
  assert np.any(a.numpy() != b.numpy())
  layer = LearnedAugment(uniform, seed=1)
  assert np.any(layer(images).numpy() != layer(images).numpy())  # a new draw per call


def test_in_tf_data_map_on_single_images():
  images = _images(12)
  layer = LearnedAugment(_one_hot_policy(_GEOMETRIC_OP), seed=3)
  dataset = tf.data.Dataset.from_tensor_slices(images).map(layer).batch(12)
  first = next(iter(dataset)).numpy()
  pairs = _assert_each_is_a_candidate(first, images, _GEOMETRIC_OP)
  assert len(set(pairs)) > 1  # the seed advances from image to image
  second = next(iter(dataset)).numpy()
  _assert_each_is_a_candidate(second, images, _GEOMETRIC_OP)
  assert np.any(first != second)  # a new draw per epoch


# ---------------------------------------------------------------------------
# Keras: config, model, .keras file
# ---------------------------------------------------------------------------

def test_config_is_the_constructor_arguments():
  probabilities = _one_hot_policy(_GEOMETRIC_OP)
  layer = LearnedAugment(probabilities, seed=11, name="augment")
  config = layer.get_config()
  assert config["probabilities"] == probabilities.tolist()
  assert config["seed"] == 11
  assert config["name"] == "augment"
  assert set(config) - {"name", "trainable", "dtype"} == {"probabilities", "seed"}
  clone = LearnedAugment.from_config(config)
  images = _images(8)
  np.testing.assert_array_equal(clone(images), layer(images))
  assert layer.compute_output_shape((None, 32, 32, 3)) == (None, 32, 32, 3)


def _model(layer):
  inputs = keras.Input([8, 8, 3], dtype="uint8")
  x = layer(inputs)
  x = keras.layers.Rescaling(1 / 255)(x)
  x = keras.layers.Conv2D(4, 3)(x)
  x = keras.layers.GlobalAveragePooling2D()(x)
  outputs = keras.layers.Dense(2)(x)
  return keras.Model(inputs, outputs)


def test_first_layer_of_a_model_trains_and_predicts():
  layer = LearnedAugment(_one_hot_policy(_GEOMETRIC_OP), seed=0)
  model = _model(layer)
  assert model.layers[1].output.shape == (None, 8, 8, 3)
  images, labels = _images(8), np.arange(8) % 2
  # predict: training=False, the augmentation is off.
  reference = keras.Model(model.input, model.layers[1].output)
  np.testing.assert_array_equal(reference.predict(images, verbose=0), images)
  _assert_each_is_a_candidate(np.asarray(reference(images, training=True)), images,
                              _GEOMETRIC_OP)
  model.compile(optimizer="sgd",
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
  history = model.fit(images, labels, batch_size=4, epochs=1, verbose=0)
  assert np.isfinite(history.history["loss"][0])


def test_keras_file_round_trip(tmp_path):
  layer = LearnedAugment(_one_hot_policy(_GEOMETRIC_OP), seed=21, name="augment")
  model = _model(layer)
  path = tmp_path / "model.keras"
  model.save(path)
  loaded = keras.models.load_model(path)
  loaded_layer = loaded.get_layer("augment")
  assert isinstance(loaded_layer, LearnedAugment)
  assert loaded_layer.get_config() == layer.get_config()
  images = _images(16)
  np.testing.assert_array_equal(loaded.predict(images, verbose=0),
                                model.predict(images, verbose=0))
  outputs = loaded_layer(images).numpy()
  assert np.any(outputs != images)
  _assert_each_is_a_candidate(outputs, images, _GEOMETRIC_OP)


# ---------------------------------------------------------------------------
# The paper_identity search space (37 elements, 1369 operations)
# ---------------------------------------------------------------------------

def test_a_policy_of_the_identity_space_applies_its_operations(tmp_path):
  space = augment.PAPER_IDENTITY
  probabilities = np.zeros([37, 37])
  probabilities[36, 36] = 0.5  # (Identity, Identity): no operation
  probabilities[36, 12] = 0.5  # Rotate 10 alone
  layer = LearnedAugment(probabilities, seed=4)
  assert layer.space is space
  images = _images(200)
  outputs = layer(images).numpy()
  unchanged = np.all(outputs == images, axis=(1, 2, 3))
  rotated = np.stack([augment.apply_element(images, np.full(200, 12), np.full(200, sign))
                      for sign in (-1, 1)])
  assert np.all(unchanged | np.any(np.all(outputs[None] == rotated, axis=(2, 3, 4)), axis=0))
  assert 60 < unchanged.sum() < 140  # half and half: 100 ± 5 standard deviations of 7
  ops, _ = layer.sample_operations(1000)
  assert set(np.unique(ops.numpy())) == {37 * 36 + 36, 37 * 36 + 12}
  path = tmp_path / "policy.json"
  theta = np.full(space.num_operations, -30.0, np.float32)
  theta[37 * 36 + 36] = 30.0
  export.write_json(path, policy_file.learned_payload(theta))
  from_file = LearnedAugment.from_policy(path, seed=0)
  assert from_file.space is space
  np.testing.assert_array_equal(from_file(images).numpy(), images)
  restored = LearnedAugment.from_config(from_file.get_config())
  assert restored.space is space
