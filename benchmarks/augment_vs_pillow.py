r"""CPU cost of the OHL elements against Pillow's on the same images, in one process.

Per element and sign (72 cases; AutoContrast, Equalize and Invert once), CPU microseconds per
image (process time, one intra-op and one inter-op thread) of:
  * batched: `augment.apply_element` on batches of --batch_size in a tf.function (the trainer's
    --augment_path=batched, and what --augment_on=device runs);
  * per-image: the same, one image at a time under tf.map_fn (the per-image map's kernel, net of
    tf.map_fn's own cost, measured with an identity function);
  * Pillow: the Pillow call of docs/search_space.md (tests/pillow_reference.py), one image at a
    time.
Then two random operations from the 1296 (`apply_drawn_operation`) on both paths against Pillow,
--runs times, and with --pipeline the whole ImageNet host pipeline against Pillow's (below).

Images: --per_class real CIFAR-10 images of each class (26: 260 images), upscaled once to --size
with `preprocess.resize_uint8`. Each figure is the minimum over --repeats passes over all the
images (another process sharing the CPU can only add time); ratios are within one process.

--pipeline: per image, from JPEG bytes (the images upscaled to 320x320, JPEG quality 90):
  * ohl_tf: `tf.io.decode_jpeg`, `preprocess.imagenet_train_base` (random-resized crop to --size,
    flip), two random OHL operations (per-image path in the map), then per batch Cutout 16 and
    mean subtraction (`preprocess.cutout`, `preprocess.normalize`): a tf.data pipeline on one
    thread (private thread pool of 1, intra-op parallelism 1);
  * Pillow: `Image.open` + `convert("RGB")`, the same kind of random-resized crop (scale 0.08-1,
    ratio 3/4-4/3) and bilinear resize in one `Image.resize(box=...)`, a random flip, two random
    operations (`pillow_reference.pillow_operation`), `np.asarray`;
and reports images/s per core (1e6 / CPU us per image) for both.

Commands (from the repository root):
  python benchmarks/augment_vs_pillow.py                # 224x224, ~10 minutes on a loaded 2-core
  python benchmarks/augment_vs_pillow.py --size=32      # the CIFAR size
  python benchmarks/augment_vs_pillow.py --pipeline     # adds the ImageNet host pipeline
"""

import datetime
import io
import os
import pathlib
import platform
import sys
import time

from absl import app
from absl import flags
import numpy as np
from PIL import Image
import tensorflow as tf

_REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
# Run as a script, Python puts benchmarks/ on the path, not the repository root; the Pillow
# reference lives beside the tests that hold the kernels to it.
sys.path[:0] = [str(_REPO_ROOT), str(_REPO_ROOT / "tests")]

from ohl_tf import augment  # pylint: disable=g-import-not-at-top
from ohl_tf import operations  # pylint: disable=g-import-not-at-top
from ohl_tf import preprocess  # pylint: disable=g-import-not-at-top
from ohl_tf.datasets import known_answer  # pylint: disable=g-import-not-at-top
import pillow_reference  # pylint: disable=g-import-not-at-top
import reporting  # pylint: disable=g-import-not-at-top

_SIZE = flags.DEFINE_integer("size", 224, "Image side the CIFAR-10 images are upscaled to.")
_DATA_DIR = flags.DEFINE_string(
    "data_dir", str(known_answer.DEFAULT_DATA_DIR),
    "Folder of PNG images, <class>/*.png or train/<class>/*.png.")
_PER_CLASS = flags.DEFINE_integer("per_class", 26, "Images of each class.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 32, "Batch of the batched path.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Passes per figure; the minimum is reported.")
_RUNS = flags.DEFINE_integer("runs", 3, "Runs of the two-operation comparison.")
_ELEMENTS = flags.DEFINE_bool("elements", True, "Profile every element and sign.")
_PIPELINE = flags.DEFINE_bool("pipeline", False, "Also time the ImageNet host pipeline.")
_ONLY = flags.DEFINE_list("only", [], "Profile only these element names, e.g. TranslateX,Color.")

_SEED = 20190


def load_images(data_dir, per_class, size):
  """uint8 [10 * per_class, size, size, 3]: the first `per_class` PNGs of each class, sorted."""
  root = pathlib.Path(data_dir)
  root = root / "train" if (root / "train").is_dir() else root
  classes = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
  paths = [p for c in classes for p in sorted(c.glob("*.png"))[:per_class]]
  if not paths:
    sys.exit(f"No PNG images under {root}/<class>/. This benchmark needs the real CIFAR-10 "
             f"images (env {known_answer.DATA_ENV} or --data_dir). Received: --data_dir={data_dir}")
  images = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in paths])
  if images.shape[1:3] != (size, size):
    images = preprocess.resize_uint8(images, [size, size]).numpy()
  return images


def cpu_us_per_image(fn, num_images, repeats):
  """Minimum over `repeats` calls of fn()'s process CPU time per image, after a warm-up call."""
  fn()
  best = float("inf")
  for _ in range(repeats):
    start = time.process_time()
    fn()
    best = min(best, time.process_time() - start)
  return 1e6 * best / num_images


class Paths:
  """The batched and per-image paths of one function of (images, *per-image arguments)."""

  def __init__(self, images, batch_size):
    self.num_images = batch_size * (len(images) // batch_size)
    self.images = images[:self.num_images]
    # Pillow's images once, before any kernel runs: PIL images made after the TensorFlow paths
    # had run were up to 30% slower to transform in the same process (their memory's placement),
    # which flattered the ratios.
    self.pillow_images = [Image.fromarray(x) for x in self.images]
    self.batches = [tf.constant(images[i:i + batch_size])
                    for i in range(0, self.num_images, batch_size)]
    self.batch_size = batch_size
    self.map_overhead = None
    self.compiled = {}  # (path, fn) -> tf.function, traced once for all cases

  def _compiled(self, path, fn, build):
    if (path, fn) not in self.compiled:
      self.compiled[path, fn] = build(fn)
    return self.compiled[path, fn]

  def _split(self, args):
    return [[a[i:i + self.batch_size] for a in args]
            for i in range(0, self.num_images, self.batch_size)]

  def batched(self, fn, *args, repeats):
    call = self._compiled("batched", fn, lambda f: tf.function(f, autograph=False))
    parts = [[tf.constant(a) for a in p] for p in self._split(args)]
    return cpu_us_per_image(lambda: [call(b, *p) for b, p in zip(self.batches, parts)],
                            self.num_images, repeats)

  def per_image(self, fn, *args, repeats):
    """Net of tf.map_fn's own cost (an identity function through the same loop)."""
    def looped(f):
      return tf.function(lambda b, *a: tf.map_fn(lambda x: f(*x), (b, *a),
                                                 fn_output_signature=tf.uint8,
                                                 parallel_iterations=1), autograph=False)
    parts = [[tf.constant(a) for a in p] for p in self._split(args)]
    if self.map_overhead is None:
      identity = looped(lambda x, *a: x)
      self.map_overhead = cpu_us_per_image(
          lambda: [identity(b, *p) for b, p in zip(self.batches, parts)], self.num_images,
          repeats)
    call = self._compiled("per_image", fn, looped)
    cost = cpu_us_per_image(lambda: [call(b, *p) for b, p in zip(self.batches, parts)],
                            self.num_images, repeats)
    return cost - self.map_overhead


def element_cases():
  """(label, element, sign): every element with both signs, the sign-free ones once."""
  for index, element in enumerate(augment.ELEMENTS):
    for sign in ((1,) if element.magnitude is None else (1, -1)):
      magnitude = "" if element.magnitude is None else f" {element.magnitude:g}"
      yield f"{element.name}{magnitude} {'+' if sign > 0 else '-'}", index, sign


def profile_elements(paths, repeats):
  """Prints and returns [(label, batched, per-image, Pillow)] in CPU us per image."""
  pils = paths.pillow_images
  n = paths.num_images
  rows = []
  print(f"  {'element':<20} {'batched':>8} {'per-img':>8} {'Pillow':>8} {'b/P':>6} {'i/P':>6}")
  for label, element, sign in element_cases():
    if _ONLY.value and augment.ELEMENTS[element].name not in _ONLY.value:
      continue
    elements, signs = np.full([n], element, np.int32), np.full([n], sign, np.int32)
    batched = paths.batched(augment.apply_element, elements, signs, repeats=repeats)
    per_image = paths.per_image(augment.apply_element, elements, signs, repeats=repeats)
    pillow = cpu_us_per_image(
        lambda e=element, s=sign: [pillow_reference.pillow_element(p, e, s) for p in pils],
        n, repeats)
    rows.append((label, batched, per_image, pillow))
    print(f"  {label:<20} {batched:>8.0f} {per_image:>8.0f} {pillow:>8.0f} "
          f"{batched / pillow:>6.2f} {per_image / pillow:>6.2f}", flush=True)
  return rows


def compare_operations(paths, repeats, run):
  """Two random operations per image: (batched, per-image, Pillow) CPU us per image."""
  rng = np.random.default_rng(_SEED + run)
  ops = rng.integers(0, augment.NUM_OPERATIONS, paths.num_images).astype(np.int32)
  signs = rng.choice(np.array([-1, 1], np.int32), (paths.num_images, 2))
  batched = paths.batched(augment.apply_drawn_operation, ops, signs, repeats=repeats)
  per_image = paths.per_image(augment.apply_drawn_operation, ops, signs, repeats=repeats)
  pils = paths.pillow_images
  pillow = cpu_us_per_image(
      lambda: [pillow_reference.pillow_operation(p, o, s) for p, o, s in zip(pils, ops, signs)],
      paths.num_images, repeats)
  return batched, per_image, pillow


# ---------------------------------------------------------------------------------------------
# The ImageNet host pipeline, from JPEG bytes.
# ---------------------------------------------------------------------------------------------


def jpeg_files(images, side=320):
  """The images upscaled to side x side, as JPEG bytes (quality 90): ImageNet-like inputs."""
  out = []
  for x in preprocess.resize_uint8(images, [side, side]).numpy():
    buffer = io.BytesIO()
    Image.fromarray(x).save(buffer, "JPEG", quality=90)
    out.append(buffer.getvalue())
  return out


def ohl_pipeline(files, size, batch_size):
  """tf.data on one thread: decode, crop, flip, two operations per image; Cutout, mean."""
  def per_image(index, data):
    seed = tf.stack([tf.constant(_SEED, tf.int64), index])
    base_seed, op_seed, sign_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 3))
    image = preprocess.imagenet_train_base(tf.io.decode_jpeg(data, channels=3), base_seed, size)
    op = tf.random.stateless_uniform([], op_seed, 0, augment.NUM_OPERATIONS, tf.int32)
    return augment.apply_drawn_operation(image, op, operations.sample_signs([2], sign_seed))

  def per_batch(index, images):
    seed = tf.stack([tf.constant(_SEED + 1, tf.int64), index])
    fill = preprocess.mean_colour(preprocess.IMAGENET_MEAN)
    return preprocess.normalize(preprocess.cutout(images, seed, 16, fill=fill),
                                preprocess.IMAGENET_MEAN)

  options = tf.data.Options()
  options.threading.private_threadpool_size = 1
  options.threading.max_intra_op_parallelism = 1
  options.autotune.enabled = False
  return (tf.data.Dataset.from_tensor_slices(files).enumerate()
          .map(tf.autograph.experimental.do_not_convert(per_image))
          .batch(batch_size, drop_remainder=True).enumerate()
          .map(tf.autograph.experimental.do_not_convert(per_batch))
          .with_options(options))


def pillow_pipeline(files, size, rng):
  """Pillow, image by image: decode, random-resized crop + resize, flip, two operations."""
  out = None
  for data in files:
    image = Image.open(io.BytesIO(data)).convert("RGB")
    width, height = image.size
    for _ in range(10):  # the usual random-resized crop: scale 0.08-1, log-uniform ratio
      area = width * height * rng.uniform(0.08, 1.0)
      ratio = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
      w, h = int(round(np.sqrt(area * ratio))), int(round(np.sqrt(area / ratio)))
      if 0 < w <= width and 0 < h <= height:
        break
    else:
      w, h = min(width, height), min(width, height)
    left, top = rng.integers(0, width - w + 1), rng.integers(0, height - h + 1)
    image = image.resize((size, size), Image.Resampling.BILINEAR,
                         box=(left, top, left + w, top + h))
    if rng.integers(2):
      image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    image = pillow_reference.pillow_operation(
        image, int(rng.integers(augment.NUM_OPERATIONS)), rng.choice([-1, 1], 2))
    out = np.asarray(image)
  return out


def compare_pipelines(images, size, batch_size, repeats):
  """(ohl_tf, Pillow) CPU us per image of the whole host pipeline."""
  files = jpeg_files(images)
  count = batch_size * (len(files) // batch_size)
  # One iterator for every pass: creating one instantiates (and optimises) the graph functions
  # again, seconds at 224x224 that a training run pays once.
  batches = iter(ohl_pipeline(files[:count], size, batch_size).repeat())
  ours = cpu_us_per_image(lambda: [next(batches) for _ in range(count // batch_size)], count,
                          repeats)
  rng = np.random.default_rng(_SEED)
  theirs = cpu_us_per_image(lambda: pillow_pipeline(files[:count], size, rng), count, repeats)
  return ours, theirs


def main(argv):
  del argv
  tf.config.threading.set_intra_op_parallelism_threads(1)
  tf.config.threading.set_inter_op_parallelism_threads(1)
  size, repeats = _SIZE.value, _REPEATS.value
  images = load_images(_DATA_DIR.value, _PER_CLASS.value, size)
  paths = Paths(images, _BATCH_SIZE.value)
  print(f"OHL elements against Pillow, {size}x{size}, {paths.num_images} real CIFAR-10 images "
        f"({_PER_CLASS.value} per class, upscaled), batch {_BATCH_SIZE.value}; CPU us per image, "
        f"min of {repeats} passes, one intra-op thread")
  print(f"Machine: {reporting.machine()}; TensorFlow {tf.__version__}, Pillow "
        f"{Image.__version__}, Python {platform.python_version()}; "
        f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; "
        f"load average {reporting.load_average()}", flush=True)
  if _ELEMENTS.value:
    rows = profile_elements(paths, repeats)
    worst = max(rows, key=lambda r: r[1] / r[3])
    print(f"  worst batched/Pillow: {worst[0]} {worst[1] / worst[3]:.2f}; mean over the cases: "
          f"batched {np.mean([r[1] for r in rows]):.0f}, per-image "
          f"{np.mean([r[2] for r in rows]):.0f}, Pillow {np.mean([r[3] for r in rows]):.0f}")
  print("Two random operations of the 1296 per image (apply_drawn_operation):")
  for run in range(_RUNS.value):
    batched, per_image, pillow = compare_operations(paths, repeats, run)
    print(f"  run {run + 1}: batched {batched:.0f}, per-image {per_image:.0f}, Pillow "
          f"{pillow:.0f} us/image: batched/Pillow {batched / pillow:.2f}, per-image/Pillow "
          f"{per_image / pillow:.2f}", flush=True)
  if _PIPELINE.value:
    ours, theirs = compare_pipelines(images, size, _BATCH_SIZE.value, repeats)
    print(f"ImageNet host pipeline from 320x320 JPEGs to {size}x{size}, one core: ohl_tf "
          f"{ours:.0f} us/image ({1e6 / ours:.0f} images/s), Pillow {theirs:.0f} us/image "
          f"({1e6 / theirs:.0f} images/s): ohl_tf/Pillow CPU time {ours / theirs:.2f}")
  print(f"load average after: {reporting.load_average()}")


if __name__ == "__main__":
  app.run(main)
