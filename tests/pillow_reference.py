"""Pillow reference for the 36 OHL-Auto-Aug elements and Identity (docs/search_space.md).

Written from the design notes only, independently of `ohl_tf/augment.py`, so that
the tests comparing the two check the implementation rather than restate it.
Every element is exactly the Pillow call of docs/search_space.md:

  ShearX/ShearY/TranslateX/TranslateY: `img.transform(size, AFFINE, coeffs, NEAREST,
      fillcolor=(128, 128, 128))` with the coefficients of the table.
  Rotate: `img.rotate(s * m, resample=NEAREST, fillcolor=(128, 128, 128))`.
  Color: `ImageEnhance.Color(img).enhance(1 + s * m)`.
  Contrast/Sharpness/Brightness: `ImageEnhance.X(img).enhance(1 + s * (m - 1))`.
  Posterize: `ImageOps.posterize(img, round(m))` (4, 6 and 7 bits).
  Solarize: `ImageOps.solarize(img, threshold=m)`.
  AutoContrast/Equalize/Invert: the ImageOps function; the sign is ignored.
  Identity (element 36 of the paper_identity space only): the image itself (`img.copy()`).

Example:
  >>> out = pillow_operation(Image.fromarray(x), 36 * 12 + 35, (1, -1))  # Rotate 10, Invert
"""

import collections

from PIL import Image
from PIL import ImageEnhance
from PIL import ImageOps

FILL = (128, 128, 128)

Element = collections.namedtuple("Element", ["name", "magnitude"])

# docs/search_space.md, in order: (name, magnitudes); None for parameterless elements.
_FAMILIES = (
    ("ShearX", (0.1, 0.2, 0.3)),
    ("ShearY", (0.1, 0.2, 0.3)),
    ("TranslateX", (0.15, 0.3, 0.45)),
    ("TranslateY", (0.15, 0.3, 0.45)),
    ("Rotate", (10.0, 20.0, 30.0)),
    ("Color", (0.3, 0.6, 0.9)),
    ("Posterize", (4.4, 5.6, 6.8)),
    ("Solarize", (26.0, 102.0, 179.0)),
    ("Contrast", (1.3, 1.6, 1.9)),
    ("Sharpness", (1.3, 1.6, 1.9)),
    ("Brightness", (1.3, 1.6, 1.9)),
    ("AutoContrast", (None,)),
    ("Equalize", (None,)),
    ("Invert", (None,)),
)

ELEMENTS = tuple(Element(name, m) for name, mags in _FAMILIES for m in mags)
NUM_ELEMENTS = len(ELEMENTS)  # 36
# The paper_identity space: the paper's 36, then Identity as element 36.
IDENTITY_ELEMENTS = ELEMENTS + (Element("Identity", None),)
GEOMETRIC = frozenset(("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate"))

assert NUM_ELEMENTS == 36, NUM_ELEMENTS


def _affine(img, coeffs):
  return img.transform(img.size, Image.Transform.AFFINE, coeffs,
                       Image.Resampling.NEAREST, fillcolor=FILL)


def _enhance(enhancer, factor_fn):
  return lambda img, m, s: enhancer(img).enhance(factor_fn(m, s))


def _factor_around_one(m, s):
  return 1.0 + s * (m - 1.0)


# name -> f(img, m, s), each the Pillow call of docs/search_space.md.
_OPS = {
    "ShearX": lambda img, m, s: _affine(img, (1, s * m, 0, 0, 1, 0)),
    "ShearY": lambda img, m, s: _affine(img, (1, 0, 0, s * m, 1, 0)),
    "TranslateX": lambda img, m, s: _affine(img, (1, 0, s * m * img.size[0], 0, 1, 0)),
    "TranslateY": lambda img, m, s: _affine(img, (1, 0, 0, 0, 1, s * m * img.size[1])),
    "Rotate": lambda img, m, s: img.rotate(
        s * m, resample=Image.Resampling.NEAREST, fillcolor=FILL),
    "Color": _enhance(ImageEnhance.Color, lambda m, s: 1.0 + s * m),
    "Posterize": lambda img, m, s: ImageOps.posterize(img, int(round(m))),
    "Solarize": lambda img, m, s: ImageOps.solarize(img, threshold=m),
    "Contrast": _enhance(ImageEnhance.Contrast, _factor_around_one),
    "Sharpness": _enhance(ImageEnhance.Sharpness, _factor_around_one),
    "Brightness": _enhance(ImageEnhance.Brightness, _factor_around_one),
    "AutoContrast": lambda img, m, s: ImageOps.autocontrast(img),
    "Equalize": lambda img, m, s: ImageOps.equalize(img),
    "Invert": lambda img, m, s: ImageOps.invert(img),
    "Identity": lambda img, m, s: img.copy(),
}
assert set(_OPS) == {name for name, _ in _FAMILIES} | {"Identity"}


def element_id(element, sign):
  """A readable test id such as "ShearX_0.1_+1", "Invert_-1" or "Identity_+1"."""
  name, m = IDENTITY_ELEMENTS[element]
  sign_str = "+1" if sign > 0 else "-1"
  return f"{name}_{sign_str}" if m is None else f"{name}_{m:g}_{sign_str}"


def pillow_element(image, element, sign, elements=ELEMENTS):
  """Applies element `element` (0..35) with sign `sign` (+1 or -1) the Pillow way.

  Args:
    image: an RGB `PIL.Image.Image`.
    element: int in [0, len(elements)), the index of docs/search_space.md.
    sign: +1 or -1; ignored by AutoContrast, Equalize, Invert and Identity.
    elements: the space's elements, ELEMENTS (the paper's) or IDENTITY_ELEMENTS.

  Returns:
    A new RGB `PIL.Image.Image` of the same size.
  """
  element, sign = int(element), int(sign)
  if not 0 <= element < len(elements):
    raise ValueError(f"element must be in [0, {len(elements)}). Received: element={element}")
  if sign not in (-1, 1):
    raise ValueError(f"sign must be +1 or -1. Received: sign={sign}")
  if image.mode != "RGB":
    raise ValueError(f"image must be RGB. Received: mode={image.mode}")
  name, m = elements[element]
  return _OPS[name](image, m, sign)


def pillow_operation(image, op, signs, elements=ELEMENTS):
  """Applies operation `op` = E * e1 + e2 as e2(e1(image)), the Pillow way (E = len(elements)).

  Args:
    image: an RGB `PIL.Image.Image`.
    op: int in [0, E²): [0, 1296) in the paper's space.
    signs: two signs (+1/-1), for e1 and e2.
    elements: the space's elements, ELEMENTS (the paper's) or IDENTITY_ELEMENTS.

  Returns:
    A new RGB `PIL.Image.Image`.
  """
  op, num_elements = int(op), len(elements)
  if not 0 <= op < num_elements ** 2:
    raise ValueError(f"op must be in [0, {num_elements ** 2}). Received: op={op}")
  e1, e2 = divmod(op, num_elements)
  s1, s2 = (int(s) for s in signs)
  return pillow_element(pillow_element(image, e1, s1, elements), e2, s2, elements)
