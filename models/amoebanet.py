"""AmoebaNet-B for CIFAR-sized images, as a Keras 3 functional model.

Real et al., "Regularized Evolution for Image Classifier Architecture Search", AAAI 2019: the
AmoebaNet-B normal and reduction cells of the paper's appendix, in the layout of the reference
TensorFlow code (tensorflow/tpu, models/official/amoeba_net: model_specs.py, cell
"amoeba_net_b" / "evol_net_h"; network_utils.py, `BaseCell`; model_builder.py,
`_build_network_base` with the non-ImageNet `_basic_stem`). AmoebaNet-B (N=6, F=128) is a
CIFAR-10 network of the AutoAugment paper (Cubuk et al., CVPR 2019, Table 2; on its parameter
count see below).

A cell (NASNet-style, Zoph et al. 2018) takes the two previous cell outputs. Its base makes both
F_c channels wide: the last output h0 through ReLU-1x1 conv-BN, the one before h1 through
ReLU-1x1 conv-BN if its width differs, or a factorized reduction if its resolution differs.
Five combinations then each add two operations applied to two of the hidden states
h0, h1, h2, ...; the sum becomes the next state. The cell output concatenates the states that no
combination used. Operations ("published name": what it is):

  "none"              identity (ReLU-1x1 conv-BN if it must stride or change the width)
  "1x1"               ReLU-1x1 conv-BN
  "3x3"               ReLU-1x1 conv to F_c/4-BN-ReLU-3x3 conv-BN-ReLU-1x1 conv to F_c-BN
  "separable_KxK_2"   twice ReLU-KxK separable conv-BN (the first one strides)
  "dil_2_separable_5x5_2"  the same with dilation 2
  "max_pool_KxK", "avg_pool_KxK"  "same"-padded pooling (+ 1x1 conv-BN if the width differs)

Operations on the cell inputs h0, h1 stride 2 in a reduction cell; the others do not. Padding is
TF's "same" throughout, as in the reference (the house `resnet.conv2d` is only used for 1x1
convs, which need none).

Network for CIFAR (N normal cells per stack, F filters), as the TPU code's `_build_network_base`
with its CIFAR stem `_basic_stem`: a 3x3 "valid" stem conv (32x32 -> 30x30) and BN; N normal
cells with F_c = F; a reduction cell and N normal cells with F_c = 2F (15x15); a reduction cell
and N normal cells with F_c = 4F (8x8); ReLU, global average pooling and the logits. A normal
cell outputs 4 F_c channels (four unused states), a reduction cell 2 F_c (two). The reduction
cells come after N and 2N normal cells (`calc_reduction_layers`), and F_c doubles at each.

The one width the TPU code leaves open for CIFAR is the stem's (`stem_reduction_size` comes from
the hparams, which the repository only gives for ImageNet). We use 3F, NASNet's CIFAR stem
(tensorflow/models research/slim/nets/nasnet/nasnet.py: `cifar_config()`, stem_multiplier=3.0),
the code that the TPU AmoebaNet code derives from. The total is then 34.87M, the 34.9M that
Real et al. (Table 2) give for AmoebaNet-B (6, 128); a stem of F filters would give 34,571,146.

Trainable parameters for 10 classes (convs without bias, BN = gamma + beta). A normal cell whose
inputs are both 4 F_c wide has 16 F_c^2 + 56 F_c (two 1x1 convs of the base, four "1x1"
operations, two double separable 3x3 convs, ten BNs); the first cells of a stack differ (the stem
or a reduction cell as inputs):

  stem            3*3*3*384 + 2*384                                      =     11,136
  stack 1         cell0 400,896; cell1 252,928; 4 x 269,312              =  1,731,072
  reduction 1     F_c = 256                                              =    681,216
  stack 2         cell6 800,768; cell7 931,840; 4 x 1,062,912            =  5,984,256
  reduction 2     F_c = 512                                              =  2,681,344
  stack 3         cell12 3,174,400; cell13 3,698,688; 4 x 4,222,976      = 23,764,992
  logits          2048*10 + 10                                           =     20,490
  total                                                                  = 34,874,506

Keras' `count_params()` also counts the BN moving means and variances. The AutoAugment paper
(Cubuk et al. 2019, Table 2) gives 33.4M for the same network, 4.4% below; we found no variant of
the reference code (stem width, aux head, filter scaling) that gives it. The reference's
auxiliary head (after cell 11: 5x5/3 average pool, 1x1 conv to 128, 4x4 conv to 768, both with
BN, and a linear layer) would add 1,713,418 and is left out: neither figure needs it, and our
trainer has one loss.

Left out as well: drop-path (the reference's `drop_connect_keep_prob`; a no-op at inference) and
the dropout before the logits. Initialisation and BN are the house ones of models/resnet.py
(He-normal fan_out convs, like the reference's `variance_scaling_initializer(mode='FAN_OUT')`;
PyTorch BN momentum/epsilon). Weight decay is the trainer's, as for every model here.

One deviation from the TPU code, without effect on the parameter count: its name parser reads
"dil_2_separable_5x5_2" as a plain 5x5 separable conv (the "dil_2_" is dropped); we apply the
dilation that the name, and the paper's cell, ask for.
"""

import collections
import re

import keras
from keras import layers

from models import registry
from models.resnet import batch_norm
from models.resnet import classifier
from models.resnet import conv2d

# A cell in the reference's encoding: combination k applies operations[2k] to state
# hiddenstate_indices[2k] and operations[2k+1] to state hiddenstate_indices[2k+1] and adds them
# into state k + 2; states with used_hiddenstates[i] == 0 are concatenated into the output.
# State 0 is the (1x1-projected) last cell output, state 1 the one before.
CellSpec = collections.namedtuple("CellSpec",
                                  ["operations", "hiddenstate_indices", "used_hiddenstates"])

# AmoebaNet-B (Real et al. 2019, appendix; tensorflow/tpu model_specs.py "amoeba_net_b").
NORMAL_CELL = CellSpec(
    operations=("1x1", "max_pool_3x3", "none", "separable_3x3_2", "1x1", "separable_3x3_2",
                "1x1", "none", "avg_pool_3x3", "1x1"),
    hiddenstate_indices=(1, 1, 1, 0, 1, 0, 2, 2, 1, 5),
    used_hiddenstates=(0, 1, 1, 0, 0, 1, 0))
REDUCTION_CELL = CellSpec(
    operations=("max_pool_2x2", "max_pool_3x3", "none", "3x3", "dil_2_separable_5x5_2",
                "max_pool_3x3", "none", "separable_3x3_2", "avg_pool_3x3", "1x1"),
    hiddenstate_indices=(0, 0, 2, 1, 2, 2, 3, 1, 4, 3),
    used_hiddenstates=(1, 1, 1, 1, 1, 0, 0))

_SEPARABLE = re.compile(r"^(?:dil_(\d+)_)?separable_(\d+)x\2_(\d+)$")
_POOL = re.compile(r"^(max|avg)_pool_(\d+)x\2$")


def _he_fan_out():
  # As resnet.conv2d, for the separable convs' depthwise and pointwise kernels.
  return keras.initializers.VarianceScaling(
      scale=2.0, mode="fan_out", distribution="untruncated_normal")


def _relu_conv_bn(x, filters, strides, name):
  """ReLU, a 1x1 conv (stride `strides`, i.e. sampling x[::s, ::s]) and BN."""
  x = layers.ReLU(name=f"{name}_relu")(x)
  x = conv2d(x, filters, 1, strides, name=f"{name}_conv")
  return batch_norm(x, name=f"{name}_bn")


def factorized_reduction(x, filters, name):
  """Halves the resolution without dropping pixels (Zoph et al. 2018; reference network_utils).

  Two stride-2 1x1 convs of filters / 2 each, one on the pixels x[::2, ::2], one on the pixels
  x[1::2, 1::2] (zero past the bottom/right edge), concatenated, then BN.

  Args:
    x: a [B, H, W, C] tensor.
    filters: output channels, even.
    name: prefix of the layer names.

  Returns:
    [B, ceil(H / 2), ceil(W / 2), filters].
  """
  if filters % 2:
    raise ValueError(f"A factorized reduction needs an even number of filters. "
                     f"Received: filters={filters!r}")
  path1 = conv2d(x, filters // 2, 1, 2, name=f"{name}_path1_conv")
  shifted = layers.Cropping2D(((1, 0), (1, 0)), name=f"{name}_path2_crop")(x)
  shifted = layers.ZeroPadding2D(((0, 1), (0, 1)), name=f"{name}_path2_pad")(shifted)
  path2 = conv2d(shifted, filters // 2, 1, 2, name=f"{name}_path2_conv")
  x = layers.Concatenate(name=f"{name}_concat")([path1, path2])
  return batch_norm(x, name=f"{name}_bn")


def _separable_stack(x, filters, kernel_size, num_layers, dilation, strides, name):
  """`num_layers` times ReLU-separable conv-BN; only the first one strides."""
  for i in range(1, num_layers + 1):
    x = layers.ReLU(name=f"{name}_relu{i}")(x)
    x = layers.SeparableConv2D(
        filters, kernel_size, strides=strides, padding="same", dilation_rate=dilation,
        depth_multiplier=1, use_bias=False, depthwise_initializer=_he_fan_out(),
        pointwise_initializer=_he_fan_out(), name=f"{name}_sep{i}")(x)
    x = batch_norm(x, name=f"{name}_bn{i}")
    strides = 1
  return x


def _bottleneck_3x3(x, filters, strides, name):
  """The reference's "3x3": a 3x3 conv between 1x1 convs to and from filters / 4."""
  inner = filters // 4
  y = layers.ReLU(name=f"{name}_relu1")(x)
  y = conv2d(y, inner, 1, 1, name=f"{name}_pre_conv")
  y = batch_norm(y, name=f"{name}_pre_bn")
  y = layers.ReLU(name=f"{name}_relu2")(y)
  # TF "same" padding (no extra padding layer), as the reference's slim.conv2d.
  y = layers.Conv2D(inner, 3, strides=strides, padding="same", use_bias=False,
                    kernel_initializer=_he_fan_out(), name=f"{name}_conv3x3")(y)
  y = batch_norm(y, name=f"{name}_bn")
  y = layers.ReLU(name=f"{name}_relu3")(y)
  y = conv2d(y, filters, 1, 1, name=f"{name}_post_conv")
  return batch_norm(y, name=f"{name}_post_bn")


def apply_operation(x, operation, filters, strides, name):
  """Applies one operation of a cell (published name, see the module docstring) to a state.

  Args:
    x: a hidden state [B, H, W, C].
    operation: e.g. "separable_3x3_2", "max_pool_3x3", "1x1", "none".
    filters: the cell's width F_c; the result has F_c channels.
    strides: 2 for an operation on a cell input of a reduction cell, else 1.
    name: prefix of the layer names.

  Returns:
    [B, ceil(H / strides), ceil(W / strides), F_c]; `x` itself for an identity "none".
  """
  separable, pool = _SEPARABLE.match(operation), _POOL.match(operation)
  if operation in ("none", "1x1"):
    if operation == "1x1" or strides > 1 or x.shape[-1] != filters:
      return _relu_conv_bn(x, filters, strides, name)
    return x
  if operation == "3x3":
    return _bottleneck_3x3(x, filters, strides, name)
  if separable:
    dilation, kernel_size, num_layers = separable.groups()
    return _separable_stack(x, filters, int(kernel_size), int(num_layers), int(dilation or 1),
                            strides, name)
  if pool:
    kind, size = pool.group(1), int(pool.group(2))
    pooling = layers.MaxPooling2D if kind == "max" else layers.AveragePooling2D
    # TF "same" pooling; the average counts only the pixels inside the image.
    x = pooling(size, strides=strides, padding="same", name=f"{name}_{kind}pool")(x)
    if x.shape[-1] != filters:
      # No ReLU here in the reference.
      x = conv2d(x, filters, 1, 1, name=f"{name}_conv")
      x = batch_norm(x, name=f"{name}_bn")
    return x
  raise ValueError(f"Unknown AmoebaNet operation {operation!r}")


def _cell_inputs(x, prev, filters, name):
  """The cell base: h0 = ReLU-1x1 conv-BN of x; h1 = prev matched to x in size and width."""
  if prev is None:
    prev = x  # The first cell sees the stem twice; as the reference, h1 is then x unchanged.
  elif prev.shape[1:3] != x.shape[1:3]:
    prev = layers.ReLU(name=f"{name}_prev_relu")(prev)
    prev = factorized_reduction(prev, filters, name=f"{name}_prev_reduce")
  elif prev.shape[-1] != filters:
    prev = _relu_conv_bn(prev, filters, 1, name=f"{name}_prev")
  return [_relu_conv_bn(x, filters, 1, name=f"{name}_base"), prev]


def cell(x, prev, spec, filters, strides, name):
  """One AmoebaNet cell (Real et al. 2019, appendix), built like the reference's `BaseCell`.

  Args:
    x: the last cell output (or the stem).
    prev: the cell output before that, or None for the first cell.
    spec: a `CellSpec`, `NORMAL_CELL` or `REDUCTION_CELL`.
    filters: the cell's width F_c.
    strides: 1 for a normal cell, 2 for a reduction cell.
    name: prefix of the layer names; combination k adds "<name>_comb<k>_left"/"_right" and
      "<name>_comb<k>_add", the output is "<name>_concat".

  Returns:
    The concatenation of the unused states: F_c times their number channels.
  """
  states = _cell_inputs(x, prev, filters, name)
  for k in range(len(spec.operations) // 2):
    branches = []
    for side, i in (("left", 2 * k), ("right", 2 * k + 1)):
      index = spec.hiddenstate_indices[i]
      # Only operations on the cell inputs (h0, h1) stride, as in the reference.
      op_strides = strides if index < 2 else 1
      branches.append(apply_operation(states[index], spec.operations[i], filters, op_strides,
                                      name=f"{name}_comb{k}_{side}"))
    states.append(layers.Add(name=f"{name}_comb{k}_add")(branches))
  unused = [s for s, used in zip(states, spec.used_hiddenstates) if not used]
  if len({tuple(s.shape[1:]) for s in unused}) != 1:
    # The reference would reduce mismatching states first; no AmoebaNet-B cell has any.
    raise ValueError(f"The unused states of {name} differ in shape: "
                     f"{[tuple(s.shape[1:]) for s in unused]}")
  return layers.Concatenate(name=f"{name}_concat")(unused)


def amoebanet(num_cells, filters, num_classes, input_shape, normal_cell=NORMAL_CELL,
              reduction_cell=REDUCTION_CELL, stem_filters=None, name="amoebanet"):
  """A CIFAR AmoebaNet: stem, then 3 stacks of `num_cells` normal cells, 2 reduction cells.

  Args:
    num_cells: N, normal cells per stack (6 in the paper's AmoebaNet-B (6, 128)).
    filters: F, the width of the first stack's cells (even); doubled at each reduction.
    num_classes: number of logits.
    input_shape: (H, W, C), at least 3 x 3; any size works (global average pooling).
    normal_cell: the normal cell's `CellSpec`.
    reduction_cell: the reduction cell's `CellSpec`.
    stem_filters: width of the 3x3 stem conv; defaults to 3 * filters (NASNet's CIFAR stem).
    name: model name.

  Returns:
    An uncompiled keras.Model from float32 images to float32 logits. Normal cells are named
    "cell<i>" (i = 0 .. 3N-1), reduction cells "reduction<j>" (j = 0, 1).
  """
  for arg, value in (("num_cells", num_cells), ("filters", filters)):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
      raise ValueError(f"{arg} must be a positive integer. Received: {arg}={value!r}")
  if filters % 2:
    raise ValueError(f"filters must be even (factorized reductions). Received: filters={filters}")
  inputs = keras.Input(shape=input_shape, dtype="float32", name="images")
  # The reference's `_basic_stem`: a "valid" 3x3 conv and BN, no ReLU (every cell starts with one).
  x = layers.Conv2D(stem_filters or 3 * filters, 3, padding="valid", use_bias=False,
                    kernel_initializer=_he_fan_out(), name="stem_conv")(inputs)
  x = batch_norm(x, name="stem_bn")
  prev = None
  cell_filters = filters
  for stack in range(3):
    if stack > 0:
      cell_filters *= 2
      x, prev = cell(x, prev, reduction_cell, cell_filters, 2, name=f"reduction{stack - 1}"), x
    for i in range(num_cells):
      x, prev = cell(x, prev, normal_cell, cell_filters, 1,
                     name=f"cell{stack * num_cells + i}"), x
  x = layers.ReLU(name="final_relu")(x)
  return keras.Model(inputs, classifier(x, num_classes), name=name)


# --------------------------------------------------------------------------------------------
# Registered models.
# --------------------------------------------------------------------------------------------


@registry.register("amoebanet_b")
def amoebanet_b(num_classes, input_shape):
  """AmoebaNet-B (6, 128) (Real et al. 2019, Table 2: 34.9M): 34,874,506 parameters.

  The AutoAugment paper's CIFAR-10 AmoebaNet-B, listed there with 33.4M (see the module
  docstring). No auxiliary head.
  """
  return amoebanet(6, 128, num_classes, input_shape, name="amoebanet_b")
