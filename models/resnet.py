"""ResNets for CIFAR-sized images, as Keras 3 functional models.

Two families share one basic block and differ in widths and in the shortcut:

- `cifar_resnet(depth)`: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016,
  section 4.2: 6n+2 layers, three stages of 16/32/64 filters, parameter-free "option A"
  shortcuts (identity; stride-2 subsampling and zero channels where the shape changes).
- `basic_resnet(stage_blocks)`: the ImageNet ResNet-18/34 of the same paper (Table 1: basic
  blocks, widths 64/128/256/512, "option B" 1x1 conv + BN projection shortcuts) with the CIFAR
  stem of kuangliu/pytorch-cifar (one 3x3 conv, no 7x7 conv and no max-pool). This is the
  ResNet-18 of the OHL paper's CIFAR-10 table.

Parameter counts below are trainable parameters (what PyTorch's `model.parameters()` counts),
for 10 classes; Keras' `count_params()` also counts the BN moving means and variances.

The helpers `conv2d`, `batch_norm` and `classifier` are shared with `wide_resnet.py` so that
every model here initialises and normalises the same way.
"""

import keras
from keras import layers
from keras import ops

from models import registry

# PyTorch's BatchNorm2d defaults (momentum 0.1 on the new value is Keras' 0.9 on the old one).
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5


# --------------------------------------------------------------------------------------------
# Layers shared by the CIFAR models.
# --------------------------------------------------------------------------------------------


def conv2d(x, filters, kernel_size, strides, name):
  """A bias-free convolution padded like PyTorch's, He-normal (fan_out) initialised.

  Args:
    x: a [B, H, W, C] tensor.
    filters: output channels.
    kernel_size: odd side of the square kernel.
    strides: 1 or 2.
    name: name of the Conv2D layer (a padding layer, if any, gets "<name>_pad").

  Returns:
    [B, ceil(H / strides), ceil(W / strides), filters].
  """
  padding = "same"
  if strides > 1 and kernel_size > 1:
    # TF's "same" pads only bottom/right for a stride-2 3x3 conv on even sizes, so its outputs
    # would sit one pixel off the x[::2] grid that the shortcuts sample. Pad (k-1)/2 on every
    # side, as PyTorch does, so that both paths of a block see the same pixels.
    x = layers.ZeroPadding2D((kernel_size - 1) // 2, name=f"{name}_pad")(x)
    padding = "valid"
  # kaiming_normal_(mode="fan_out", nonlinearity="relu"), as in torchvision and the WRN code.
  initializer = keras.initializers.VarianceScaling(
      scale=2.0, mode="fan_out", distribution="untruncated_normal")
  return layers.Conv2D(filters, kernel_size, strides=strides, padding=padding, use_bias=False,
                       kernel_initializer=initializer, name=name)(x)


def batch_norm(x, name):
  """BatchNormalization with PyTorch's momentum and epsilon."""
  return layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=name)(x)


def classifier(x, num_classes):
  """Global average pooling and a float32 Dense layer: logits [B, num_classes], no softmax.

  Pooling over whatever spatial size is left makes the models work on any input size. The Dense
  layer is float32 so that the logits (and the loss) stay float32 under mixed precision.
  """
  x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
  fan_in = x.shape[-1]
  return layers.Dense(
      num_classes,
      # PyTorch's nn.Linear weight init, U(-1/sqrt(fan_in), 1/sqrt(fan_in)); zero bias as in the
      # WRN reference code.
      kernel_initializer=keras.initializers.VarianceScaling(
          scale=1.0 / 3.0, mode="fan_in", distribution="uniform"),
      bias_initializer="zeros",
      dtype="float32",
      name="logits")(x)


@keras.saving.register_keras_serializable(package="ohl_tf")
class ZeroPadShortcut(layers.Layer):
  """He et al. 2016 "option A" shortcut: subsample by `strides`, then zero-pad the channels.

  Parameter-free. The new channels are split evenly before and after the old ones, as in the
  reference CIFAR code (akamaster/pytorch_resnet_cifar10, `F.pad(x[:, :, ::2, ::2], ...)`).

  Args:
    filters: output channels, >= the input channels.
    strides: spatial subsampling factor (1 keeps every pixel).

  Shapes: [B, H, W, C] -> [B, ceil(H / strides), ceil(W / strides), filters].
  """

  def __init__(self, filters, strides, **kwargs):
    super().__init__(**kwargs)
    self.filters = filters
    self.strides = strides

  def call(self, x):
    x = x[:, ::self.strides, ::self.strides, :]
    extra = self.filters - x.shape[-1]
    return ops.pad(x, [[0, 0], [0, 0], [0, 0], [extra // 2, extra - extra // 2]])

  def get_config(self):
    return {**super().get_config(), "filters": self.filters, "strides": self.strides}


def _shortcut(x, filters, strides, kind, name):
  """Identity when the shape is kept; else option A ("zero_pad") or B ("projection")."""
  if strides == 1 and x.shape[-1] == filters:
    return x
  if kind == "zero_pad":
    return ZeroPadShortcut(filters, strides, name=f"{name}_shortcut")(x)
  x = conv2d(x, filters, 1, strides, name=f"{name}_shortcut_conv")
  return batch_norm(x, name=f"{name}_shortcut_bn")


def _basic_block(x, filters, strides, shortcut, name):
  """Post-activation basic block (He et al. 2016, Fig. 2 left): two 3x3 convs and a shortcut."""
  y = conv2d(x, filters, 3, strides, name=f"{name}_conv1")
  y = batch_norm(y, name=f"{name}_bn1")
  y = layers.ReLU(name=f"{name}_relu1")(y)
  y = conv2d(y, filters, 3, 1, name=f"{name}_conv2")
  y = batch_norm(y, name=f"{name}_bn2")
  y = layers.Add(name=f"{name}_add")([_shortcut(x, filters, strides, shortcut, name), y])
  return layers.ReLU(name=f"{name}_out")(y)


def _resnet(stage_blocks, stage_filters, shortcut, num_classes, input_shape, name):
  """3x3 stem conv with stage_filters[0] filters, then stages of basic blocks, then the head.

  Every stage after the first halves the resolution in its first block.
  """
  inputs = keras.Input(shape=input_shape, dtype="float32", name="images")
  x = conv2d(inputs, stage_filters[0], 3, 1, name="stem_conv")
  x = batch_norm(x, name="stem_bn")
  x = layers.ReLU(name="stem_relu")(x)
  for stage, (blocks, filters) in enumerate(zip(stage_blocks, stage_filters), start=1):
    for block in range(1, blocks + 1):
      strides = 2 if stage > 1 and block == 1 else 1
      x = _basic_block(x, filters, strides, shortcut, name=f"stage{stage}_block{block}")
  return keras.Model(inputs, classifier(x, num_classes), name=name)


# --------------------------------------------------------------------------------------------
# Families.
# --------------------------------------------------------------------------------------------


def cifar_resnet(depth, num_classes, input_shape, name=None):
  """The CIFAR ResNet of He et al. 2016, section 4.2 (6n+2 layers, option A shortcuts).

  Args:
    depth: 6n + 2 for an integer n >= 1 (8, 20, 32, 44, 56, 110, ...).
    num_classes: number of logits.
    input_shape: (H, W, C); any size works (global average pooling).
    name: model name; defaults to "resnet<depth>".

  Returns:
    An uncompiled keras.Model from float32 images to float32 logits.
  """
  if isinstance(depth, bool) or not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
    raise ValueError(f"depth must be 6n+2 for an integer n >= 1 (8, 20, 32, 44, 56, 110, ...). "
                     f"Received: depth={depth!r}")
  n = (depth - 2) // 6
  return _resnet((n, n, n), (16, 32, 64), "zero_pad", num_classes, input_shape,
                 name=name or f"resnet{depth}")


def basic_resnet(stage_blocks, num_classes, input_shape, name=None):
  """ResNet-18/34-style network (basic blocks, projection shortcuts) with a CIFAR 3x3 stem.

  He et al. 2016, Table 1, widths 64 * 2^i, without the 7x7 conv and the max-pool, as in
  kuangliu/pytorch-cifar (models/resnet.py).

  Args:
    stage_blocks: blocks per stage, e.g. (2, 2, 2, 2) for ResNet-18, (3, 4, 6, 3) for ResNet-34.
    num_classes: number of logits.
    input_shape: (H, W, C); any size works (global average pooling).
    name: model name.

  Returns:
    An uncompiled keras.Model from float32 images to float32 logits.
  """
  stage_blocks = tuple(stage_blocks)
  if not stage_blocks or not all(isinstance(b, int) and b >= 1 for b in stage_blocks):
    raise ValueError("stage_blocks must be a non-empty sequence of positive integers. "
                     f"Received: stage_blocks={stage_blocks!r}")
  stage_filters = tuple(64 * 2**i for i in range(len(stage_blocks)))
  return _resnet(stage_blocks, stage_filters, "projection", num_classes, input_shape,
                 name=name or "resnet")


# --------------------------------------------------------------------------------------------
# Registered models.
# --------------------------------------------------------------------------------------------


@registry.register("resnet8")
def resnet8(num_classes, input_shape):
  """ResNet-8 (He et al. 2016, section 4.2 with n = 1): 75,290 parameters; a fast test model."""
  return cifar_resnet(8, num_classes, input_shape)


@registry.register("resnet20")
def resnet20(num_classes, input_shape):
  """ResNet-20 (He et al. 2016, Table 6: 0.27M): 269,722 parameters with option A."""
  return cifar_resnet(20, num_classes, input_shape)


@registry.register("resnet56")
def resnet56(num_classes, input_shape):
  """ResNet-56 (He et al. 2016, Table 6: 0.85M): 853,018 parameters with option A."""
  return cifar_resnet(56, num_classes, input_shape)


@registry.register("resnet18")
def resnet18(num_classes, input_shape):
  """ResNet-18 with a CIFAR stem, the OHL paper's CIFAR-10 ResNet-18: 11,173,962 parameters."""
  return basic_resnet((2, 2, 2, 2), num_classes, input_shape, name="resnet18")
