"""Pillow reference for AutoAugment's policies, written from the released code's semantics.

Independent of `ohl_tf/autoaugment.py`, so that tests comparing the two check the implementation
rather than restate it:
  * the policies are typed again, in the paper's appendix notation "(Name,probability,level)",
    from the paper's tables (arXiv 1805.09501 appendix; also DeepVoltaire/AutoAugment
    autoaugment.py), not from the module's tuples;
  * each operation is the Pillow call of tensorflow/models research/autoaugment/
    augmentation_transforms.py at any level 0..10 (PARAMETER_MAX = 10), in float arithmetic as
    that file writes it, with two changes of docs/search_space.md: RGB images with fillcolor
    (128, 128, 128) instead of RGBA with transparent fill, and translations scaled with the size
    (10 pixels per 32, or 150 per 331 for the ImageNet policy) instead of a fixed 32x32 canvas.

Example:
  >>> out = pillow_subpolicy(Image.fromarray(x), "cifar10", 3, applied=(True, True), signs=(1, -1))
"""

import re

from PIL import Image
from PIL import ImageEnhance
from PIL import ImageOps

FILL = (128, 128, 128)
PARAMETER_MAX = 10
GEOMETRIC = frozenset(("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate"))
SIGNED = GEOMETRIC  # augmentation_transforms.py negates only these, with probability 1/2.

_CIFAR10 = """
(Invert,0.1,7) (Contrast,0.2,6)          (Rotate,0.7,2) (TranslateX,0.3,9)
(Sharpness,0.8,1) (Sharpness,0.9,3)      (ShearY,0.5,8) (TranslateY,0.7,9)
(AutoContrast,0.5,8) (Equalize,0.9,2)    (ShearY,0.2,7) (Posterize,0.3,7)
(Color,0.4,3) (Brightness,0.6,7)         (Sharpness,0.3,9) (Brightness,0.7,9)
(Equalize,0.6,5) (Equalize,0.5,1)        (Contrast,0.6,7) (Sharpness,0.6,5)
(Color,0.7,7) (TranslateX,0.5,8)         (Equalize,0.3,7) (AutoContrast,0.4,8)
(TranslateY,0.4,3) (Sharpness,0.2,6)     (Brightness,0.9,6) (Color,0.2,8)
(Solarize,0.5,2) (Invert,0.0,3)          (Equalize,0.2,0) (AutoContrast,0.6,0)
(Equalize,0.2,8) (Equalize,0.6,4)        (Color,0.9,9) (Equalize,0.6,6)
(AutoContrast,0.8,4) (Solarize,0.2,8)    (Brightness,0.1,3) (Color,0.7,0)
(Solarize,0.4,5) (AutoContrast,0.9,3)    (TranslateY,0.9,9) (TranslateY,0.7,9)
(AutoContrast,0.9,2) (Solarize,0.8,3)    (Equalize,0.8,8) (Invert,0.1,3)
(TranslateY,0.7,9) (AutoContrast,0.9,1)
"""

_IMAGENET = """
(Posterize,0.4,8) (Rotate,0.6,9)         (Solarize,0.6,5) (AutoContrast,0.6,5)
(Equalize,0.8,8) (Equalize,0.6,3)        (Posterize,0.6,7) (Posterize,0.6,6)
(Equalize,0.4,7) (Solarize,0.2,4)        (Equalize,0.4,4) (Rotate,0.8,8)
(Solarize,0.6,3) (Equalize,0.6,7)        (Posterize,0.8,5) (Equalize,1.0,2)
(Rotate,0.2,3) (Solarize,0.6,8)          (Equalize,0.6,8) (Posterize,0.4,6)
(Rotate,0.8,8) (Color,0.4,0)             (Rotate,0.4,9) (Equalize,0.6,2)
(Equalize,0.0,7) (Equalize,0.8,8)        (Invert,0.6,4) (Equalize,1.0,8)
(Color,0.6,4) (Contrast,1.0,8)           (Rotate,0.8,8) (Color,1.0,2)
(Color,0.8,8) (Solarize,0.8,7)           (Sharpness,0.4,7) (Invert,0.6,8)
(ShearX,0.6,5) (Equalize,1.0,9)          (Color,0.4,0) (Equalize,0.6,3)
(Equalize,0.4,7) (Solarize,0.2,4)        (Solarize,0.6,5) (AutoContrast,0.6,5)
(Invert,0.6,4) (Equalize,1.0,8)          (Color,0.6,4) (Contrast,1.0,8)
(Equalize,0.8,8) (Equalize,0.6,3)
"""

_SVHN = """
(ShearX,0.9,4) (Invert,0.2,3)            (ShearY,0.9,8) (Invert,0.7,5)
(Equalize,0.6,5) (Solarize,0.6,6)        (Invert,0.9,3) (Equalize,0.6,3)
(Equalize,0.6,1) (Rotate,0.9,3)          (ShearX,0.9,4) (AutoContrast,0.8,3)
(ShearY,0.9,8) (Invert,0.4,5)            (ShearY,0.9,5) (Solarize,0.2,6)
(Invert,0.9,6) (AutoContrast,0.8,1)      (Equalize,0.6,3) (Rotate,0.9,3)
(ShearX,0.9,4) (Solarize,0.3,3)          (ShearY,0.8,8) (Invert,0.7,4)
(Equalize,0.9,5) (TranslateY,0.6,6)      (Invert,0.9,4) (Equalize,0.6,7)
(Contrast,0.3,3) (Rotate,0.8,4)          (Invert,0.8,5) (TranslateY,0.0,2)
(ShearY,0.7,6) (Solarize,0.4,8)          (Invert,0.6,4) (Rotate,0.8,4)
(ShearY,0.3,7) (TranslateX,0.9,3)        (ShearX,0.1,6) (Invert,0.6,5)
(Solarize,0.7,2) (TranslateY,0.6,7)      (ShearY,0.8,4) (Invert,0.8,8)
(ShearX,0.7,9) (TranslateY,0.8,3)        (ShearY,0.8,5) (AutoContrast,0.7,3)
(ShearX,0.7,2) (Invert,0.1,5)
"""


def _parse(table):
  """Pairs consecutive "(Name,p,level)" entries, reading left to right, top to bottom."""
  ops = [(name, float(p), int(level))
         for name, p, level in re.findall(r"\((\w+),([\d.]+),(\d+)\)", table)]
  assert len(ops) == 50, len(ops)
  return tuple(zip(ops[0::2], ops[1::2]))


POLICIES = {"cifar10": _parse(_CIFAR10), "imagenet": _parse(_IMAGENET), "svhn": _parse(_SVHN)}


# ---------------------------------------------------------------------------
# augmentation_transforms.py, at any level.
# ---------------------------------------------------------------------------

def float_parameter(level, maxval):
  return float(level) * maxval / PARAMETER_MAX


def int_parameter(level, maxval):
  return int(level * maxval / PARAMETER_MAX)


def translate_max(policy, length):
  """The largest shift in pixels: 10 on 32-pixel images, or the paper's 150 on 331 (ImageNet)."""
  return 150 * length / 331 if policy == "imagenet" else 10 * length / 32


def _affine(img, coeffs):
  return img.transform(img.size, Image.Transform.AFFINE, coeffs, Image.Resampling.NEAREST,
                       fillcolor=FILL)


def _enhance(enhancer):
  return lambda img, level, sign, policy: enhancer(img).enhance(float_parameter(level, 1.8) + .1)


# name -> f(img, level, sign, policy).
_OPS = {
    "ShearX": lambda img, level, s, _: _affine(img, (1, s * float_parameter(level, 0.3), 0,
                                                     0, 1, 0)),
    "ShearY": lambda img, level, s, _: _affine(img, (1, 0, 0,
                                                     s * float_parameter(level, 0.3), 1, 0)),
    "TranslateX": lambda img, level, s, policy: _affine(
        img, (1, 0, s * int_parameter(level, translate_max(policy, img.size[0])), 0, 1, 0)),
    "TranslateY": lambda img, level, s, policy: _affine(
        img, (1, 0, 0, 0, 1, s * int_parameter(level, translate_max(policy, img.size[1])))),
    "Rotate": lambda img, level, s, _: img.rotate(s * int_parameter(level, 30),
                                                  resample=Image.Resampling.NEAREST,
                                                  fillcolor=FILL),
    "Posterize": lambda img, level, s, _: ImageOps.posterize(img, 4 - int_parameter(level, 4)),
    "Solarize": lambda img, level, s, _: ImageOps.solarize(img, 256 - int_parameter(level, 256)),
    "Color": _enhance(ImageEnhance.Color),
    "Contrast": _enhance(ImageEnhance.Contrast),
    "Brightness": _enhance(ImageEnhance.Brightness),
    "Sharpness": _enhance(ImageEnhance.Sharpness),
    "AutoContrast": lambda img, level, s, _: ImageOps.autocontrast(img),
    "Equalize": lambda img, level, s, _: ImageOps.equalize(img),
    "Invert": lambda img, level, s, _: ImageOps.invert(img),
}
NAMES = frozenset(_OPS)


def pillow_op(image, name, level, sign, policy="cifar10"):
  """Applies AutoAugment operation `name` at `level` with `sign` (+1/-1) the Pillow way.

  Args:
    image: an RGB `PIL.Image.Image`.
    name: an operation name, e.g. "Rotate".
    level: int in [0, 10].
    sign: +1 or -1; only geometric operations use it.
    policy: the policy name; only translations depend on it.

  Returns:
    A new RGB `PIL.Image.Image` of the same size.
  """
  if name not in _OPS:
    raise ValueError(f"name must be one of {sorted(_OPS)}. Received: name={name!r}")
  if not 0 <= int(level) <= PARAMETER_MAX:
    raise ValueError(f"level must be in [0, {PARAMETER_MAX}]. Received: level={level}")
  if sign not in (-1, 1):
    raise ValueError(f"sign must be +1 or -1. Received: sign={sign}")
  if image.mode != "RGB":
    raise ValueError(f"image must be RGB. Received: mode={image.mode}")
  return _OPS[name](image, int(level), int(sign), policy)


def pillow_subpolicy(image, policy, index, applied, signs):
  """Sub-policy `index` of `policy` with given decisions: each applied operation, in order.

  Args:
    image: an RGB `PIL.Image.Image`.
    policy: "cifar10", "imagenet" or "svhn".
    index: the sub-policy, in [0, 25).
    applied: two booleans, whether the first and second operation apply.
    signs: two signs (+1/-1).

  Returns:
    A new RGB `PIL.Image.Image`.
  """
  for (name, _, level), apply, sign in zip(POLICIES[policy][index], applied, signs):
    if apply:
      image = pillow_op(image, name, level, int(sign), policy)
  return image
