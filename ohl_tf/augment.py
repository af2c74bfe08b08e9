"""The OHL-Auto-Aug search spaces: their elements and operations, as Pillow-exact TensorFlow ops.

An *element* is an image transformation with a fixed magnitude (paper, Table 1); an *operation*
is an ordered pair of elements (e1, e2), op index k = E * e1 + e2 for a space of E elements,
applied as e2(e1(image)) (paper eq. 7). Each element reproduces Pillow's result, the reference of
AutoAugment's code (docs/search_space.md); the sign s in {-1, +1} mirrors a geometric or enhance
element.

A `SearchSpace` names its elements (`SEARCH_SPACES`, `--search_space`): "paper", the paper's 36
(1296 operations, the default), and "paper_identity", the same 36 plus Identity as element 36
(1369 operations), a space that can also say "less". `ELEMENTS`, `NUM_ELEMENTS` and
`NUM_OPERATIONS` are the paper space's.

Two execution paths share the same kernels (`pil_ops`), so they give identical bytes:
  * one image [H,W,3] with scalar indices: `tf.switch_case` over the 8 kernels (one per family
    of Pillow routine, the magnitude a tensor; a 9th, Identity's, in a space that has it), each
    run on the image itself (no batch of one), meant for the per-image `tf.data` map;
  * a batch [B,H,W,3] with per-image indices: `tf.dynamic_partition` by kernel, each kernel once
    on its share of the batch, `tf.dynamic_stitch` back.

Example:
  >>> images = tf.zeros([8, 32, 32, 3], tf.uint8)
  >>> ops = tf.random.stateless_uniform([8], [1, 2], maxval=PAPER.num_operations, dtype=tf.int32)
  >>> apply_operation(images, ops, seed=[3, 4], space=PAPER).shape
  TensorShape([8, 32, 32, 3])
"""

import dataclasses
import functools

import numpy as np
import tensorflow as tf

from ohl_tf import pil_ops


@dataclasses.dataclass(frozen=True)
class Element:
  """One element of the search space: a Pillow transformation at a fixed magnitude.

  Attributes:
    name: the transformation, e.g. "ShearX"; the three magnitudes of one share it.
    magnitude: the paper's magnitude (Table 1), None for AutoContrast, Equalize and Invert.
  """
  name: str
  magnitude: float | None


# Paper Table 1, in the order that fixes the element indices (docs/search_space.md).
_TABLE_1 = (
    ("ShearX", (0.1, 0.2, 0.3)),
    ("ShearY", (0.1, 0.2, 0.3)),
    ("TranslateX", (0.15, 0.3, 0.45)),  # fraction of the width
    ("TranslateY", (0.15, 0.3, 0.45)),  # fraction of the height
    ("Rotate", (10, 20, 30)),  # degrees
    ("Color", (0.3, 0.6, 0.9)),
    ("Posterize", (4.4, 5.6, 6.8)),  # bits, rounded: 4, 6, 7
    ("Solarize", (26, 102, 179)),  # threshold
    ("Contrast", (1.3, 1.6, 1.9)),
    ("Sharpness", (1.3, 1.6, 1.9)),
    ("Brightness", (1.3, 1.6, 1.9)),
    ("AutoContrast", (None,)),
    ("Equalize", (None,)),
    ("Invert", (None,)),
)

ELEMENTS = tuple(Element(name, magnitude) for name, magnitudes in _TABLE_1
                 for magnitude in magnitudes)
NUM_ELEMENTS = len(ELEMENTS)
NUM_OPERATIONS = NUM_ELEMENTS**2
IDENTITY = Element("Identity", None)  # the image unchanged (beyond the paper)


@dataclasses.dataclass(frozen=True)
class SearchSpace:
  """A search space: its elements, in the order that fixes every index.

  Attributes:
    name: the `--search_space` value, e.g. "paper".
    elements: the `Element`s; element e is elements[e], op k = E e1 + e2 with E = len(elements).
  """
  name: str
  elements: tuple

  @property
  def num_elements(self):
    return len(self.elements)

  @property
  def num_operations(self):
    return self.num_elements**2


PAPER = SearchSpace("paper", ELEMENTS)
# The paper's 36 keep their indices; Identity is element 36, so (Identity, Identity) is no
# operation and (Identity, e), (e, Identity) one.
PAPER_IDENTITY = SearchSpace("paper_identity", ELEMENTS + (IDENTITY,))
SEARCH_SPACES = {space.name: space for space in (PAPER, PAPER_IDENTITY)}
# The element tables below are indexed by element over the largest space; every space is a
# prefix of it, so an element has one index whatever the space.
_ALL_ELEMENTS = PAPER_IDENTITY.elements
assert all(space.elements == _ALL_ELEMENTS[:space.num_elements]
           for space in SEARCH_SPACES.values())


def search_space(name):
  """The `SearchSpace` named `name` (a `--search_space` value).

  Raises:
    ValueError: an unknown name; the message lists the known ones.
  """
  if name not in SEARCH_SPACES:
    raise ValueError(f"--search_space must be one of {', '.join(SEARCH_SPACES)}. "
                     f"Received: --search_space={name}")
  return SEARCH_SPACES[name]


def _space_with(count, value):
  """The `SearchSpace` whose number of `count` ("elements" or "operations") is `value`."""
  for space in SEARCH_SPACES.values():
    if getattr(space, f"num_{count}") == value:
      return space
  sizes = ", ".join(f"{getattr(s, f'num_{count}')} ({s.name})" for s in SEARCH_SPACES.values())
  raise ValueError(f"no search space has {value} {count}; the spaces have {sizes}. "
                   f"Received: num_{count}={value}")


def space_of_elements(num_elements):
  """The `SearchSpace` of `num_elements` elements (36: paper, 37: paper_identity).

  For functions that know the space only from a shape (a matrix [E, E], a vector [E²]).

  Raises:
    ValueError: no space has that many elements.
  """
  return _space_with("elements", num_elements)


def space_of_operations(num_operations):
  """The `SearchSpace` of `num_operations` operations (1296: paper, 1369: paper_identity).

  Raises:
    ValueError: no space has that many operations.
  """
  return _space_with("operations", num_operations)

_SIGNS = (-1, 1)  # column 0 of the per-sign tables is s = -1, column 1 is s = +1
_GEOMETRIC = ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate")
_FILL = 128  # Pillow's fillcolor (128, 128, 128) outside the transformed image
_NUM_GEOMETRIC = sum(e.name in _GEOMETRIC for e in ELEMENTS)
# Row 2 e + (s > 0) of the geometric source table serves element e: they must come first.
assert all(e.name in _GEOMETRIC for e in ELEMENTS[:_NUM_GEOMETRIC])
_MIN_SIZE = 3  # SMOOTH (Sharpness) needs a 3x3 neighbourhood


# ---------------------------------------------------------------------------
# Element parameters, as plain tables indexed by element (and sign).
# ---------------------------------------------------------------------------

def _affine_matrix(element, sign, width, height):
  """The coefficients that docs/search_space.md passes to Pillow for a geometric element."""
  v = sign * element.magnitude
  # Table 1 gives translations as fractions of the size; Pillow takes pixels.
  scale = {"TranslateX": width, "TranslateY": height}.get(element.name)
  return pil_ops.affine_matrix(element.name, v if scale is None else v * scale, width, height)


@functools.lru_cache(maxsize=16)
def geometric_source_table(height, width):
  """int32 [15 * 2, height * width]: source pixels of element e, sign s at row 2 e + (s > 0).

  Pillow's sampling depends only on the matrix and the image size, so it is tabulated once per
  size (32x32: 120 KiB; 224x224: 6 MiB) and each geometric element becomes one gather.
  """
  return np.stack([
      pil_ops.affine_source_indices(_affine_matrix(element, sign, width, height), width, height)
      for element in ELEMENTS if element.name in _GEOMETRIC for sign in _SIGNS
  ])


def _point_parameters(element):
  """(mask, threshold) of `pil_ops.posterize_solarize` for a fixed point operation."""
  if element.name == "Posterize":
    return pil_ops.posterize_mask(round(element.magnitude)), 256
  if element.name == "Solarize":
    return 255, element.magnitude
  if element.name == "Invert":
    return 255, 0
  return 255, 256  # identity: not used


def _enhance_factor(element, sign):
  """ImageEnhance factor: Color 1 + s m; Contrast, Sharpness, Brightness 1 + s (m - 1)."""
  if element.name == "Color":
    return 1 + sign * element.magnitude
  if element.name in ("Contrast", "Sharpness", "Brightness"):
    return 1 + sign * (element.magnitude - 1)
  return 1.0


_POINT_PARAMETERS = np.array([_point_parameters(e) for e in _ALL_ELEMENTS], np.int32)  # [E, 2]
# float32 as Pillow's C blend takes it: [E, 2] by sign.
_ENHANCE_FACTORS = np.array([[_enhance_factor(e, s) for s in _SIGNS] for e in _ALL_ELEMENTS],
                            np.float32)


# ---------------------------------------------------------------------------
# Kernels: fn(images [B,H,W,3] uint8, elements [B], signs [B]) -> uint8 [B,H,W,3], or the same
# on one image [H,W,3] with scalar elements and signs.
# ---------------------------------------------------------------------------

def _sign_column(signs):
  return tf.cast(signs > 0, tf.int32)


def _source_table(images):
  """`geometric_source_table` for the images' size, a constant when the size is static."""
  height, width = images.shape[-3], images.shape[-2]
  if height is not None and width is not None:
    return tf.constant(geometric_source_table(height, width))
  # Size known only at run time: the same numpy table, built (and cached) per size.
  size = tf.shape(images)[-3:-1]
  table = tf.numpy_function(lambda h, w: geometric_source_table(int(h), int(w)),
                            [size[0], size[1]], tf.int32, stateful=False)
  return tf.ensure_shape(table, [2 * _NUM_GEOMETRIC, None])


def _geometric(images, elements, signs):
  rows = 2 * elements + _sign_column(signs)
  height, width = images.shape[-3], images.shape[-2]
  if height is not None and width is not None:
    return pil_ops.remap_table(images, geometric_source_table(height, width), rows, _FILL)
  return pil_ops.remap(images, tf.gather(_source_table(images), rows), _FILL)


def _point(images, elements, signs):
  del signs  # Posterize, Solarize and Invert have no direction.
  masks, thresholds = tf.unstack(tf.gather(_POINT_PARAMETERS, elements), axis=-1)
  return pil_ops.posterize_solarize(images, masks, thresholds)


def _enhance(degenerate_fn):
  def kernel(images, elements, signs):
    factors = tf.gather_nd(_ENHANCE_FACTORS, tf.stack([elements, _sign_column(signs)], -1))
    return pil_ops.blend(degenerate_fn(images), images, factors)
  return kernel


def _autocontrast(images, elements, signs):
  del elements, signs
  return pil_ops.autocontrast(images)


def _equalize(images, elements, signs):
  del elements, signs
  return pil_ops.equalize(images)


def _identity(images, elements, signs):
  del elements, signs
  return images  # batched: its share is stitched back untouched; per image: the image itself


_KERNEL_OF_FAMILY = {
    **{name: _geometric for name in _GEOMETRIC},
    "Color": _enhance(pil_ops.color_degenerate),
    "Contrast": _enhance(pil_ops.contrast_degenerate),
    "Sharpness": _enhance(pil_ops.sharpness_degenerate),
    "Brightness": _enhance(lambda images: tf.zeros_like(images)),
    "Posterize": _point,
    "Solarize": _point,
    "Invert": _point,
    "AutoContrast": _autocontrast,
    "Equalize": _equalize,
    "Identity": _identity,
}
_KERNELS = tuple(dict.fromkeys(_KERNEL_OF_FAMILY.values()))  # 9, in first-seen order
_KERNEL_OF_ELEMENT = np.array([_KERNELS.index(_KERNEL_OF_FAMILY[e.name]) for e in _ALL_ELEMENTS],
                              np.int32)


def _kernels(num_elements):
  """The kernels that elements [0, num_elements) use: the paper's 8 (no identity branch or
  partition in the paper space), 9 with Identity."""
  return _KERNELS[:int(_KERNEL_OF_ELEMENT[:num_elements].max()) + 1]


def _switch_path(image, element, sign, space):
  """One image: a switch over the space's kernels, each run on the image with scalar parameters.

  Only the selected branch runs, so an element costs its own kernel plus the switch.
  """
  branches = [functools.partial(kernel, image, element, sign)
              for kernel in _kernels(space.num_elements)]
  return tf.ensure_shape(pil_ops.switch_case(tf.gather(_KERNEL_OF_ELEMENT, element), branches),
                         image.shape)


def _partition_path(images, elements, signs, space):
  """A batch: each of the space's kernels once on the images whose element it implements."""
  return pil_ops.apply_partitioned(_kernels(space.num_elements),
                                   tf.gather(_KERNEL_OF_ELEMENT, elements), images, elements,
                                   signs)


def _apply_element(images, element, sign, space):
  path = _partition_path if images.shape.rank == 4 else _switch_path
  return path(images, element, sign, space)


# ---------------------------------------------------------------------------
# Argument checks: wrong input raises, never wraps or clips silently.
# ---------------------------------------------------------------------------

def _check_images(images):
  images = tf.convert_to_tensor(images)
  if images.dtype != tf.uint8:
    raise TypeError("images must be uint8 RGB, [H,W,3] or [B,H,W,3]. "
                    f"Received: images.dtype={images.dtype.name}")
  if images.shape.rank not in (3, 4) or images.shape[-1] != 3:
    raise ValueError("images must be [H,W,3] (one image) or [B,H,W,3] (a batch) with 3 channels. "
                     f"Received: images.shape={images.shape}")
  height, width = images.shape[-3], images.shape[-2]
  if any(d is not None and d < _MIN_SIZE for d in (height, width)):
    raise ValueError(f"images must be at least {_MIN_SIZE}x{_MIN_SIZE} pixels. "
                     f"Received: images.shape={images.shape}")
  return images


def _checked(values, *assertions):
  """`values`, computed only after the run-time assertions pass (in graphs and tf.data too)."""
  with tf.control_dependencies([a for a in assertions if a is not None]):  # None when eager
    return tf.identity(values)


def _check_indices(values, name, images, trailing=()):
  """Checks an integer argument's shape against the images: [] per image, [B] for a batch."""
  values = tf.convert_to_tensor(values)
  if not values.dtype.is_integer:
    raise TypeError(f"{name} must be an integer tensor. Received: {name}.dtype={values.dtype.name}")
  expected = images.shape[:-3].concatenate(trailing)
  if values.shape.rank != expected.rank or not values.shape.is_compatible_with(expected):
    raise ValueError(f"{name} must have shape {expected.as_list()} to match images of shape "
                     f"{images.shape}. Received: {name}.shape={values.shape}")
  values = tf.cast(values, tf.int32)
  if images.shape.rank == 4 and None in (values.shape[0], images.shape[0]):
    return _checked(values, tf.debugging.assert_equal(
        tf.shape(values)[0], tf.shape(images)[0],
        message=f"{name} must have one entry per image (mismatched batch sizes)"))
  return values


def _check_range(values, name, upper):
  message = f"{name} must be in [0, {upper})"
  return _checked(values, tf.debugging.assert_greater_equal(values, 0, message=message),
                  tf.debugging.assert_less(values, upper, message=message))


def _check_signs(signs, name):
  return _checked(signs, tf.debugging.assert_equal(tf.abs(signs), 1,
                                                   message=f"{name} must be -1 or +1"))


# ---------------------------------------------------------------------------
# Public API.
# ---------------------------------------------------------------------------

def apply_element(images, element, sign, space=PAPER):
  """Applies one element per image, as Pillow would (docs/search_space.md).

  Args:
    images: uint8 [B,H,W,3] (batched path) or [H,W,3] (per-image `tf.switch_case` path).
    element: int [B] (or a scalar for one image), element indices in [0, E) of `space`.
    sign: int [B] (or a scalar), each -1 or +1; ignored by elements without a direction.
    space: the `SearchSpace` the indices belong to (default the paper's, E = 36).

  Returns:
    uint8 of the shape of `images`.

  Raises:
    TypeError, ValueError: wrong dtype, rank, channel count, or mismatched shapes.
    tf.errors.InvalidArgumentError: an index or sign out of range (at run time in a graph).
  """
  images = _check_images(images)
  element = _check_range(_check_indices(element, "element", images), "element",
                         space.num_elements)
  sign = _check_signs(_check_indices(sign, "sign", images), "sign")
  return _apply_element(images, element, sign, space)


def sample_signs(shape, seed=None):
  """int32 signs in {-1, +1}, uniform; stateless when `seed` (int [2]) is given."""
  if seed is None:
    bits = tf.random.uniform(shape, maxval=2, dtype=tf.int32)
  else:
    bits = tf.random.stateless_uniform(shape, seed, minval=0, maxval=2, dtype=tf.int32)
  return 2 * bits - 1


def apply_operation(images, op, signs=None, seed=None, space=PAPER):
  """Applies operation k = E e1 + e2 per image: e1, then e2 (paper eq. 7).

  Args:
    images: uint8 [B,H,W,3] (batched path) or [H,W,3] (per-image path).
    op: int [B] (or a scalar for one image), operation indices in [0, E²) of `space`.
    signs: int [B,2] (or [2]), the signs of e1 and e2, each -1 or +1; drawn uniformly if None.
    seed: optional int [2], makes the drawn signs stateless (ignored when `signs` is given).
    space: the `SearchSpace` of the operations (default the paper's: E = 36, 1296 operations).

  Returns and raises as `apply_element`.
  """
  images = _check_images(images)
  op = _check_range(_check_indices(op, "op", images), "op", space.num_operations)
  if signs is None:
    signs = sample_signs(tf.concat([tf.shape(op), [2]], 0), seed)
  signs = _check_signs(_check_indices(signs, "signs", images, trailing=(2,)), "signs")
  return _apply_operation(images, op, signs, space)


def apply_drawn_operation(images, op, signs, space=PAPER):
  """`apply_operation` for an `op` and `signs` drawn in range, without the run-time checks.

  For the input pipeline, whose ops (`policy.draw_operations`) and signs (`sample_signs`) are
  valid by construction: the range checks add a dozen small ops per image to the per-image map.
  The dtype and shape checks remain (per image they run once, when the map is traced). Out-of-
  range values give undefined results here instead of an error.

  Args:
    images: uint8 [B,H,W,3] or [H,W,3].
    op: int [B] (or a scalar), in [0, E²) of `space`.
    signs: int [B,2] (or [2]), each -1 or +1.
    space: the `SearchSpace` of the operations (default the paper's).

  Returns:
    uint8 of the shape of `images`, the bytes of `apply_operation(images, op, signs)`.
  """
  images = _check_images(images)
  return _apply_operation(images, _check_indices(op, "op", images),
                          _check_indices(signs, "signs", images, trailing=(2,)), space)


def _apply_operation(images, op, signs, space):
  first = _apply_element(images, op // space.num_elements, signs[..., 0], space)
  return _apply_element(first, op % space.num_elements, signs[..., 1], space)
