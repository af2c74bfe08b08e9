"""Helpers shared by the model tests."""

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
