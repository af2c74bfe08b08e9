"""Wide Residual Networks (Zagoruyko & Komodakis, "Wide Residual Networks", BMVC 2016).

WRN-d-k: a 3x3 stem conv with 16 filters, three stages of (d - 4) / 6 pre-activation basic blocks
with 16k / 32k / 64k filters (strides 1, 2, 2), then BN-ReLU, global average pooling and a linear
layer. Where a block changes the shape, its shortcut is a 1x1 conv applied to the pre-activated
input, as in the reference PyTorch code (xternalz/WideResNet-pytorch) that the 36.5M figure of
the paper's Table 4 corresponds to. Counts are trainable parameters for 10 classes.
"""

import keras
from keras import layers

from models import registry
from models.resnet import batch_norm
from models.resnet import classifier
from models.resnet import conv2d


def _preact_block(x, filters, strides, dropout, name):
  """BN-ReLU-conv3x3-BN-ReLU-[dropout]-conv3x3, plus the shortcut (paper, Fig. 1 (d))."""
  preact = batch_norm(x, name=f"{name}_bn1")
  preact = layers.ReLU(name=f"{name}_relu1")(preact)
  if strides == 1 and x.shape[-1] == filters:
    shortcut = x
  else:
    shortcut = conv2d(preact, filters, 1, strides, name=f"{name}_shortcut_conv")
  y = conv2d(preact, filters, 3, strides, name=f"{name}_conv1")
  y = batch_norm(y, name=f"{name}_bn2")
  y = layers.ReLU(name=f"{name}_relu2")(y)
  if dropout > 0:
    y = layers.Dropout(dropout, name=f"{name}_dropout")(y)
  y = conv2d(y, filters, 3, 1, name=f"{name}_conv2")
  return layers.Add(name=f"{name}_add")([shortcut, y])


def wide_resnet(depth, width, num_classes, input_shape, dropout=0.0, name=None):
  """WRN-depth-width.

  Args:
    depth: 6n + 4 for an integer n >= 1 (10, 16, 22, 28, 40, ...).
    width: widening factor k >= 1.
    num_classes: number of logits.
    input_shape: (H, W, C); any size works (global average pooling).
    dropout: dropout rate between the two convs of every block, in [0, 1); 0 adds no layer.
    name: model name; defaults to "wrn<depth>_<width>".

  Returns:
    An uncompiled keras.Model from float32 images to float32 logits.
  """
  if isinstance(depth, bool) or not isinstance(depth, int) or depth < 10 or (depth - 4) % 6:
    raise ValueError("depth must be 6n+4 for an integer n >= 1 (10, 16, 22, 28, 40, ...). "
                     f"Received: depth={depth!r}")
  if isinstance(width, bool) or not isinstance(width, int) or width < 1:
    raise ValueError(f"width must be an integer >= 1. Received: width={width!r}")
  if not 0 <= dropout < 1:
    raise ValueError(f"dropout must be in [0, 1). Received: dropout={dropout!r}")
  blocks = (depth - 4) // 6
  inputs = keras.Input(shape=input_shape, dtype="float32", name="images")
  x = conv2d(inputs, 16, 3, 1, name="stem_conv")
  for stage, filters in enumerate((16 * width, 32 * width, 64 * width), start=1):
    for block in range(1, blocks + 1):
      strides = 2 if stage > 1 and block == 1 else 1
      x = _preact_block(x, filters, strides, dropout, name=f"stage{stage}_block{block}")
  x = batch_norm(x, name="final_bn")
  x = layers.ReLU(name="final_relu")(x)
  return keras.Model(inputs, classifier(x, num_classes), name=name or f"wrn{depth}_{width}")


@registry.register("wrn28_10")
def wrn28_10(num_classes, input_shape):
  """WRN-28-10 (Zagoruyko & Komodakis 2016, Table 4: 36.5M): 36,479,194 parameters."""
  return wide_resnet(28, 10, num_classes, input_shape)
