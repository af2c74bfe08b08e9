"""Bottleneck ResNets for ImageNet-sized images, as Keras 3 functional models.

One bottleneck block, with the cardinality (grouped 3x3 conv) and squeeze-and-excitation as
arguments, serves two registered networks:

- `resnet50`: ResNet-50 v1.5, He et al., "Deep Residual Learning for Image Recognition",
  CVPR 2016, Table 1, in torchvision's layout (torchvision/models/resnet.py): 7x7/2 stem conv
  with 64 filters, 3x3/2 max-pool (padding 1), stages of [3, 4, 6, 3] bottleneck blocks of widths
  64/128/256/512 with expansion 4, the stride on the 3x3 conv ("v1.5"), 1x1 conv + BN projection
  shortcuts. 25,557,032 trainable parameters for 1000 classes, exactly torchvision's
  (the OHL paper says 25.58M).
- `se_resnext101`: SE-ResNeXt-101 (32x4d), Hu et al., "Squeeze-and-Excitation Networks",
  CVPR 2018, on ResNeXt-101 of Xie et al., "Aggregated Residual Transformations for Deep Neural
  Networks", CVPR 2017: stages [3, 4, 23, 3], cardinality 32, base width 4 (3x3 widths
  128/256/512/1024), SE with reduction 16 on each block's residual branch before the add. Layout
  of Cadene's pretrainedmodels `se_resnext101_32x4d` (pretrainedmodels/models/senet.py): 7x7/2
  stem, 3x3/2 max-pool in ceil mode without padding, 1x1 conv + BN projection shortcuts, no
  dropout. 48,955,416 trainable parameters for 1000 classes, exactly Cadene's (the OHL paper
  says 48.96M).

Parameter counts are trainable parameters (PyTorch's `model.parameters()`); Keras'
`count_params()` also counts the BN moving means and variances.

Convolutions, BN and the classifier are the house helpers of `models/resnet.py`, so every model
initialises and normalises the same way (the convs are He-normal fan_out, as in torchvision; the
SE layers use PyTorch's default Conv2d/Linear weight init, see `_squeeze_excite`).
"""

import keras
from keras import layers

from models import registry
from models.resnet import batch_norm
from models.resnet import classifier
from models.resnet import conv2d

EXPANSION = 4

# Max-pool padding ((top, bottom), (left, right)) of the two reference stems. The pool follows a
# ReLU, so padding with zeros gives the same maxima as PyTorch's -inf padding.
# torchvision: MaxPool2d(3, 2, padding=1): windows start at -1, 1, 3, ...
TORCHVISION_POOL_PADDING = ((1, 1), (1, 1))
# Cadene: MaxPool2d(3, 2, ceil_mode=True): windows start at 0, 2, 4, ...; the last one may run one
# pixel past the bottom/right edge, which one row and column of padding reproduces for any size.
CEIL_MODE_POOL_PADDING = ((0, 1), (0, 1))


def _squeeze_excite(x, reduction, name):
  """Squeeze-and-excitation (Hu et al. 2018, Fig. 3): rescales the channels of `x`.

  Global average pool, FC to C / reduction with ReLU, FC back to C with a sigmoid, multiply.
  The FCs have biases, as the 1x1 convs `fc1`/`fc2` of Cadene's `SEModule`
  (2 * C * C / reduction + C / reduction + C parameters), with PyTorch's default weight init
  U(-1/sqrt(fan_in), 1/sqrt(fan_in)) and zero biases.

  Args:
    x: a [B, H, W, C] tensor, C divisible by `reduction`.
    reduction: channel reduction ratio r (16 in the paper).
    name: prefix of the layer names.

  Returns:
    [B, H, W, C], `x` times per-channel gates in (0, 1).
  """
  channels = x.shape[-1]
  initializer = keras.initializers.VarianceScaling(
      scale=1.0 / 3.0, mode="fan_in", distribution="uniform")
  s = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_se_pool")(x)
  s = layers.Dense(channels // reduction, activation="relu", kernel_initializer=initializer,
                   name=f"{name}_se_fc1")(s)
  s = layers.Dense(channels, activation="sigmoid", kernel_initializer=initializer,
                   name=f"{name}_se_fc2")(s)
  return layers.Multiply(name=f"{name}_se_scale")([x, s])


def bottleneck_block(x, planes, strides, cardinality, base_width, se_reduction, name):
  """Post-activation bottleneck block: 1x1, 3x3 (grouped, strided), 1x1 (x4), optional SE.

  He et al. 2016, Fig. 5 right, with the stride on the 3x3 conv (torchvision's "v1.5"); with
  cardinality > 1 the 3x3 conv is the grouped convolution of Xie et al. 2017, Fig. 3(c); with
  `se_reduction` the residual branch is rescaled by squeeze-and-excitation before the add
  (Hu et al. 2018, Fig. 3). The inner width is floor(planes * base_width / 64) * cardinality,
  as in torchvision and Cadene: planes for ResNet (1 x 64d), 2 * planes for 32x4d.

  Args:
    x: a [B, H, W, C] tensor.
    planes: 64, 128, 256 or 512; the block outputs 4 * planes channels.
    strides: 1, or 2 in the first block of stages 2 to 4.
    cardinality: groups of the 3x3 conv (1 for ResNet).
    base_width: width of one group at planes = 64 (64 for ResNet, 4 for ResNeXt 32x4d).
    se_reduction: SE reduction ratio, or None for no SE.
    name: prefix of the layer names.

  Returns:
    [B, ceil(H / strides), ceil(W / strides), 4 * planes].
  """
  width = (planes * base_width // 64) * cardinality
  filters = planes * EXPANSION
  y = conv2d(x, width, 1, 1, name=f"{name}_conv1")
  y = batch_norm(y, name=f"{name}_bn1")
  y = layers.ReLU(name=f"{name}_relu1")(y)
  if cardinality == 1:
    # conv2d pads a stride-2 3x3 conv by one pixel on every side, as PyTorch does.
    y = conv2d(y, width, 3, strides, name=f"{name}_conv2")
  else:
    # The house conv2d has no `groups`; the same padding and init, with groups.
    if strides > 1:
      y = layers.ZeroPadding2D(1, name=f"{name}_conv2_pad")(y)
    y = layers.Conv2D(
        width, 3, strides=strides, padding="same" if strides == 1 else "valid",
        groups=cardinality, use_bias=False,
        kernel_initializer=keras.initializers.VarianceScaling(
            scale=2.0, mode="fan_out", distribution="untruncated_normal"),
        name=f"{name}_conv2")(y)
  y = batch_norm(y, name=f"{name}_bn2")
  y = layers.ReLU(name=f"{name}_relu2")(y)
  y = conv2d(y, filters, 1, 1, name=f"{name}_conv3")
  y = batch_norm(y, name=f"{name}_bn3")
  if se_reduction is not None:
    y = _squeeze_excite(y, se_reduction, name)
  shortcut = x
  if strides != 1 or x.shape[-1] != filters:
    # 1x1 conv + BN projection ("option B"). A 1x1 "same" conv of stride 2 samples x[::2, ::2],
    # the pixels at which the padded 3x3 conv is centred.
    shortcut = conv2d(x, filters, 1, strides, name=f"{name}_shortcut_conv")
    shortcut = batch_norm(shortcut, name=f"{name}_shortcut_bn")
  y = layers.Add(name=f"{name}_add")([shortcut, y])
  return layers.ReLU(name=f"{name}_out")(y)


def bottleneck_resnet(stage_blocks, num_classes, input_shape, name, cardinality=1, base_width=64,
                      se_reduction=None, pool_padding=TORCHVISION_POOL_PADDING):
  """7x7/2 stem, 3x3/2 max-pool, four stages of bottleneck blocks, then the classifier.

  Args:
    stage_blocks: blocks per stage, e.g. (3, 4, 6, 3) for ResNet-50, (3, 4, 23, 3) for 101.
    num_classes: number of logits.
    input_shape: (H, W, C); any size of at least 32 x 32 works (global average pooling).
    name: model name.
    cardinality: groups of every 3x3 conv.
    base_width: width of one group in the first stage.
    se_reduction: SE reduction ratio, or None.
    pool_padding: padding of the stem max-pool, `TORCHVISION_POOL_PADDING` or
      `CEIL_MODE_POOL_PADDING`.

  Returns:
    An uncompiled keras.Model from float32 images [B, H, W, C] to float32 logits
    [B, num_classes]; the last feature map is H / 32 x W / 32 (rounded up).
  """
  stage_blocks = tuple(stage_blocks)
  if len(stage_blocks) != 4 or not all(isinstance(b, int) and b >= 1 for b in stage_blocks):
    raise ValueError("stage_blocks must be four positive integers. "
                     f"Received: stage_blocks={stage_blocks!r}")
  inputs = keras.Input(shape=input_shape, dtype="float32", name="images")
  x = conv2d(inputs, 64, 7, 2, name="stem_conv")
  x = batch_norm(x, name="stem_bn")
  x = layers.ReLU(name="stem_relu")(x)
  x = layers.ZeroPadding2D(pool_padding, name="stem_pool_pad")(x)
  x = layers.MaxPooling2D(3, strides=2, padding="valid", name="stem_pool")(x)
  for stage, blocks in enumerate(stage_blocks, start=1):
    planes = 64 * 2**(stage - 1)
    for block in range(1, blocks + 1):
      strides = 2 if stage > 1 and block == 1 else 1
      x = bottleneck_block(x, planes, strides, cardinality, base_width, se_reduction,
                           name=f"stage{stage}_block{block}")
  return keras.Model(inputs, classifier(x, num_classes), name=name)


# --------------------------------------------------------------------------------------------
# Registered models.
# --------------------------------------------------------------------------------------------


@registry.register("resnet50")
def resnet50(num_classes, input_shape):
  """ResNet-50 v1.5 (He et al. 2016; torchvision): 25,557,032 parameters for 1000 classes.

  The OHL paper's ImageNet ResNet-50 (25.58M). The count is torchvision's `resnet50()` exactly.
  """
  return bottleneck_resnet((3, 4, 6, 3), num_classes, input_shape, name="resnet50")


@registry.register("se_resnext101")
def se_resnext101(num_classes, input_shape):
  """SE-ResNeXt-101 32x4d (Hu et al. 2018; Xie et al. 2017): 48,955,416 parameters (1000 classes).

  The OHL paper's SE-ResNeXt-101 (48.96M). The count is Cadene's pretrainedmodels
  `se_resnext101_32x4d` exactly; the stem max-pool runs in ceil mode like Cadene's.
  """
  return bottleneck_resnet((3, 4, 23, 3), num_classes, input_shape, name="se_resnext101",
                           cardinality=32, base_width=4, se_reduction=16,
                           pool_padding=CEIL_MODE_POOL_PADDING)
