"""Tests for models/resnet_imagenet.py: ResNet-50 and SE-ResNeXt-101.

Each model is built once, at ImageNet size (1000 classes, 224x224x3), for the parameter counts
and shapes. The forward pass and one training step of every registered model, these included,
are tests/models_test.py's.
"""

import numpy as np
import pytest

import keras
import model_testing
from models import registry
from models import resnet_imagenet

IMAGENET_CLASSES = 1000
IMAGENET_SHAPE = (224, 224, 3)
NUM_CLASSES = 10
SMALL_SHAPE = (64, 64, 3)  # block-level tests

# name -> (the OHL paper's parameter count, exact count of this implementation and of the
# reference: torchvision `resnet50()`; Cadene pretrainedmodels `se_resnext101_32x4d`).
# resnet50 by hand (BN = gamma + beta; bottleneck of planes p, input c, output 4p):
#   1x1 c*p + 3x3 9p^2 + 1x1 4p^2 + 3 BN (2p + 2p + 8p); projection 4pc + 8p.
#   stem 7*7*3*64 + 128 = 9,536; stages 215,808 + 1,219,584 + 7,098,368 + 14,964,736;
#   logits 2048*1000 + 1000 = 2,049,000; total 25,557,032.
# se_resnext101: the 3x3 conv is grouped (9 * w^2 / 32 for inner width w = 2p) and every block
#   adds SE with biases (2 * 4p * 4p / 16 + 4p / 16 + 4p); total 48,955,416.
EXPECTED_PARAMS = {
    "resnet50": (25_580_000, 25_557_032),
    "se_resnext101": (48_960_000, 48_955_416),
}
NAMES = tuple(EXPECTED_PARAMS)


@pytest.fixture(scope="module", params=NAMES)
def imagenet_model(request):
  """(name, model) at 1000 classes and 224x224x3, built once per module."""
  keras.utils.set_random_seed(0)
  return request.param, registry.build(request.param, IMAGENET_CLASSES, IMAGENET_SHAPE)


# --------------------------------------------------------------------------------------------
# Both models.
# --------------------------------------------------------------------------------------------


def test_registered_after_import():
  assert set(NAMES) <= set(registry.names())
  assert registry._BUILDERS["resnet50"] is resnet_imagenet.resnet50
  assert registry._BUILDERS["se_resnext101"] is resnet_imagenet.se_resnext101


def test_parameter_count_matches_reference_and_paper(imagenet_model):
  name, model = imagenet_model
  published, exact = EXPECTED_PARAMS[name]
  model_testing.assert_parameter_count(model, published, exact)


def test_imagenet_feature_map_is_7x7(imagenet_model):
  _, model = imagenet_model
  assert tuple(model.get_layer("stem_pool").output.shape) == (None, 56, 56, 64)
  assert tuple(model.get_layer("avg_pool").input.shape) == (None, 7, 7, 2048)
  assert tuple(model.output.shape) == (None, IMAGENET_CLASSES)


# --------------------------------------------------------------------------------------------
# Blocks and details.
# --------------------------------------------------------------------------------------------


def test_se_resnext_block_is_grouped_with_se():
  inputs = keras.Input((8, 8, 64))
  outputs = resnet_imagenet.bottleneck_block(inputs, 64, 1, cardinality=32, base_width=4,
                                             se_reduction=16, name="b")
  model = keras.Model(inputs, outputs)
  # Inner width 32 groups x 4 = 128; each group sees 128 / 32 = 4 input channels.
  assert tuple(model.get_layer("b_conv2").kernel.shape) == (3, 3, 4, 128)
  assert model.get_layer("b_conv2").groups == 32
  assert tuple(model.get_layer("b_se_fc1").kernel.shape) == (256, 16)
  assert tuple(model.get_layer("b_se_fc2").kernel.shape) == (16, 256)
  assert tuple(model.output.shape) == (None, 8, 8, 256)


def test_resnet_block_has_no_groups_and_no_se():
  inputs = keras.Input((8, 8, 256))
  model = keras.Model(inputs, resnet_imagenet.bottleneck_block(
      inputs, 128, 2, cardinality=1, base_width=64, se_reduction=None, name="b"))
  names = [layer.name for layer in model.layers]
  assert not [n for n in names if "_se_" in n]
  assert tuple(model.get_layer("b_conv2").kernel.shape) == (3, 3, 128, 128)
  assert "b_shortcut_conv" in names


@pytest.mark.parametrize("size", [7, 8])
@pytest.mark.parametrize("cardinality, base_width", [(1, 64), (32, 4)], ids=["resnet", "resnext"])
def test_stride2_conv2_samples_the_shortcut_grid(cardinality, base_width, size):
  # Both paths must give ceil(size / 2) = 4. A 3x3 kernel that copies its centre pixel must give
  # x[::2, ::2] (PyTorch's padding); on even sizes TF's plain "same" would give x[1::2, 1::2].
  inputs = keras.Input((size, size, 64))
  outputs = resnet_imagenet.bottleneck_block(inputs, 64, 2, cardinality, base_width, None,
                                             name="b")
  model = keras.Model(inputs, outputs)
  assert tuple(model.output.shape) == (None, 4, 4, 256)
  probe = keras.Model(inputs, model.get_layer("b_conv2").output)
  conv2 = model.get_layer("b_conv2")
  width = conv2.filters
  kernel = np.zeros(conv2.kernel.shape, np.float32)
  kernel[1, 1] = np.tile(np.eye(width // cardinality, dtype=np.float32), (1, cardinality))
  conv2.set_weights([kernel])
  # conv1 copies the 64 input channels into the first ones of `width`; the freshly built bn1
  # in inference mode divides by sqrt(1 + eps).
  conv1 = model.get_layer("b_conv1")
  conv1.set_weights([np.eye(64, width, dtype=np.float32)[None, None]])
  x = np.abs(model_testing.images(1, (size, size, 64)))  # >= 0, so relu1 keeps it.
  got = np.asarray(probe(x, training=False))
  padded = np.zeros((1, size, size, width), np.float32)
  padded[..., :64] = x
  expected = padded[:, ::2, ::2, :]
  np.testing.assert_allclose(got, expected / np.sqrt(1.0 + 1e-5), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("size, torchvision, ceil_mode", [
    (64, 16, 16), (65, 17, 16), (224, 56, 56), (225, 57, 56)])
def test_stem_pool_sizes_match_pytorch(size, torchvision, ceil_mode):
  # After the 7x7/2 conv (padding 3) the map is n = ceil(size / 2).
  # torchvision MaxPool2d(3, 2, padding=1): floor((n - 1) / 2) + 1;
  # Cadene MaxPool2d(3, 2, ceil_mode=True): ceil((n - 3) / 2) + 1.
  for padding, expected in [(resnet_imagenet.TORCHVISION_POOL_PADDING, torchvision),
                            (resnet_imagenet.CEIL_MODE_POOL_PADDING, ceil_mode)]:
    x = keras.Input((size, size, 3))
    y = keras.layers.ZeroPadding2D(3)(x)
    y = keras.layers.Conv2D(1, 7, strides=2)(y)
    y = keras.layers.ZeroPadding2D(padding)(y)
    y = keras.layers.MaxPooling2D(3, strides=2)(y)
    assert tuple(y.shape[1:3]) == (expected, expected), padding


def test_ceil_mode_pool_exact_values():
  # PyTorch MaxPool2d(3, 2, ceil_mode=True) on a 4x4 map of non-negative values: windows start
  # at 0 and 2; the second one covers rows/columns 2..3 only.
  x = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
  pool = keras.Sequential([
      keras.layers.ZeroPadding2D(resnet_imagenet.CEIL_MODE_POOL_PADDING),
      keras.layers.MaxPooling2D(3, strides=2)])
  expected = np.array([[10, 11], [14, 15]], np.float32).reshape(1, 2, 2, 1)
  np.testing.assert_array_equal(np.asarray(pool(x)), expected)


def test_bad_stage_blocks():
  with pytest.raises(ValueError, match=r"Received: stage_blocks=\(3, 4, 6\)$"):
    resnet_imagenet.bottleneck_resnet((3, 4, 6), NUM_CLASSES, SMALL_SHAPE, name="bad")
