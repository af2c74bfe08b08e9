r"""A known answer on real images: CIFAR-10 relabelled by dominant colour, and which elements harm.

The synthetic dataset (ohl_tf/datasets/synthetic.py) gives the OHL loop a known answer on
generated images. This builds one from the real CIFAR-10 images of
../shared/data/cifar10-reduced: each image's new label is its dominant colour, the argmax over
R, G, B of its three channel means (classes 0_red, 1_green, 2_blue). Why this property:
  * elements that mix an image with grey or scale it keep it exactly, before uint8 rounding and
    clipping: Color and Contrast blend every channel towards one grey level, Brightness scales all
    three channels alike, the geometric elements fill with grey (128, 128, 128);
  * Invert maps each channel mean c to 255 - c, so the dominant channel becomes the weakest, and
    Solarize does the same to the pixels above its threshold; Equalize flattens each channel's
    histogram on its own, pulling the three means to about the same value;
  * AutoContrast also works per channel but only stretches each to [0, 255]: it changes some
    labels (13%), far fewer than the harmful elements (>= 41%), so it counts as innocent.
Images whose two largest channel means differ by less than `MARGIN` are dropped (their label is
not crisp: cropping or rounding flips it), then each class is subsampled to the smallest class's
count (red dominates CIFAR-10's mean colours).

Which elements harm is measured, not assumed: `measure_harm` applies each element with each sign
the Pillow way (docs/search_space.md, the reference semantics) and counts the images whose dominant
colour changes. An element is harmful when the mean over its two signs is >= `HARM_THRESHOLD`.

`prepare` writes it as a `folder:ROOT` dataset: ROOT/train/<class>/*.png, ROOT/test/<class>/*.png
and ROOT/harmful.json (the property, the classes, the per-element table, the threshold, the
harmful elements and the probability the uniform policy gives the operations holding one of them).
`python benchmarks/known_answer.py --out=ROOT` runs it; benchmarks/policy_learning.py trains on it.
"""

import json
import os
import pathlib
import shutil
import time

import numpy as np
from PIL import Image
from PIL import ImageEnhance
from PIL import ImageOps

from ohl_tf import augment

_REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
# The same override as tests/cifar_testing.py, so that tests and benchmarks read the same copy.
DATA_ENV = "OHL_TF_CIFAR10_REDUCED"
DEFAULT_DATA_DIR = pathlib.Path(
    os.environ.get(DATA_ENV, _REPO_ROOT.parent / "shared" / "data" / "cifar10-reduced"))

PROPERTY = ("dominant colour: argmax over (R, G, B) of the image's channel means; images whose two "
            "largest channel means differ by less than {margin:g} (of 255) are dropped")
# Numbered so that the sorted folder names of `folder:ROOT` give back labels 0, 1, 2.
CLASS_NAMES = ("0_red", "1_green", "2_blue")
AMBIGUOUS = -1  # relabel()'s label for an image without a crisp dominant colour
# Measured on the 4,660 images, all crisp ones before balancing: the share of them that the worst
# innocent element (TranslateY 0.45) relabels falls from 13% at 0 to 5% at 4 and 3%
# at 8, while the smallest class (green) keeps 1,091, 598 and 362 images.
MARGIN = 4.0
# Measured on the 1,794 kept images (mean over the two signs, margin 4): the harmful elements
# change >= 41% of the labels (Solarize 179 is the lowest), the innocent ones <= 13% (AutoContrast,
# then 6% for TranslateY 0.45). 0.25 sits in that gap, >= 0.12 from either side.
HARM_THRESHOLD = 0.25
SIGNS = (-1, 1)  # column 0 of the [36, 2] tables is s = -1, column 1 is s = +1
FILL = (128, 128, 128)  # Pillow's fillcolor outside a transformed image (docs/search_space.md)

# ---------------------------------------------------------------------------
# Data and labels.
# ---------------------------------------------------------------------------

def load_images(data_dir=DEFAULT_DATA_DIR):
  """uint8 [N, 32, 32, 3]: every data_dir/train/<class>/*.png, sorted by path.

  Raises:
    FileNotFoundError: there is no PNG there (the message names the folder and the override).
  """
  train = pathlib.Path(data_dir) / "train"
  paths = sorted(train.glob("*/*.png"))
  if not paths:
    raise FileNotFoundError(
        f"No images in {train}/<class>/*.png: the known answer needs the real CIFAR-10 images of "
        f"../shared/data/cifar10-reduced (set {DATA_ENV} or --data_dir to another copy). "
        f"Received: data_dir={str(data_dir)!r}")
  return np.stack([np.asarray(Image.open(p).convert("RGB")) for p in paths])


def channel_means(images):
  """float64 [N, 3]: the mean of each of R, G, B over each image's pixels."""
  images = np.asarray(images)
  if images.ndim != 4 or images.shape[-1] != 3:
    raise ValueError(f"images must be [N, H, W, 3] RGB. Received: shape={images.shape}")
  return images.reshape(len(images), -1, 3).mean(1)


def dominant_colour(images):
  """int [N] in {0, 1, 2}: the argmax over R, G, B of the channel means (the property)."""
  return channel_means(images).argmax(1)


def relabel(images, margin=MARGIN):
  """The new label of each image: its dominant colour, or AMBIGUOUS when that is not crisp.

  Args:
    images: uint8 [N, H, W, 3].
    margin: an image keeps its label when its largest channel mean exceeds the second largest
      by at least this (in 0..255 units); >= 0.

  Returns:
    int [N]: 0 (red), 1 (green), 2 (blue), or AMBIGUOUS (-1).
  """
  if margin < 0:
    raise ValueError(f"margin must be >= 0. Received: margin={margin}")
  means = channel_means(images)
  top_two = np.sort(means, 1)[:, -2:]
  labels = means.argmax(1)
  labels[top_two[:, 1] - top_two[:, 0] < margin] = AMBIGUOUS
  return labels


def balanced_subset(labels, seed):
  """Sorted indices of an equal number of images per class: every image of the smallest class.

  AMBIGUOUS images are dropped; larger classes are subsampled with a seeded generator.
  """
  labels = np.asarray(labels)
  classes = np.unique(labels[labels != AMBIGUOUS])
  if len(classes) < 2:
    raise ValueError(f"Need at least 2 classes to balance. Received: classes={classes.tolist()}")
  size = min(int((labels == c).sum()) for c in classes)
  rng = np.random.default_rng(seed)
  chosen = [rng.choice(np.flatnonzero(labels == c), size, replace=False) for c in classes]
  return np.sort(np.concatenate(chosen))


# ---------------------------------------------------------------------------
# Harm: the Pillow calls of docs/search_space.md (as tests/pillow_reference.py, which the test of
# this module compares them with), and the share of labels each element changes.
# ---------------------------------------------------------------------------

def _affine(img, coeffs):
  return img.transform(img.size, Image.Transform.AFFINE, coeffs, Image.Resampling.NEAREST,
                       fillcolor=FILL)


def _enhance(img, name, factor):
  return getattr(ImageEnhance, name)(img).enhance(factor)


def pillow_element(img, element, sign):
  """Element `element` (0..35) with sign +1/-1 applied to an RGB PIL image, the Pillow way."""
  name, m = augment.ELEMENTS[element].name, augment.ELEMENTS[element].magnitude
  width, height = img.size
  if name in ("ShearX", "ShearY", "TranslateX", "TranslateY"):
    v = sign * m
    return _affine(img, {"ShearX": (1, v, 0, 0, 1, 0), "ShearY": (1, 0, 0, v, 1, 0),
                         "TranslateX": (1, 0, v * width, 0, 1, 0),
                         "TranslateY": (1, 0, 0, 0, 1, v * height)}[name])
  if name == "Rotate":
    return img.rotate(sign * m, resample=Image.Resampling.NEAREST, fillcolor=FILL)
  if name == "Color":
    return _enhance(img, name, 1.0 + sign * m)
  if name in ("Contrast", "Sharpness", "Brightness"):
    return _enhance(img, name, 1.0 + sign * (m - 1.0))
  if name == "Posterize":
    return ImageOps.posterize(img, int(round(m)))
  if name == "Solarize":
    return ImageOps.solarize(img, threshold=m)
  return {"AutoContrast": ImageOps.autocontrast, "Equalize": ImageOps.equalize,
          "Invert": ImageOps.invert}[name](img)


def measure_harm(images, labels):
  """The share of images whose dominant colour each element changes, per element and sign.

  Args:
    images: uint8 [N, H, W, 3].
    labels: int [N], their dominant colour (relabel(); AMBIGUOUS images are not allowed: they
      have no label to keep).

  Returns:
    float64 [36, 2]: [e, j] is the share of the images whose dominant colour (argmax, no margin)
    after element e with sign SIGNS[j] differs from `labels`.
  """
  labels = np.asarray(labels)
  if len(labels) != len(images) or (labels == AMBIGUOUS).any():
    raise ValueError(f"labels must be one non-AMBIGUOUS label per image. Received: "
                     f"{len(labels)} labels for {len(images)} images, "
                     f"{int((labels == AMBIGUOUS).sum())} AMBIGUOUS")
  pil_images = [Image.fromarray(x) for x in images]
  harm = np.zeros([augment.NUM_ELEMENTS, len(SIGNS)])
  for e in range(augment.NUM_ELEMENTS):
    for j, sign in enumerate(SIGNS):
      out = np.stack([np.asarray(pillow_element(x, e, sign)) for x in pil_images])
      harm[e, j] = (dominant_colour(out) != labels).mean()
  return harm


def harmful_elements(harm, threshold=HARM_THRESHOLD):
  """Sorted indices of the elements whose changed share, mean over the signs, is >= threshold."""
  return np.flatnonzero(np.asarray(harm).mean(1) >= threshold).tolist()


def harm_gap(harm, threshold=HARM_THRESHOLD):
  """(lowest harmful mean share, highest innocent mean share): the gap the threshold sits in."""
  mean = np.asarray(harm).mean(1)
  harmful = mean >= threshold
  return float(mean[harmful].min(initial=1.0)), float(mean[~harmful].max(initial=0.0))


def uniform_harmful_mass(num_harmful):
  """The uniform policy's probability of an op (e1, e2) with e1 or e2 harmful: 1 - ((36-m)/36)^2."""
  return 1.0 - ((augment.NUM_ELEMENTS - num_harmful) / augment.NUM_ELEMENTS) ** 2


def element_label(e):
  element = augment.ELEMENTS[e]
  return element.name if element.magnitude is None else f"{element.name}({element.magnitude:g})"


def format_table(harm, threshold=HARM_THRESHOLD):
  """The per-element table, most harmful first, with the threshold drawn between the two sets."""
  harm = np.asarray(harm)
  mean = harm.mean(1)
  lines = [f"  {'element':18s} {'idx':>3s} {'s=-1':>6s} {'s=+1':>6s} {'mean':>6s}"]
  drawn = False
  for e in np.argsort(-mean, kind="stable"):
    if not drawn and mean[e] < threshold:
      lines.append(f"  {'-' * 18} threshold {threshold:g} {'-' * 14}")
      drawn = True
    lines.append(f"  {element_label(e):18s} {e:3d} {harm[e, 0]:6.3f} {harm[e, 1]:6.3f} "
                 f"{mean[e]:6.3f}")
  return "\n".join(lines)


# ---------------------------------------------------------------------------
# The folder dataset.
# ---------------------------------------------------------------------------

def write_folder_dataset(root, images, labels, class_names, test_fraction, seed):
  """Writes root/{train,test}/<class>/<i>.png, the layout `--dataset=folder:ROOT` reads.

  The test split holds round(test_fraction * n_c) images of each class c, chosen with a seeded
  generator. File names are the images' indices in `images`, zero-padded so that the loader's
  sorted order is the index order.

  Args:
    root: the dataset folder; root/train and root/test must not exist yet.
    images: uint8 [N, H, W, 3].
    labels: int [N] in [0, len(class_names)).
    class_names: folder names; they must sort in label order, since the loader numbers the
      classes by their sorted folder names.
    test_fraction: in (0, 1).
    seed: seeds the test split.

  Returns:
    {"train": indices, "test": indices}: int arrays of the images written to each split.
  """
  root = pathlib.Path(root)
  labels = np.asarray(labels)
  if list(class_names) != sorted(class_names):
    raise ValueError(f"class_names must be sorted, so that the loader's label i is class_names[i]."
                     f" Received: class_names={list(class_names)}")
  if labels.min() < 0 or labels.max() >= len(class_names):
    raise ValueError(f"labels must be in [0, {len(class_names)}). Received: "
                     f"min={labels.min()}, max={labels.max()}")
  if not 0 < test_fraction < 1:
    raise ValueError(f"test_fraction must be in (0, 1). Received: test_fraction={test_fraction}")
  for split in ("train", "test"):
    if (root / split).exists():
      raise FileExistsError(f"{root / split} already exists: remove it or choose another root. "
                            f"Received: root={str(root)!r}")
  rng = np.random.default_rng(seed)
  test = np.zeros(len(labels), bool)
  for c in range(len(class_names)):
    members = np.flatnonzero(labels == c)
    test[rng.choice(members, int(round(test_fraction * len(members))), replace=False)] = True
  digits = len(str(len(labels) - 1))
  for i, (image, label) in enumerate(zip(images, labels)):
    folder = root / ("test" if test[i] else "train") / class_names[label]
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(folder / f"{i:0{digits}d}.png")
  return {"train": np.flatnonzero(~test), "test": np.flatnonzero(test)}


# ---------------------------------------------------------------------------
# All of it: measured, written, reported.
# ---------------------------------------------------------------------------

def prepare(out, data_dir=DEFAULT_DATA_DIR, margin=MARGIN, threshold=HARM_THRESHOLD,
            test_fraction=0.2, seed=0, balance=True, overwrite=False):
  """Measures the harmful elements and writes the folder dataset and harmful.json into `out`.

  Returns:
    The harmful.json payload (a dict).

  Raises:
    FileExistsError: `out` already holds a dataset and not `overwrite`.
    FileNotFoundError: no real images at `data_dir`.
  """
  out = pathlib.Path(out)
  existing = [str(out / split) for split in ("train", "test") if (out / split).exists()]
  if existing and not overwrite:  # before the measurement, not after it
    raise FileExistsError(f"{', '.join(existing)} already exist(s): pass --overwrite or another "
                          f"--out. Received: --out={out}")
  start = time.perf_counter()
  images = load_images(data_dir)
  labels = relabel(images, margin)
  crisp = np.bincount(labels[labels != AMBIGUOUS], minlength=len(CLASS_NAMES))
  print(f"{len(images)} real images from {data_dir}")
  print(f"crisp (margin {margin:g}): {crisp.sum()}, per class "
        + ", ".join(f"{n} {c}" for n, c in zip(crisp, CLASS_NAMES)))
  if balance:
    kept = balanced_subset(labels, seed)
    print(f"kept, balanced (seed {seed}): {len(kept)}, {len(kept) // len(CLASS_NAMES)} per class")
  else:
    kept = np.flatnonzero(labels != AMBIGUOUS)
    print(f"kept, every crisp image: {len(kept)}")
  images, labels = images[kept], labels[kept]

  harm = measure_harm(images, labels)
  harmful = harmful_elements(harm, threshold)
  lowest, highest = harm_gap(harm, threshold)
  mass = uniform_harmful_mass(len(harmful))
  print(f"\nshare of the {len(images)} labels each element changes (Pillow):")
  print(format_table(harm, threshold))
  print(f"harmful ({len(harmful)}): {', '.join(element_label(e) for e in harmful)}; gap "
        f"{highest:.3f} (highest innocent) .. {lowest:.3f} (lowest harmful) around "
        f"{threshold:g}; uniform harmful mass {mass:.4f}")

  if overwrite:
    for split in ("train", "test"):
      shutil.rmtree(out / split, ignore_errors=True)
  splits = write_folder_dataset(out, images, labels, CLASS_NAMES, test_fraction, seed)
  payload = {
      "property": PROPERTY.format(margin=margin),
      "classes": list(CLASS_NAMES),
      "class_counts": np.bincount(labels, minlength=len(CLASS_NAMES)).tolist(),
      "harmful_elements": harmful,
      "element_harm": np.round(harm, 4).tolist(),
      "threshold": threshold,
      "uniform_harmful_mass": mass,
  }
  (out / "harmful.json").write_text(json.dumps(payload, indent=1) + "\n")
  print(f"\nwrote {out}/train ({len(splits['train'])}), {out}/test ({len(splits['test'])}) and "
        f"{out}/harmful.json in {time.perf_counter() - start:.1f} s")
  return payload
