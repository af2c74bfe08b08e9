"""Helpers shared by the model tests."""

import keras
import numpy as np

CIFAR_SHAPE = (32, 32, 3)


def images(batch, shape=CIFAR_SHAPE, seed=0):
  """Standard-normal float32 images: what the data pipeline's normalisation produces."""
  return np.random.default_rng(seed).standard_normal((batch, *shape)).astype(np.float32)


def trainable_count(model):
  # Keras' count_params() also counts BN moving statistics; the papers count parameters only.
  return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def assert_parameter_count(model, published, exact):
  """The exact trainable count we derive, and within 1% of the paper's figure."""
  count = trainable_count(model)
  assert count == exact
  assert abs(count - published) <= 0.01 * published


def assert_keras_round_trip(model, path, tolerance=1e-6):
  """Saves `model` as a .keras file and loads it back (safe_mode: no Lambda layers allowed);
  the loaded model gives the same logits."""
  model.save(path)
  loaded = keras.saving.load_model(path)
  x = images(2)
  np.testing.assert_allclose(np.asarray(loaded(x, training=False)),
                             np.asarray(model(x, training=False)), rtol=tolerance,
                             atol=tolerance)


def assert_float32_logits_under_mixed_precision(build, layer_name):
  """Under mixed_float16, `layer_name` computes in float16 and the logits stay float32."""
  previous = keras.mixed_precision.dtype_policy()
  keras.mixed_precision.set_dtype_policy("mixed_float16")
  try:
    model = build()
  finally:
    keras.mixed_precision.set_dtype_policy(previous)
  assert model.get_layer(layer_name).compute_dtype == "float16"
  assert model(images(2), training=False).dtype == "float32"
