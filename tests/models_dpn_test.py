"""Tests for models/dpn.py: the CIFAR DPN-92 and its dual-path merge.

DPN-92 is built once per module (module-scoped fixture, 10 classes, 32x32x3); structural tests
use a two-stage DPN small enough to build in a second. The forward pass and one training step of
every registered model, DPN-92 included, are tests/models_test.py's.
"""

import numpy as np
import pytest

import keras
import model_testing
from models import dpn
from models import registry

NUM_CLASSES = 10
CIFAR_SHAPE = model_testing.CIFAR_SHAPE

# The OHL paper's DPN-92 on CIFAR-10 has 34.23M parameters; kuangliu/pytorch-cifar's DPN92 has
# exactly 34,236,634 (derived block by block in the docstring of models/dpn.py).
PUBLISHED_PARAMS = 34_230_000
EXACT_PARAMS = 34_236_634


def _tiny_dpn(input_shape=CIFAR_SHAPE):
  return dpn.dual_path_network(in_planes=(32, 64), out_planes=(16, 24), num_blocks=(2, 2),
                               dense_depth=(4, 8), num_classes=NUM_CLASSES,
                               input_shape=input_shape, name="tiny_dpn")


@pytest.fixture(scope="module")
def dpn92():
  keras.utils.set_random_seed(0)
  return registry.build("dpn92", NUM_CLASSES, CIFAR_SHAPE)


# --------------------------------------------------------------------------------------------
# DPN-92.
# --------------------------------------------------------------------------------------------


def test_registered():
  assert "dpn92" in registry.names()


def test_parameter_count_matches_paper(dpn92):
  model_testing.assert_parameter_count(dpn92, PUBLISHED_PARAMS, EXACT_PARAMS)


def test_stage_shapes(dpn92):
  # Stage s ends with out_planes + (num_blocks + 1) * dense_depth channels; strides 1, 2, 2, 2.
  expected = {"stage1_block3_out": (32, 32, 256 + 4 * 16),
              "stage2_block4_out": (16, 16, 512 + 5 * 32),
              "stage3_block20_out": (8, 8, 1024 + 21 * 24),
              "stage4_block3_out": (4, 4, 2048 + 4 * 128)}
  for name, shape in expected.items():
    assert tuple(dpn92.get_layer(name).output.shape[1:]) == shape, name
  groups = {layer.groups for layer in dpn92.layers if layer.name.endswith("_conv2")}
  assert groups == {32}


# --------------------------------------------------------------------------------------------
# Layers and details, on a tiny DPN.
# --------------------------------------------------------------------------------------------


def test_dual_path_merge_exact_values():
  shortcut = np.arange(2 * 3 * 3 * 5, dtype=np.float32).reshape(2, 3, 3, 5)
  new = -np.arange(2 * 3 * 3 * 4, dtype=np.float32).reshape(2, 3, 3, 4) / 7
  merged = np.asarray(dpn.DualPathMerge(residual_channels=2)([shortcut, new]))
  expected = np.concatenate(
      [shortcut[..., :2] + new[..., :2], shortcut[..., 2:], new[..., 2:]], axis=-1)
  assert merged.shape == (2, 3, 3, 7)
  np.testing.assert_array_equal(merged, expected)


@pytest.mark.parametrize("residual_channels", [0, -1, 2.0, True, None])
def test_dual_path_merge_bad_argument(residual_channels):
  with pytest.raises(ValueError, match=r"residual_channels must be a positive integer\. "):
    dpn.DualPathMerge(residual_channels)


def test_tiny_dpn_accepts_other_input_sizes():
  # Non-square and odd: the stride-2 grouped conv and the 1x1 shortcut must agree in shape.
  shape = (49, 64, 3)
  model = _tiny_dpn(shape)
  assert tuple(model(model_testing.images(1, shape), training=False).shape) == (1, NUM_CLASSES)
  assert model_testing.trainable_count(model) == model_testing.trainable_count(_tiny_dpn())


def test_stride2_grouped_conv_samples_the_shortcut_grid():
  # A kernel copying its centre pixel must give x[::2, ::2], the pixels the 1x1 shortcut keeps.
  inputs = keras.Input((6, 6, 32))
  model = keras.Model(inputs, dpn._grouped_conv3x3(inputs, 32, 2, name="conv"))
  kernel = np.zeros((3, 3, 1, 32), np.float32)
  kernel[1, 1, 0, :] = 1.0  # groups of one channel each: output channel c copies input c.
  model.get_layer("conv").set_weights([kernel])
  x = model_testing.images(1, (6, 6, 32))
  np.testing.assert_array_equal(np.asarray(model(x)), x[:, ::2, ::2, :])


def test_save_and_load_round_trip(tmp_path):
  model_testing.assert_keras_round_trip(_tiny_dpn(), tmp_path / "tiny_dpn.keras", 1e-6)


def test_logits_float32_under_mixed_precision():
  model_testing.assert_float32_logits_under_mixed_precision(_tiny_dpn, "stage1_block1_merge")


def test_in_planes_must_be_multiples_of_the_groups():
  with pytest.raises(ValueError, match=r"in_planes must be non-empty multiples of 32"):
    dpn.dual_path_network((32, 48), (16, 24), (1, 1), (4, 8), NUM_CLASSES, CIFAR_SHAPE)
  with pytest.raises(ValueError, match=r"num_blocks must be 2 positive integers"):
    dpn.dual_path_network((32, 64), (16, 24), (1,), (4, 8), NUM_CLASSES, CIFAR_SHAPE)
