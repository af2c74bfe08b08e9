"""Dual Path Networks for CIFAR-sized images, as Keras 3 functional models.

Chen et al., "Dual Path Networks", NeurIPS 2017. Every block is a ResNeXt-style bottleneck
(1x1 conv, grouped 3x3 conv, 1x1 conv) whose output is split in two: the first `out_planes`
channels are added to the matching channels of the input (the residual path, which re-uses
features), the last `dense_depth` channels are appended to the input (the densely connected path,
which explores new features). The residual width stays `out_planes`; the dense part grows by
`dense_depth` per block.

The layout is kuangliu/pytorch-cifar's models/dpn.py, the CIFAR DPN-92 of the OHL paper's
CIFAR-10 table: a 3x3 stem conv with 64 filters (no 7x7 conv, no max-pool), four stages with

  in_planes   (96, 192, 384, 768)     bottleneck width, 3x3 convs in 32 groups
  out_planes  (256, 512, 1024, 2048)  residual-path width
  num_blocks  (3, 4, 20, 3)
  dense_depth (16, 32, 24, 128)

strides 1, 2, 2, 2 on the first block of each stage, whose shortcut is a 1x1 conv + BN to
out_planes + dense_depth channels. Later shortcuts are the identity. After block i (from 0) of a
stage the input has out_planes + (i + 2) * dense_depth channels. Unlike the ResNets, the final
ReLU comes after the concatenation (as in that code).

Trainable parameters for 10 classes (3x3 and 1x1 convs without bias, BN = gamma + beta; L is a
block's input channels, I = in_planes, D = out_planes, k = dense_depth):

  block          L*I + 2I  +  I*(I/32)*9 + 2I  +  I*(D+k) + 2(D+k)  [+ L*(D+k) + 2(D+k) if first]
  stem           3*9*64 + 2*64                                                =      1,856
  stage 1        L = 64, 288, 304          -> 320 channels                    =    169,824
  stage 2        L = 320, 576, 608, 640    -> 672 channels                    =  1,053,504
  stage 3        L = 672, 1072, ..., 1504  -> 1528 channels                   = 19,312,368
  stage 4        L = 1528, 2304, 2432      -> 2560 channels                   = 13,673,472
  logits         2560*10 + 10                                                 =     25,610
  total                                                                       = 34,236,634

the 34.23M that the OHL paper gives for DPN-92 on CIFAR-10 (and what PyTorch's
`model.parameters()` counts for kuangliu's DPN92). Keras' `count_params()` also counts the BN
moving means and variances.

Initialisation, BN and head are the house ones of models/resnet.py (He-normal fan_out convs,
PyTorch BN momentum/epsilon, a float32 logits layer), not PyTorch's defaults.
"""

import keras
from keras import layers
from keras import ops

from models import registry
from models.resnet import batch_norm
from models.resnet import classifier
from models.resnet import conv2d

# Groups of the 3x3 convolution (the ResNeXt "cardinality"), fixed in kuangliu's DPN.
GROUPS = 32


@keras.saving.register_keras_serializable(package="ohl_tf")
class DualPathMerge(layers.Layer):
  """Joins a DPN block's shortcut and its new features into one tensor.

  With d = `residual_channels`, returns

    concat([shortcut[..., :d] + new[..., :d], shortcut[..., d:], new[..., d:]])

  i.e. the first d channels form the residual path (summed), the rest the dense path (the old
  dense channels, then the new ones). Parameter-free; as `torch.cat` in kuangliu's
  `Bottleneck.forward`.

  Args:
    residual_channels: d, the residual-path width (out_planes); both inputs need >= d channels.

  Shapes: [B, H, W, d + a], [B, H, W, d + b] -> [B, H, W, d + a + b].
  """

  def __init__(self, residual_channels, **kwargs):
    super().__init__(**kwargs)
    if (isinstance(residual_channels, bool) or not isinstance(residual_channels, int)
        or residual_channels < 1):
      raise ValueError("residual_channels must be a positive integer. "
                       f"Received: residual_channels={residual_channels!r}")
    self.residual_channels = residual_channels

  def call(self, inputs):
    shortcut, new = inputs
    d = self.residual_channels
    return ops.concatenate(
        [shortcut[..., :d] + new[..., :d], shortcut[..., d:], new[..., d:]], axis=-1)

  def compute_output_shape(self, input_shapes):
    shortcut_shape, new_shape = input_shapes
    channels = shortcut_shape[-1] + new_shape[-1] - self.residual_channels
    return (*shortcut_shape[:-1], channels)

  def get_config(self):
    return {**super().get_config(), "residual_channels": self.residual_channels}


def _grouped_conv3x3(x, filters, strides, name):
  """A bias-free 3x3 conv in GROUPS groups, padded and initialised like `resnet.conv2d`.

  `resnet.conv2d` has no `groups` argument, hence this copy. For the kernel [3, 3, C/g, filters]
  Keras' fan_out is 9 * filters, as PyTorch's kaiming_normal_(mode="fan_out") has it for a
  grouped conv.
  """
  padding = "same"
  if strides > 1:
    # PyTorch padding=1 on every side, so that the outputs sit on the x[::2] grid of the stride-2
    # 1x1 shortcut (TF's "same" would pad only bottom/right).
    x = layers.ZeroPadding2D(1, name=f"{name}_pad")(x)
    padding = "valid"
  initializer = keras.initializers.VarianceScaling(
      scale=2.0, mode="fan_out", distribution="untruncated_normal")
  return layers.Conv2D(filters, 3, strides=strides, padding=padding, groups=GROUPS,
                       use_bias=False, kernel_initializer=initializer, name=name)(x)


def _bottleneck(x, in_planes, out_planes, dense_depth, strides, first, name):
  """One DPN block: 1x1 -> grouped 3x3 (strided) -> 1x1 to out_planes + dense_depth, merged."""
  y = conv2d(x, in_planes, 1, 1, name=f"{name}_conv1")
  y = batch_norm(y, name=f"{name}_bn1")
  y = layers.ReLU(name=f"{name}_relu1")(y)
  y = _grouped_conv3x3(y, in_planes, strides, name=f"{name}_conv2")
  y = batch_norm(y, name=f"{name}_bn2")
  y = layers.ReLU(name=f"{name}_relu2")(y)
  y = conv2d(y, out_planes + dense_depth, 1, 1, name=f"{name}_conv3")
  y = batch_norm(y, name=f"{name}_bn3")
  shortcut = x
  if first:
    # A 1x1 stride-2 conv samples x[::2] under "same" padding (TF pads nothing for k = 1).
    shortcut = conv2d(x, out_planes + dense_depth, 1, strides, name=f"{name}_shortcut_conv")
    shortcut = batch_norm(shortcut, name=f"{name}_shortcut_bn")
  y = DualPathMerge(out_planes, name=f"{name}_merge")([shortcut, y])
  return layers.ReLU(name=f"{name}_out")(y)


def _check_stage_tuple(value, name, num_stages):
  value = tuple(value)
  if len(value) != num_stages or not all(
      isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value):
    raise ValueError(f"{name} must be {num_stages} positive integers, one per stage. "
                     f"Received: {name}={value!r}")
  return value


def dual_path_network(in_planes, out_planes, num_blocks, dense_depth, num_classes, input_shape,
                      name="dpn"):
  """A CIFAR DPN in the layout of kuangliu/pytorch-cifar (see the module docstring).

  Args:
    in_planes: bottleneck widths per stage, each a multiple of 32 (the 3x3 conv groups).
    out_planes: residual-path widths per stage.
    num_blocks: blocks per stage.
    dense_depth: dense-path channels added per block, per stage.
    num_classes: number of logits.
    input_shape: (H, W, C); any size works (global average pooling).
    name: model name.

  Returns:
    An uncompiled keras.Model from float32 images to float32 logits. Stage s (from 1) ends with
    the layer "stage<s>_block<n>_out" of out_planes + (n + 1) * dense_depth channels.
  """
  num_stages = len(tuple(in_planes))
  in_planes = _check_stage_tuple(in_planes, "in_planes", num_stages)
  out_planes = _check_stage_tuple(out_planes, "out_planes", num_stages)
  num_blocks = _check_stage_tuple(num_blocks, "num_blocks", num_stages)
  dense_depth = _check_stage_tuple(dense_depth, "dense_depth", num_stages)
  if num_stages == 0 or any(planes % GROUPS for planes in in_planes):
    raise ValueError(f"in_planes must be non-empty multiples of {GROUPS} (the groups of the 3x3 "
                     f"convs). Received: in_planes={in_planes!r}")
  inputs = keras.Input(shape=input_shape, dtype="float32", name="images")
  x = conv2d(inputs, 64, 3, 1, name="stem_conv")
  x = batch_norm(x, name="stem_bn")
  x = layers.ReLU(name="stem_relu")(x)
  for stage, cfg in enumerate(zip(in_planes, out_planes, num_blocks, dense_depth), start=1):
    stage_in, stage_out, blocks, dense = cfg
    for block in range(1, blocks + 1):
      strides = 2 if stage > 1 and block == 1 else 1
      x = _bottleneck(x, stage_in, stage_out, dense, strides, first=block == 1,
                      name=f"stage{stage}_block{block}")
  return keras.Model(inputs, classifier(x, num_classes), name=name)


# --------------------------------------------------------------------------------------------
# Registered models.
# --------------------------------------------------------------------------------------------


@registry.register("dpn92")
def dpn92(num_classes, input_shape):
  """DPN-92 (Chen et al. 2017) for CIFAR, the OHL paper's 34.23M: 34,236,634 parameters."""
  return dual_path_network(in_planes=(96, 192, 384, 768), out_planes=(256, 512, 1024, 2048),
                           num_blocks=(3, 4, 20, 3), dense_depth=(16, 32, 24, 128),
                           num_classes=num_classes, input_shape=input_shape, name="dpn92")
