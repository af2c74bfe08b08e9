"""The OHL-Auto-Aug search spaces: their elements and operations, as Pillow-exact TensorFlow ops.

An *element* is an image transformation with a fixed magnitude (paper, Table 1); an *operation*
is an ordered pair of elements (e1, e2), op index k = E * e1 + e2 for a space of E elements,
applied as e2(e1(image)) (paper eq. 7). Each element reproduces Pillow's result, the reference of
AutoAugment's code (docs/search_space.md); the sign s in {-1, +1} mirrors a geometric or enhance
element, and a sign 0 says that an element which applies with a probability does not
(`draw_signs`).

A `SearchSpace` names its elements (`SEARCH_SPACES`, `--search_space`): "paper", the paper's 36
(1296 operations, the default); "paper_identity", the same 36 plus Identity as element 36
(1369 operations), a space that can also say "less"; and "autoaugment_cifar10", the 41 distinct
slots of AutoAugment's CIFAR-10 sub-policies, each an operation at a level that applies with the
slot's probability, plus Identity (beyond the paper: OHL then reweights AutoAugment's own
operations, and its 25 sub-policies are 25 of the space's pairs). `ELEMENTS`, `NUM_ELEMENTS` and
`NUM_OPERATIONS` are the paper space's.

The elements are operations of the compiler `ohl_tf.operations` (as AutoAugment's, RandAugment's
and TrivialAugment's are), compiled once per space (`element_table`), and run on its two
execution paths, which share the same kernels (`pil_ops`), so they give identical bytes:
  * one image [H,W,3] with scalar indices: a switch over the 8 kernels (one per family of Pillow
    routine, the magnitude a tensor; a 9th, Identity's, in a space that has it), each run on the
    image itself (no batch of one), meant for the per-image `tf.data` map;
  * a batch [B,H,W,3] with per-image indices: `tf.dynamic_partition` by kernel, each kernel once
    on its share of the batch, `tf.dynamic_stitch` back; from 128x128 pixels (a static size) one
    loop over the images instead, both elements of each through the switch
    (`operations.map_if_large`).

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

from ohl_tf import autoaugment
from ohl_tf import operations


@dataclasses.dataclass(frozen=True)
class Element:
  """One element of the search space: a Pillow transformation at a fixed magnitude.

  Attributes:
    name: the transformation, e.g. "ShearX"; the three magnitudes of one share it.
    magnitude: what the space's parameter function reads: the paper's magnitude (Table 1), or
      AutoAugment's level 0..9; None for AutoContrast, Equalize, Invert and Identity.
    probability: the probability that the element applies when an operation holds it (else the
      image passes unchanged): 1 in the paper's spaces, the sub-policy slot's in AutoAugment's.
  """
  name: str
  magnitude: float | None
  probability: float = 1.0


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


def element_parameter(name, magnitude, sign, width, height):
  """The value docs/search_space.md passes to Pillow for element (name, magnitude) and sign s.

  The parameter function of `operations.compile_operations` for the paper's elements: geometric
  s m (translations are fractions of the size in Table 1, Pillow takes pixels: s m W, s m H);
  ImageEnhance factor Color 1 + s m, Contrast, Sharpness, Brightness 1 + s (m - 1); Posterize
  round(m) bits; Solarize the threshold m.
  """
  value = sign * magnitude
  if name in ("TranslateX", "TranslateY"):
    return value * (width if name == "TranslateX" else height)
  if name in operations.GEOMETRIC:
    return value
  if name == "Color":
    return 1 + sign * magnitude
  if name in operations.ENHANCE:
    return 1 + sign * (magnitude - 1)
  return round(magnitude) if name == "Posterize" else magnitude  # Solarize


@dataclasses.dataclass(frozen=True)
class SearchSpace:
  """A search space: its elements, in the order that fixes every index.

  Attributes:
    name: the `--search_space` value, e.g. "paper".
    elements: the `Element`s; element e is elements[e], op k = E e1 + e2 with E = len(elements).
    parameter: fn(name, magnitude, sign, width, height), what Pillow is passed for an element
      (the parameter function of `operations.compile_operations`).
  """
  name: str
  elements: tuple
  parameter: object = element_parameter

  def __post_init__(self):
    if not self.applies_always and self.identity is None:
      raise ValueError(f"search space {self.name}: an element that applies with a probability "
                       "needs the Identity element, where it goes when it does not apply")

  @property
  def num_elements(self):
    return len(self.elements)

  @property
  def num_operations(self):
    return self.num_elements**2

  @property
  def applies_always(self):
    """Whether every element applies whenever drawn (no element has a probability below 1)."""
    return all(element.probability == 1 for element in self.elements)

  @property
  def probabilities(self):
    """float32 [E], the probability with which each element applies."""
    return np.array([element.probability for element in self.elements], np.float32)

  @property
  def operation_groups(self):
    """int [E]: each element's operation, numbered by first appearance, so the elements of one
    operation (its magnitudes, levels, probabilities) share a number (`--es_groups=operations`)."""
    names = list(dict.fromkeys(element.name for element in self.elements))
    return tuple(names.index(element.name) for element in self.elements)

  @property
  def identity(self):
    """The index of the Identity element (where an element that does not apply goes), or None."""
    return self.elements.index(IDENTITY) if IDENTITY in self.elements else None


def autoaugment_elements(policy_name):
  """The distinct slots of an AutoAugment policy's sub-policies as elements: (name, level,
  slot probability), the level None where the operation ignores it; ordered by Table 1's
  families, then level and probability, so that a family's elements are adjacent in the figures.

  A slot of probability 0 (CIFAR-10's ("Invert", 0.0, 3)) never applies, so it would be Identity's
  twin; it is left out.
  """
  families = [name for name, _ in _TABLE_1]
  ignores_level = lambda name: autoaugment.operation_parameter(policy_name, name, 0, 1, 1) is None
  slots = {Element(name, None if ignores_level(name) else level, probability)
           for subpolicy in autoaugment.POLICIES[policy_name]
           for name, probability, level in subpolicy if probability > 0}
  return tuple(sorted(slots, key=lambda e: (families.index(e.name), e.magnitude or 0,
                                            e.probability)))


PAPER = SearchSpace("paper", ELEMENTS)
# The paper's 36 keep their indices; Identity is element 36, so (Identity, Identity) is no
# operation and (Identity, e), (e, Identity) one.
PAPER_IDENTITY = SearchSpace("paper_identity", ELEMENTS + (IDENTITY,))
# AutoAugment's CIFAR-10 operations at their levels and probabilities (autoaugment.py's mapping),
# Identity last: OHL starts from random pairs of AutoAugment's operations and reweights them.
AUTOAUGMENT_CIFAR10 = SearchSpace(
    "autoaugment_cifar10", autoaugment_elements("cifar10") + (IDENTITY,),
    autoaugment.level_parameter("cifar10"))
SEARCH_SPACES = {space.name: space
                 for space in (PAPER, PAPER_IDENTITY, AUTOAUGMENT_CIFAR10)}
# The paper's spaces share a prefix, so a paper element has one index in both.
assert PAPER_IDENTITY.elements[:NUM_ELEMENTS] == PAPER.elements


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
  """The `SearchSpace` of `num_elements` elements (36: paper, 37: paper_identity,
  42: autoaugment_cifar10).

  For functions that know the space only from a shape (a matrix [E, E], a vector [E²]).

  Raises:
    ValueError: no space has that many elements.
  """
  return _space_with("elements", num_elements)


def space_of_operations(num_operations):
  """The `SearchSpace` of `num_operations` operations (1296: paper, 1369:
  paper_identity, 1764: autoaugment_cifar10).

  Raises:
    ValueError: no space has that many operations.
  """
  return _space_with("operations", num_operations)


# ---------------------------------------------------------------------------
# The elements as operations of `ohl_tf.operations`: (name, magnitude) read by the space's
# parameter function.
# ---------------------------------------------------------------------------

def element_table(space=PAPER):
  """The `operations.OperationTable` of a space's elements, under the space's parameter function.

  Its kernels are the 8 of the paper's elements (no Identity branch or partition in the paper
  space), 9 with Identity. Elements that differ only in their probability share an operation id
  (`_operation_ids`). Cached: one table per space.
  """
  return operations.compile_operations(
      tuple((element.name, element.magnitude) for element in space.elements), space.parameter)


@functools.cache
def _operation_ids(space):
  """int32 [E], element e's operation id in `element_table(space)`; None where that is e."""
  operations_of_table = element_table(space).operations
  ids = np.array([operations_of_table.index((e.name, e.magnitude)) for e in space.elements],
                 np.int32)
  return None if np.array_equal(ids, np.arange(space.num_elements)) else ids


def _apply_element(images, element, sign, space):
  """Element `element` of `space` with `sign` per image: Identity where the sign is 0 (drawn, does
  not apply), through the table's operation id of the element."""
  if not space.applies_always:  # sign 0: drawn, but does not apply (`draw_signs`)
    element = tf.where(tf.equal(sign, 0), space.identity, element)
  ids = _operation_ids(space)
  if ids is not None:
    element = tf.gather(ids, element)
  return operations.apply_operations(images, element_table(space), element, sign)


# ---------------------------------------------------------------------------
# Argument checks: wrong input raises, never wraps or clips silently.
# ---------------------------------------------------------------------------

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


def _check_signs(signs, name, space):
  if space.applies_always:
    return _checked(signs, tf.debugging.assert_equal(tf.abs(signs), 1,
                                                     message=f"{name} must be -1 or +1"))
  return _checked(signs, tf.debugging.assert_less_equal(
      tf.abs(signs), 1, message=f"{name} must be -1, +1 or 0 (does not apply)"))


# ---------------------------------------------------------------------------
# Public API.
# ---------------------------------------------------------------------------

def draw_signs(op, seed=None, space=PAPER):
  """The signs of operations `op`, one per element: -1 or +1 uniformly, and 0 where the element
  does not apply (with 1 - its probability, in a space where not every element applies always).

  The ±1 are `operations.sample_signs`' (so the paper's spaces draw what they always drew); the
  applications come from a stream folded from `seed`.

  Args:
    op: int [B] or a scalar, operation indices of `space`.
    seed: optional int [2]; stateless when given.
    space: the `SearchSpace` of the operations.

  Returns:
    int32 of shape op.shape + [2].
  """
  op = tf.convert_to_tensor(op, tf.int32)
  shape = tf.concat([tf.shape(op), [2]], 0)
  signs = operations.sample_signs(shape, seed)
  if space.applies_always:
    return signs
  elements = tf.stack([op // space.num_elements, op % space.num_elements], axis=-1)
  if seed is None:
    uniform = tf.random.uniform(shape)
  else:
    uniform = tf.random.stateless_uniform(
        shape, tf.random.experimental.stateless_fold_in(operations.check_seed(seed), 1))
  # AutoAugment applies a slot when random.random() < probability.
  return tf.where(uniform < tf.gather(space.probabilities, elements), signs, 0)


def apply_element(images, element, sign, space=PAPER):
  """Applies one element per image, as Pillow would (docs/search_space.md).

  Args:
    images: uint8 [B,H,W,3] (batched path) or [H,W,3] (per-image path, a switch).
    element: int [B] (or a scalar for one image), element indices in [0, E) of `space`.
    sign: int [B] (or a scalar), each -1 or +1; ignored by elements without a direction. In a
      space whose elements apply with a probability, 0 too: the element does not apply.
    space: the `SearchSpace` the indices belong to (default the paper's, E = 36).

  Returns:
    uint8 of the shape of `images`.

  Raises:
    ValueError: images not uint8 [B,H,W,3] or [H,W,3] of at least 3x3, or mismatched shapes.
    TypeError: a non-integer index or sign.
    tf.errors.InvalidArgumentError: an index or sign out of range (at run time in a graph).
  """
  images = operations.check_images(images)
  element = _check_range(_check_indices(element, "element", images), "element",
                         space.num_elements)
  sign = _check_signs(_check_indices(sign, "sign", images), "sign", space)
  return _apply_element(images, element, sign, space)


def apply_operation(images, op, signs=None, seed=None, space=PAPER):
  """Applies operation k = E e1 + e2 per image: e1, then e2 (paper eq. 7).

  Args:
    images: uint8 [B,H,W,3] (batched path) or [H,W,3] (per-image path).
    op: int [B] (or a scalar for one image), operation indices in [0, E²) of `space`.
    signs: int [B,2] (or [2]), the signs of e1 and e2, each -1 or +1 (or 0, as in
      `apply_element`); drawn by `draw_signs` if None.
    seed: optional int [2], makes the drawn signs stateless (ignored when `signs` is given).
    space: the `SearchSpace` of the operations (default the paper's: E = 36, 1296 operations).

  Returns and raises as `apply_element`.
  """
  images = operations.check_images(images)
  op = _check_range(_check_indices(op, "op", images), "op", space.num_operations)
  if signs is None:
    signs = draw_signs(op, seed, space)
  signs = _check_signs(_check_indices(signs, "signs", images, trailing=(2,)), "signs", space)
  return _apply_operation(images, op, signs, space)


def apply_drawn_operation(images, op, signs, space=PAPER):
  """`apply_operation` for an `op` and `signs` drawn in range, without the run-time checks.

  For the input pipeline, whose ops (`policy.draw_operations`) and signs (`draw_signs`) are
  valid by construction: the range checks add a dozen small ops
  per image to the per-image map. The dtype and shape checks remain (per image they run once,
  when the map is traced). Out-of-range values give undefined results here instead of an error.

  Args:
    images: uint8 [B,H,W,3] or [H,W,3].
    op: int [B] (or a scalar), in [0, E²) of `space`.
    signs: int [B,2] (or [2]), each -1 or +1 (or 0, as in `apply_element`).
    space: the `SearchSpace` of the operations (default the paper's).

  Returns:
    uint8 of the shape of `images`, the bytes of `apply_operation(images, op, signs)`.
  """
  images = operations.check_images(images)
  return _apply_operation(images, _check_indices(op, "op", images),
                          _check_indices(signs, "signs", images, trailing=(2,)), space)


def _apply_operation(images, op, signs, space):
  # Large images take both elements in one loop over the batch, not one loop per element.
  return operations.map_if_large(functools.partial(_apply_elements, space=space), images, op,
                                 signs)


def _apply_elements(images, op, signs, space):
  first = _apply_element(images, op // space.num_elements, signs[..., 0], space)
  return _apply_element(first, op % space.num_elements, signs[..., 1], space)
