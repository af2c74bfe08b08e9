"""How closely tf.image, Keras and keras-cv reproduce Pillow on the 36 OHL elements.

The project rule (docs/search_space.md) is to use a library function where it matches Pillow
within the tolerances of docs/correctness.md, and our own graph code (`ohl_tf/pil_ops.py`) where
none does. This script is the measurement behind that choice. For every element family, every
magnitude and both signs, it applies the closest library functions to the same real CIFAR-10
images as the Pillow reference call of docs/search_space.md, and prints per (family, function):
the fraction of pixel values exactly equal to Pillow's, the fraction within +-1, the maximum and
mean absolute difference, and how many of the (magnitude, sign) cases meet the section 6
tolerance (geometric: >= 98% equal; others: >= 99% within +-1 and MAE <= 0.5). The row
`ohl_tf.augment.apply_element` is the project's own implementation, as the reference.

Float outputs are converted back to uint8 both by rounding and by truncation (after clipping to
[0, 255]); the table shows the better of the two (more cases within tolerance, then more values
exactly equal) and names it in the `conv` column.

Library layers are used as their docs say, with a fixed factor given as a tuple (f, f). Where the
documented factor range cannot express Pillow's factor, the cases are counted as not run, and for
keras-cv a `keras_cv.core.ConstantFactorSampler` (a documented argument type, outside the
documented range) is measured as a second row.

Run from the repository root (about 20 s on 2 CPU cores, most of it importing TF and keras-cv):
  .venv/bin/python benchmarks/library_fidelity.py
  .venv/bin/python benchmarks/library_fidelity.py --per_case   # one row per magnitude and sign
  .venv/bin/python benchmarks/library_fidelity.py --mosaic     # 224x224 images instead of 32x32
"""

import collections
import dataclasses
import os
import pathlib
import sys
import time
from typing import Callable

from absl import app
from absl import flags
import numpy as np
from PIL import Image
from PIL import ImageEnhance
from PIL import ImageOps

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import tensorflow as tf  # pylint: disable=g-import-not-at-top,wrong-import-position

_REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
# Run as a plain script, sys.path[0] is benchmarks/: make `ohl_tf` importable from the root.
if str(_REPO_ROOT) not in sys.path:
  sys.path.insert(0, str(_REPO_ROOT))
from ohl_tf import augment  # pylint: disable=g-import-not-at-top,wrong-import-position
from ohl_tf import pil_ops  # pylint: disable=g-import-not-at-top,wrong-import-position
from ohl_tf.datasets import known_answer  # pylint: disable=g-import-not-at-top,wrong-import-position

try:
  import keras  # pylint: disable=g-import-not-at-top
except ImportError:  # Reported as skipped rows, the rest still runs.
  keras = None
try:
  import keras_cv  # pylint: disable=g-import-not-at-top
except ImportError:
  keras_cv = None

_DATA_DIR = flags.DEFINE_string(
    "data_dir", str(known_answer.DEFAULT_DATA_DIR),
    f"Folder with train/<class>/*.png (the real CIFAR-10 images; env {known_answer.DATA_ENV}).")
_NUM_IMAGES = flags.DEFINE_integer(
    "num_images", 256, "Images measured, taken evenly over the sorted paths (all classes).")
_PER_CASE = flags.DEFINE_bool(
    "per_case", False, "Also print one row per (magnitude, sign) case.")
_MOSAIC = flags.DEFINE_bool(
    "mosaic", False, "Measure 224x224 mosaics of 7x7 CIFAR images (the ImageNet size) instead "
    "of the 32x32 images: rounding ties of the geometric elements depend on the size.")

GEOMETRIC = ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate")
GEOMETRIC_MIN_EQUAL = 0.98  # docs/correctness.md
MIN_WITHIN_ONE = 0.99
MAX_MAE = 0.5
FILL = 128  # Pillow's fillcolor (128, 128, 128)
SIGNS = (-1, 1)


# ---------------------------------------------------------------------------
# Data: real CIFAR-10 images.
# ---------------------------------------------------------------------------

def load_images(data_dir, limit):
  """uint8 [N,32,32,3]: every len/limit-th PNG of data_dir/train, sorted by path."""
  train = pathlib.Path(data_dir) / "train"
  paths = sorted(train.glob("*/*.png"))
  if not paths:
    sys.exit(f"No images in {train}/<class>/*.png: this benchmark needs the real CIFAR-10 "
             f"images (env {known_answer.DATA_ENV} or --data_dir).")
  paths = paths[::max(1, len(paths) // limit)][:limit]
  return np.stack([np.asarray(Image.open(p).convert("RGB")) for p in paths])


def mosaics(images, tiles=7):
  """uint8 [N // tiles**2, 32 tiles, 32 tiles, 3]: real images of ImageNet size, sharp edges."""
  count = len(images) // tiles**2
  if not count:
    sys.exit(f"--mosaic needs at least {tiles**2} images. Received: --num_images={len(images)}")
  grid = images[:count * tiles**2].reshape(count, tiles, tiles, *images.shape[1:])
  size = tiles * images.shape[1]
  return grid.transpose(0, 1, 3, 2, 4, 5).reshape(count, size, size, 3).copy()


# ---------------------------------------------------------------------------
# Pillow reference: exactly the calls of docs/search_space.md.
# ---------------------------------------------------------------------------

def enhance_factor(name, magnitude, sign):
  """ImageEnhance factor: Color 1 + s m; Contrast, Sharpness, Brightness 1 + s (m - 1)."""
  if name == "Color":
    return 1.0 + sign * magnitude
  return 1.0 + sign * (magnitude - 1.0)


def pillow_matrix(name, magnitude, sign, width, height):
  """The inverse affine coefficients (output -> input) Pillow uses for a geometric element."""
  v = sign * magnitude
  if name == "Rotate":
    return pil_ops.rotate_matrix(v, width, height)  # Image.rotate's own matrix, line by line.
  return {
      "ShearX": (1, v, 0, 0, 1, 0),
      "ShearY": (1, 0, 0, v, 1, 0),
      "TranslateX": (1, 0, v * width, 0, 1, 0),
      "TranslateY": (1, 0, 0, 0, 1, v * height),
  }[name]


def _affine(img, name, magnitude, sign):
  coeffs = pillow_matrix(name, magnitude, sign, *img.size)
  return img.transform(img.size, Image.Transform.AFFINE, coeffs, Image.Resampling.NEAREST,
                       fillcolor=(FILL,) * 3)


def _rotate(img, name, magnitude, sign):
  del name
  return img.rotate(sign * magnitude, resample=Image.Resampling.NEAREST, fillcolor=(FILL,) * 3)


def _enhance(img, name, magnitude, sign):
  return getattr(ImageEnhance, name)(img).enhance(enhance_factor(name, magnitude, sign))


# name -> f(img, name, magnitude, sign), each the Pillow call of docs/search_space.md.
_PILLOW = {
    "ShearX": _affine,
    "ShearY": _affine,
    "TranslateX": _affine,
    "TranslateY": _affine,
    "Rotate": _rotate,
    "Color": _enhance,
    "Posterize": lambda img, n, m, s: ImageOps.posterize(img, round(m)),
    "Solarize": lambda img, n, m, s: ImageOps.solarize(img, threshold=m),
    "Contrast": _enhance,
    "Sharpness": _enhance,
    "Brightness": _enhance,
    "AutoContrast": lambda img, n, m, s: ImageOps.autocontrast(img),
    "Equalize": lambda img, n, m, s: ImageOps.equalize(img),
    "Invert": lambda img, n, m, s: ImageOps.invert(img),
}


def pillow_batch(images, name, magnitude, sign):
  """uint8 [B,H,W,3]: the Pillow reference, image by image."""
  return np.stack([np.asarray(_PILLOW[name](Image.fromarray(x), name, magnitude, sign))
                   for x in images])


# ---------------------------------------------------------------------------
# Candidates: fn(images uint8 [B,H,W,3], name, magnitude, sign) -> uint8 or float array.
# ---------------------------------------------------------------------------

class NotConstructible(Exception):
  """The library cannot express this case (e.g. the factor is outside its documented range)."""


@dataclasses.dataclass(frozen=True)
class Candidate:
  """A library function measured on `families`; `fn` maps (images, name, m, s) to an array."""
  families: tuple[str, ...]
  label: str
  fn: Callable[..., np.ndarray]


def _as_float(images):
  return tf.constant(images, tf.float32)


def _layer(cls, **kwargs):
  """Builds a layer; a ValueError from its argument checks means the case cannot be expressed."""
  try:
    return cls(**kwargs)
  except ValueError as e:
    raise NotConstructible(str(e).splitlines()[0]) from e


def _call(layer, images):
  return np.asarray(layer(_as_float(images), training=True))


# --- Reference: the project's own kernels.

def ours(images, name, magnitude, sign):
  element = augment.ELEMENTS.index(augment.Element(name, magnitude))
  batch = len(images)
  return augment.apply_element(images, tf.fill([batch], element),
                               tf.fill([batch], sign)).numpy()


# --- Geometry.

def projective_transform(half_pixel):
  """tf.raw_ops.ImageProjectiveTransformV3 with Pillow's inverse affine matrix.

  Both map an output point to an input point. TF evaluates the matrix at integer output
  coordinates and rounds; Pillow at pixel centres (x + 0.5, y + 0.5) and floors. With
  half_pixel, the offsets absorb that: c' = c + (a + b - 1) / 2, f' = f + (d + e - 1) / 2.
  """
  def fn(images, name, magnitude, sign):
    height, width = images.shape[1:3]
    a, b, c, d, e, f = pillow_matrix(name, magnitude, sign, width, height)
    if half_pixel:
      c, f = c + (a + b - 1) / 2, f + (d + e - 1) / 2
    transforms = tf.constant([[a, b, c, d, e, f, 0, 0]] * len(images), tf.float32)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=transforms, output_shape=[height, width],
        fill_value=float(FILL), interpolation="NEAREST", fill_mode="CONSTANT").numpy()
  return fn


def translation_layer(module):
  """`RandomTranslation` with a fixed factor: output(x) = input(x - factor * size)."""
  def fn(images, name, magnitude, sign):
    shift = -sign * magnitude  # Pillow's offset is output -> input, the layer's the opposite.
    factors = {"height_factor": (0.0, 0.0), "width_factor": (0.0, 0.0)}
    factors["width_factor" if name == "TranslateX" else "height_factor"] = (shift, shift)
    return _call(_layer(module.layers.RandomTranslation, fill_mode="constant",
                        interpolation="nearest", fill_value=float(FILL), **factors), images)
  return fn


def rotation_layer(module):
  """`RandomRotation` with a fixed factor, a fraction of a full turn, counter-clockwise."""
  def fn(images, name, magnitude, sign):
    del name
    turn = sign * magnitude / 360.0  # Same sign as Pillow's angle (same matrix, output -> input).
    return _call(_layer(module.layers.RandomRotation, factor=(turn, turn), fill_mode="constant",
                        interpolation="nearest", fill_value=float(FILL)), images)
  return fn


# --- Colour and enhance.

def gray_blend(images, name, magnitude, sign):
  """tf.image.rgb_to_grayscale as the degenerate, then Pillow's float32 blend."""
  gray = tf.cast(tf.image.rgb_to_grayscale(images), tf.float32)  # uint8 in, uint8 out
  factor = np.float32(enhance_factor(name, magnitude, sign))
  return (gray + factor * (_as_float(images) - gray)).numpy()


def adjust_saturation(images, name, magnitude, sign):
  """The naive choice: HSV saturation scaling, not a blend with the L image."""
  factor = enhance_factor(name, magnitude, sign)
  return (tf.image.adjust_saturation(_as_float(images) / 255.0, factor) * 255.0).numpy()


def adjust_contrast(images, name, magnitude, sign):
  """Per-channel mean (Pillow: one mean of the L image, rounded)."""
  return tf.image.adjust_contrast(_as_float(images),
                                  enhance_factor(name, magnitude, sign)).numpy()


def adjust_brightness(images, name, magnitude, sign):
  """Additive: x + (f - 1) * 255, where Pillow multiplies x * f."""
  delta = enhance_factor(name, magnitude, sign) - 1.0
  return (tf.image.adjust_brightness(_as_float(images) / 255.0, delta) * 255.0).numpy()


def multiply(images, name, magnitude, sign):
  """Pillow's blend with a black image, x * f, in float32."""
  factor = np.float32(enhance_factor(name, magnitude, sign))
  return (_as_float(images) * factor).numpy()


def keras_cv_blend_layer(cls_name, sampler, **kwargs):
  """keras-cv RandomColorDegeneration / RandomSharpness: out = x + factor (degenerate - x).

  Pillow's enhance is degenerate + f (x - degenerate), so factor = 1 - f: in the documented range
  [0, 1] only for f <= 1 (sign -1). `sampler` passes a ConstantFactorSampler(1 - f) instead.
  """
  def fn(images, name, magnitude, sign):
    keras_factor = 1.0 - enhance_factor(name, magnitude, sign)
    factor = (keras_cv.core.ConstantFactorSampler(keras_factor) if sampler
              else (keras_factor, keras_factor))
    return _call(_layer(getattr(keras_cv.layers, cls_name), factor=factor, **kwargs), images)
  return fn


def keras_color_degeneration(images, name, magnitude, sign):
  """keras.layers.RandomColorDegeneration: x + factor (gray - x), factor in [-1, 1]."""
  keras_factor = 1.0 - enhance_factor(name, magnitude, sign)
  return _call(_layer(keras.layers.RandomColorDegeneration, factor=(keras_factor, keras_factor),
                      value_range=(0, 255)), images)


def keras_sharpness(images, name, magnitude, sign):
  """keras.layers.RandomSharpness: x + (1 - 2 factor)(smooth - x), so factor = f / 2."""
  half = enhance_factor(name, magnitude, sign) / 2.0
  return _call(_layer(keras.layers.RandomSharpness, factor=(half, half), value_range=(0, 255)),
               images)


# --- Point operations and histograms.

def keras_cv_posterization(images, name, magnitude, sign):
  del name, sign
  return _call(keras_cv.layers.Posterization(value_range=(0, 255), bits=round(magnitude)), images)


def keras_posterization(images, name, magnitude, sign):
  del name, sign
  bits = round(magnitude)
  return _call(_layer(keras.layers.RandomPosterization, factor=(bits, bits),
                      value_range=(0, 255)), images)


def keras_cv_solarization(images, name, magnitude, sign):
  """Pixels >= threshold become 255 - x; Invert is the default threshold 0."""
  del sign
  threshold = magnitude if name == "Solarize" else 0.0
  return _call(keras_cv.layers.Solarization(value_range=(0, 255),
                                            threshold_factor=(threshold, threshold)), images)


def keras_invert(images, name, magnitude, sign):
  del name, magnitude, sign
  return _call(_layer(keras.layers.RandomInvert, factor=(1.0, 1.0), value_range=(0, 255)), images)


def histogram_layer(factory):
  def fn(images, name, magnitude, sign):
    del name, magnitude, sign
    return _call(factory(value_range=(0, 255)), images)
  return fn


def candidates():
  """The candidates of every family, the project's own kernels first; and the skipped ones."""
  result = [Candidate(tuple(_PILLOW), "ohl_tf.augment.apply_element (ours)", ours)]
  for half_pixel in (False, True):
    result.append(Candidate(
        GEOMETRIC, "tf.raw_ops.ImageProjectiveTransformV3 "
        + ("(half-pixel matrix)" if half_pixel else "(Pillow matrix)"),
        projective_transform(half_pixel)))
  result += [
      Candidate(("Color",), "tf.image.rgb_to_grayscale + float32 blend", gray_blend),
      Candidate(("Color",), "tf.image.adjust_saturation (naive)", adjust_saturation),
      Candidate(("Contrast",), "tf.image.adjust_contrast", adjust_contrast),
      Candidate(("Brightness",), "tf.image.adjust_brightness (additive)", adjust_brightness),
      Candidate(("Brightness",), "float32 x * f (tf.multiply)", multiply),
  ]
  skipped = []
  if keras_cv is None:
    skipped.append("keras_cv: not importable, its layers are not measured.")
  else:
    result += [
        Candidate(("TranslateX", "TranslateY"), "keras_cv.layers.RandomTranslation((f, f))",
                  translation_layer(keras_cv)),
        Candidate(("Rotate",), "keras_cv.layers.RandomRotation((f, f))",
                  rotation_layer(keras_cv)),
        Candidate(("Color",), "keras_cv.layers.RandomColorDegeneration((1-f, 1-f))",
                  keras_cv_blend_layer("RandomColorDegeneration", sampler=False)),
        Candidate(("Color",), "keras_cv.layers.RandomColorDegeneration(Constant(1-f))",
                  keras_cv_blend_layer("RandomColorDegeneration", sampler=True)),
        Candidate(("Sharpness",), "keras_cv.layers.RandomSharpness((1-f, 1-f))",
                  keras_cv_blend_layer("RandomSharpness", sampler=False, value_range=(0, 255))),
        Candidate(("Sharpness",), "keras_cv.layers.RandomSharpness(Constant(1-f))",
                  keras_cv_blend_layer("RandomSharpness", sampler=True, value_range=(0, 255))),
        Candidate(("Posterize",), "keras_cv.layers.Posterization", keras_cv_posterization),
        Candidate(("Solarize", "Invert"), "keras_cv.layers.Solarization", keras_cv_solarization),
        Candidate(("AutoContrast",), "keras_cv.layers.AutoContrast",
                  histogram_layer(keras_cv.layers.AutoContrast)),
        Candidate(("Equalize",), "keras_cv.layers.Equalization",
                  histogram_layer(keras_cv.layers.Equalization)),
    ]
    skipped.append("keras_cv.layers.RandomShear: negates the sampled factor at random per image "
                   "(batch_random_inversion), so no fixed-sign shear can be built.")
  if keras is None:
    skipped.append("keras: not importable, its layers are not measured.")
  else:
    result += [
        Candidate(("TranslateX", "TranslateY"), "keras.layers.RandomTranslation((f, f))",
                  translation_layer(keras)),
        Candidate(("Rotate",), "keras.layers.RandomRotation((f, f))", rotation_layer(keras)),
        Candidate(("Color",), "keras.layers.RandomColorDegeneration((1-f, 1-f))",
                  keras_color_degeneration),
        Candidate(("Sharpness",), "keras.layers.RandomSharpness((f/2, f/2))", keras_sharpness),
        Candidate(("Posterize",), "keras.layers.RandomPosterization((b, b))",
                  keras_posterization),
        Candidate(("Invert",), "keras.layers.RandomInvert((1, 1))", keras_invert),
        Candidate(("AutoContrast",), "keras.layers.AutoContrast",
                  histogram_layer(keras.layers.AutoContrast)),
        Candidate(("Equalize",), "keras.layers.Equalization",
                  histogram_layer(keras.layers.Equalization)),
    ]
    skipped += [
        "keras.layers.RandomShear: random sign per image, like keras-cv's.",
        "keras.layers.Solarization: thresholds drawn from U(factor[0], factor[1] * 255), so no "
        "fixed threshold other than 0 (that is Invert, measured as RandomInvert).",
        "keras.layers.RandomContrast: factor drawn from U(1 - lower, 1 + upper), lower <= upper, "
        "so a fixed factor < 1 cannot be built.",
        "keras(_cv).layers.RandomBrightness: additive like tf.image.adjust_brightness.",
    ]
  return result, skipped


# ---------------------------------------------------------------------------
# Comparison against Pillow.
# ---------------------------------------------------------------------------

@dataclasses.dataclass
class Stats:
  """Sums over pixel values of one or more cases."""
  count: int = 0
  equal: int = 0
  within_one: int = 0
  abs_sum: int = 0
  max_diff: int = 0
  cases_run: int = 0
  cases_ok: int = 0

  def add(self, output, pillow, geometric):
    diff = np.abs(output.astype(np.int16) - pillow.astype(np.int16))
    equal, within_one, mae = np.mean(diff == 0), np.mean(diff <= 1), np.mean(diff)
    self.count += diff.size
    self.equal += int(np.sum(diff == 0))
    self.within_one += int(np.sum(diff <= 1))
    self.abs_sum += int(np.sum(diff))
    self.max_diff = max(self.max_diff, int(diff.max()))
    self.cases_run += 1
    if geometric:
      self.cases_ok += bool(equal >= GEOMETRIC_MIN_EQUAL)
    else:
      self.cases_ok += bool(within_one >= MIN_WITHIN_ONE and mae <= MAX_MAE)

  def key(self):
    """Which conversion is better: more cases within tolerance, then more values equal."""
    return (self.cases_ok, self.equal / max(self.count, 1))


def to_uint8(output):
  """{conversion: uint8 array}: uint8 as is; float clipped, then rounded and truncated."""
  if output.dtype == np.uint8:
    return {"-": output}
  clipped = np.clip(output, 0.0, 255.0)
  return {"round": np.rint(clipped).astype(np.uint8), "trunc": clipped.astype(np.uint8)}


@dataclasses.dataclass
class Row:
  """One printed line: a family (or one of its cases) through one candidate."""
  family: str
  label: str
  conversion: str
  stats: Stats
  cases_total: int
  case: str = ""
  not_run: tuple[tuple[str, int, str], ...] = ()  # (case, sign, library message)


def measure(family, elements, candidate, images, references):
  """One family, one candidate: (family row, per-case rows)."""
  geometric = family in GEOMETRIC
  by_conversion = collections.defaultdict(Stats)
  per_case = {}  # case -> conversion -> Stats
  not_run = []
  integral = True  # float outputs that are whole numbers (e.g. a gather): conversion moot
  for element in elements:
    for sign in SIGNS:
      case = f"{element.magnitude:g} s={sign:+d}" if element.magnitude else f"s={sign:+d}"
      try:
        output = candidate.fn(images, family, element.magnitude, sign)
      except NotConstructible as e:
        not_run.append((case, sign, str(e)))
        continue
      converted = to_uint8(output)
      integral &= len(set(v.tobytes() for v in converted.values())) == 1
      per_case[case] = collections.defaultdict(Stats)
      for conversion, values in converted.items():
        by_conversion[conversion].add(values, references[element, sign], geometric)
        per_case[case][conversion].add(values, references[element, sign], geometric)
  total = 2 * len(elements)
  if not by_conversion:
    return Row(family, candidate.label, "", Stats(), total, not_run=tuple(not_run)), []
  conversion = max(by_conversion, key=lambda c: by_conversion[c].key())
  shown = "any" if integral and len(by_conversion) > 1 else conversion
  rows = [Row(family, candidate.label, shown, stats[conversion], 1, case=case)
          for case, stats in per_case.items()]
  return Row(family, candidate.label, shown, by_conversion[conversion], total,
             not_run=tuple(not_run)), rows


# ---------------------------------------------------------------------------
# Table.
# ---------------------------------------------------------------------------

_HEADER = (f"{'family':<12} {'library function':<58} {'conv':<5} {'equal':>7} {'+-1':>7} "
           f"{'max':>4} {'MAE':>6}  {'cases':>5}  meets")


def format_row(row, notes):
  """The table line of `row`; appends the reason for cases it could not build to `notes`."""
  stats = row.stats
  label = f"{row.label} [{row.case}]" if row.case else row.label
  cases = f"{stats.cases_ok}/{row.cases_total}"
  note = f"  [note {_note(notes, row)}]" if row.not_run else ""
  if not stats.cases_run:
    return (f"{row.family:<12} {label:<58} {'':<5} {'-':>7} {'-':>7} {'-':>4} {'-':>6}  "
            f"{cases:>5}  n/a{note}")
  n = stats.count
  if stats.cases_ok == row.cases_total:
    meets = "yes"
  elif stats.cases_ok == stats.cases_run:
    meets = "partial"  # every case it can express meets the tolerance, the others not built
  else:
    meets = "no"
  return (f"{row.family:<12} {label:<58} {row.conversion:<5} {stats.equal / n:7.2%} "
          f"{stats.within_one / n:7.2%} {stats.max_diff:4d} {stats.abs_sum / n:6.3f}  "
          f"{cases:>5}  {meets}{note}")


def _note(notes, row):
  """Numbers a row's reason for the cases it could not build; equal texts share a number."""
  signs = ", ".join(f"{s:+d}" for s in sorted({sign for _, sign, _ in row.not_run}))
  text = (f"{row.label}: {len(row.not_run)} case(s) not constructible (s={signs}); "
          f"the library says: {row.not_run[0][2]}")
  if text not in notes:
    notes.append(text)
  return notes.index(text) + 1


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  # keras(-cv) Equalization's vectorized_map warns about its while_loop fallback on every call.
  tf.get_logger().setLevel("ERROR")
  start = time.time()
  images = load_images(_DATA_DIR.value, _NUM_IMAGES.value)
  source = f"{len(images)} CIFAR-10 images"
  if _MOSAIC.value:
    images = mosaics(images)
    source = f"{len(images)} mosaics of 7x7 CIFAR-10 images"
  families = collections.defaultdict(list)
  for element in augment.ELEMENTS:
    families[element.name].append(element)
  references = {(element, sign): pillow_batch(images, element.name, element.magnitude, sign)
                for element in augment.ELEMENTS for sign in SIGNS}
  all_candidates, skipped = candidates()
  print(f"{source}, {images.shape[1]}x{images.shape[2]}, from "
        f"{_DATA_DIR.value}; tf {tf.__version__}, keras "
        f"{keras.__version__ if keras else '-'}, keras-cv "
        f"{keras_cv.__version__ if keras_cv else '-'}, Pillow {Image.__version__}")
  print("Tolerance (docs/correctness.md), per (magnitude, sign): geometric >= 98% equal; others "
        ">= 99% within +-1 and MAE <= 0.5.\ncases: cases within tolerance / all cases; meets: "
        "yes = all, partial = all it can build, no = some case fails.\n")
  print(_HEADER)
  print("-" * len(_HEADER))
  notes = []
  for family, elements in families.items():
    for candidate in all_candidates:
      if family not in candidate.families:
        continue
      row, case_rows = measure(family, elements, candidate, images, references)
      print(format_row(row, notes))
      if _PER_CASE.value:
        for case_row in case_rows:
          print(format_row(case_row, notes))
    print()
  print("Notes:")
  for number, note in enumerate(notes, 1):
    print(f"  [{number}] {note}")
  print("Not measured:")
  for reason in skipped:
    print(f"  - {reason}")
  print(f"\n{time.time() - start:.0f} s")


if __name__ == "__main__":
  app.run(main)
