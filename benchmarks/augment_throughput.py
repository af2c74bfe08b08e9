r"""Throughput of the training input pipelines: base, OHL per-image, OHL batched, RandAugment.

Measures images/s of these tf.data pipelines over the same real images, in one process:
  (a) base preprocessing alone;
  (b) base + OHL operation on the per-image path (`tf.switch_case` inside the per-image map),
      Cutout and standardisation per image too;
  (b2) the same operation in the per-image map, Cutout and standardisation per batch: what the
      trainer runs with --augment_path=per_image;
  (c) base + OHL operation on the batched path (`tf.dynamic_partition`, after `batch`);
  (d) base + keras-cv RandAugment(augmentations_per_image=2), per image (d1) and per batch (d2);
      the faster of the two is the peer "d";
  (e) base + our RandAugment (`ohl_tf.randaugment`, what --policy=randaugment trains with) at
      keras-cv's defaults, N = 2, M = 5 (magnitude 0.5), on the batched path.
Every pipeline is: cached uint8 images, repeated forever, map(AUTOTUNE), batch, prefetch. Base
means docs/pipeline.md: for 32x32 (CIFAR) flip, pad 4 and crop, [op], Cutout 16 with the
mean colour, standardise; for larger images (ImageNet) random-resized crop, flip, [op], mean
subtraction, no Cutout. No shuffle and no labels: they cost the same in every pipeline.

Each figure is the median of --repeats timed runs of --seconds each, on a warmed-up iterator
(tracing and tf.data's AUTOTUNE ramp-up happen in the warm-up). The CPU may be shared, so the
load average is printed with the results; the min..max column shows the noise.

Commands (from the repository root):
  python benchmarks/augment_throughput.py              # 32x32, ~2.5 minutes on 2 cores
  python benchmarks/augment_throughput.py --size=224   # 224x224 from 512 images, ~4 minutes
  python benchmarks/augment_throughput.py --profile    # adds CPU us/image per element family
"""

import datetime
import functools
import gc
import pathlib
import platform
import statistics
import sys
import time

from absl import app
from absl import flags
import keras
import keras_cv
import numpy as np
import tensorflow as tf

_REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
# Run as a script, Python puts benchmarks/ on the path, not the repository root.
sys.path.insert(0, str(_REPO_ROOT))

from ohl_tf import augment  # pylint: disable=g-import-not-at-top
from ohl_tf import operations  # pylint: disable=g-import-not-at-top
from ohl_tf import randaugment  # pylint: disable=g-import-not-at-top
from ohl_tf import preprocess  # pylint: disable=g-import-not-at-top
from ohl_tf.datasets import known_answer  # pylint: disable=g-import-not-at-top
import reporting  # pylint: disable=g-import-not-at-top

_SIZE = flags.DEFINE_integer("size", 32, "Image side: 32 (CIFAR pipeline) or larger, e.g. 224 "
                             "(ImageNet pipeline on the CIFAR images upscaled once).")
_DATA_DIR = flags.DEFINE_string(
    "data_dir", str(known_answer.DEFAULT_DATA_DIR),
    f"Folder of PNG images (searched recursively): the real CIFAR-10 images (env "
    f"{known_answer.DATA_ENV}).")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 256, "Batch size of every pipeline.")
_REPEATS = flags.DEFINE_integer("repeats", None, "Timed runs per pipeline; the median is "
                                "reported. Default: 5 for 32x32, 3 for larger images.")
_SECONDS = flags.DEFINE_float("seconds", None, "Duration of one timed run (at least 2 batches). "
                              "Default: 4 for 32x32, 10 for larger images.")
_WARMUP = flags.DEFINE_float("warmup_seconds", None, "Warm-up per pipeline before timing. "
                             "Default: 4 for 32x32, 8 for larger images.")
_NUM_IMAGES = flags.DEFINE_integer("num_images", None, "Images to cache (an epoch). Default: all "
                                   "for 32x32, 512 for larger images (150 KiB each at 224).")
_PROFILE = flags.DEFINE_bool("profile", False, "Also print the CPU cost per image of each "
                             "element family, on the per-image and the batched path.")

_SEED = 20190  # any constant: the pipelines only need distinct per-image seeds
_AUTOTUNE = tf.data.AUTOTUNE


# ---------------------------------------------------------------------------------------------
# Data: decoded once, cached in memory.
# ---------------------------------------------------------------------------------------------


def load_images(data_dir, size, num_images):
  """Decodes the PNGs under data_dir (sorted) into uint8 [N, size, size, 3], resized once."""
  paths = sorted(str(p) for p in pathlib.Path(data_dir).rglob("*.png"))
  if not paths:
    sys.exit(f"No PNG images under {data_dir}. This benchmark needs the real CIFAR-10 images "
             f"(env {known_answer.DATA_ENV}); pass --data_dir to point elsewhere.")
  if num_images:
    paths = paths[::max(1, len(paths) // num_images)][:num_images]  # spread over the classes
  decode = lambda p: tf.io.decode_png(tf.io.read_file(p), channels=3)
  ds = tf.data.Dataset.from_tensor_slices(paths).map(decode, _AUTOTUNE)
  images = np.stack(list(ds.as_numpy_iterator()))
  if images.shape[1:3] != (size, size):
    images = preprocess.resize_uint8(images, [size, size]).numpy()
  return images


# ---------------------------------------------------------------------------------------------
# Pipelines. Each stage is a function of (seed, images); seeds come from the element's index.
# ---------------------------------------------------------------------------------------------


def _split(seed, n):
  return tf.unstack(tf.random.experimental.stateless_split(seed, n))


def make_stages(size):
  """Returns (base, tail): the per-image base and the after-op tail (Cutout, normalise).

  Both work on one image or, for `tail`, on a batch.
  """
  if size <= 64:
    fill = preprocess.mean_colour(preprocess.CIFAR10_MEAN)
    base = preprocess.cifar_train_base
    tail = lambda x, seed: preprocess.normalize(
        preprocess.cutout(x, seed, 16, fill=fill), preprocess.CIFAR10_MEAN,
        preprocess.CIFAR10_STD)
  else:
    base = lambda x, seed: preprocess.imagenet_train_base(x, seed, size)
    tail = lambda x, seed: preprocess.normalize(x, preprocess.IMAGENET_MEAN)
  return base, tail


def _to_uint8(images):
  return tf.cast(tf.clip_by_value(tf.round(images), 0.0, 255.0), tf.uint8)


def _sample_ops(shape, seed):
  """Operation indices and signs, uniform, stateless: [*shape] and [*shape, 2]."""
  op_seed, sign_seed = _split(seed, 2)
  ops = tf.random.stateless_uniform(shape, op_seed, 0, augment.NUM_OPERATIONS, tf.int32)
  return ops, operations.sample_signs(list(shape) + [2], sign_seed)


def _maybe_autograph(fn, autograph):
  # ohl_tf needs no AutoGraph (no Python control flow on tensors), and converting re-reads the
  # source files, which breaks if another engineer edits one while the benchmark runs.
  # keras-cv's layers do need it (Python `if` on tensors).
  return fn if autograph else tf.autograph.experimental.do_not_convert(fn)


def per_image_pipeline(images, batch_size, per_image, autograph=False):
  """Cached images -> map(per_image(image, seed)) -> batch -> prefetch."""
  @functools.partial(_maybe_autograph, autograph=autograph)
  def fn(index, image):
    return per_image(image, tf.stack([tf.constant(_SEED, tf.int64), index]))
  return (tf.data.Dataset.from_tensor_slices(images).repeat().enumerate()
          .map(fn, _AUTOTUNE).batch(batch_size, drop_remainder=True).prefetch(_AUTOTUNE))


def batched_pipeline(images, batch_size, per_image, per_batch, autograph=False):
  """Cached images -> map(per_image) -> batch -> map(per_batch(batch, seed)) -> prefetch."""
  @tf.autograph.experimental.do_not_convert
  def image_fn(index, image):
    return per_image(image, tf.stack([tf.constant(_SEED, tf.int64), index]))
  @functools.partial(_maybe_autograph, autograph=autograph)
  def batch_fn(index, batch):
    return per_batch(batch, tf.stack([tf.constant(_SEED + 1, tf.int64), index]))
  return (tf.data.Dataset.from_tensor_slices(images).repeat().enumerate()
          .map(image_fn, _AUTOTUNE).batch(batch_size, drop_remainder=True).enumerate()
          .map(batch_fn, _AUTOTUNE).prefetch(_AUTOTUNE))


def build_pipelines(images, batch_size, size):
  """The pipelines of the module docstring, as {key: (label, dataset)}."""
  base, tail = make_stages(size)

  def base_only(x, seed):
    base_seed, tail_seed = _split(seed, 2)
    return tail(base(x, base_seed), tail_seed)

  def ohl_per_image(x, seed):
    base_seed, op_seed, tail_seed = _split(seed, 3)
    op, signs = _sample_ops([], op_seed)
    return tail(augment.apply_drawn_operation(base(x, base_seed), op, signs), tail_seed)

  def base_and_op(x, seed):
    base_seed, op_seed = _split(seed, 2)
    op, signs = _sample_ops([], op_seed)
    return augment.apply_drawn_operation(base(x, base_seed), op, signs)

  def ohl_batch(x, seed):
    op_seed, tail_seed = _split(seed, 2)
    ops, signs = _sample_ops([batch_size], op_seed)
    return tail(augment.apply_operation(x, ops, signs), tail_seed)

  # keras-cv layers draw from their own stateful generator; they take no per-call seed. They
  # return float32, rounded back to uint8 here because Cutout and the OHL ops are uint8 ops.
  rand_augment = keras_cv.layers.RandAugment(value_range=(0, 255), augmentations_per_image=2,
                                             seed=_SEED)

  def ra_per_image(x, seed):
    base_seed, tail_seed = _split(seed, 2)
    return tail(_to_uint8(rand_augment(base(x, base_seed))), tail_seed)

  def ra_batch(x, seed):
    return tail(_to_uint8(rand_augment(x)), seed)

  translate_policy = "cifar10" if size <= 64 else "imagenet"  # 10 px per 32, or 150 per 331

  def ours_batch(x, seed):
    ra_seed, tail_seed = _split(seed, 2)
    return tail(randaugment.apply_randaugment(x, 2, 5, ra_seed, translate_policy), tail_seed)

  return {
      "a": ("base", per_image_pipeline(images, batch_size, base_only)),
      "b": ("base + OHL op, per-image path", per_image_pipeline(images, batch_size,
                                                                 ohl_per_image)),
      "b2": ("base + OHL op in the map, tail batched", batched_pipeline(images, batch_size,
                                                                         base_and_op, tail)),
      "c": ("base + OHL op, batched path", batched_pipeline(images, batch_size, base,
                                                             ohl_batch)),
      "d1": ("base + RandAugment, per image", per_image_pipeline(images, batch_size,
                                                                  ra_per_image, autograph=True)),
      "d2": ("base + RandAugment, per batch", batched_pipeline(images, batch_size, base,
                                                                ra_batch, autograph=True)),
      "e": ("base + ohl_tf RandAugment, batched", batched_pipeline(images, batch_size, base,
                                                                 ours_batch)),
  }


# ---------------------------------------------------------------------------------------------
# Timing.
# ---------------------------------------------------------------------------------------------


def _drain(iterator, seconds, min_batches=2):
  """Pulls batches for at least `seconds` and `min_batches`.

  Returns:
    (batches, wall seconds, CPU seconds of this process over all its threads).
  """
  start, cpu_start = time.perf_counter(), time.process_time()
  batches = 0
  while True:
    next(iterator)
    batches += 1
    elapsed = time.perf_counter() - start
    if elapsed >= seconds and batches >= min_batches:
      return batches, elapsed, time.process_time() - cpu_start


def measure(dataset, batch_size, repeats, seconds, warmup):
  """Times `repeats` runs on one warmed-up iterator.

  Returns:
    (images/s of each run, CPU microseconds per image of each run). The CPU cost is what the
    pipeline needs whatever else runs on the machine, so it is the steadier figure on a shared
    CPU; images/s is what training sees.
  """
  iterator = iter(dataset)
  _drain(iterator, warmup)
  rates, cpu_costs = [], []
  for _ in range(repeats):
    batches, elapsed, cpu = _drain(iterator, seconds)
    rates.append(batches * batch_size / elapsed)
    cpu_costs.append(1e6 * cpu / (batches * batch_size))
  # The iterator's prefetch threads would keep a core busy during the next measurement.
  del iterator
  gc.collect()
  return rates, cpu_costs


# ---------------------------------------------------------------------------------------------
# Report.
# ---------------------------------------------------------------------------------------------


def _row(key, label, rates, cpu_costs):
  median, cpu = statistics.median(rates), statistics.median(cpu_costs)
  return (f"  ({key:>2}) {label:<38} {median:>9.0f}   {min(rates):>7.0f} .. {max(rates):<7.0f}"
          f"  {cpu:>9.1f}", median, cpu)


def main(argv):
  del argv
  size, batch_size = _SIZE.value, _BATCH_SIZE.value
  small = size <= 64
  repeats = _REPEATS.value or (5 if small else 3)
  seconds = _SECONDS.value or (4.0 if small else 10.0)
  warmup = _WARMUP.value if _WARMUP.value is not None else (4.0 if small else 8.0)
  num_images = _NUM_IMAGES.value if _NUM_IMAGES.value is not None else (0 if small else 512)
  if batch_size < 1 or repeats < 1 or seconds <= 0:
    sys.exit(f"--batch_size, --repeats and --seconds must be positive. Received: "
             f"batch_size={batch_size}, repeats={repeats}, seconds={seconds}")

  images = load_images(_DATA_DIR.value, size, num_images)
  header = [
      f"Augmentation throughput, {size}x{size}x3 uint8, batch {batch_size}, "
      f"{len(images)} images cached in memory, repeated",
      f"Machine: {reporting.machine()}",
      f"TensorFlow {tf.__version__}, Keras {keras.__version__}, keras-cv {keras_cv.__version__}, "
      f"Python {platform.python_version()}; {datetime.datetime.now():%Y-%m-%d %H:%M}",
      "Base: " + ("flip, pad 4 + crop, [op], Cutout 16 (mean colour), standardise" if small
                  else "random-resized crop, flip, [op], mean subtraction (no Cutout)"),
      "Peer: keras_cv.layers.RandAugment(value_range=(0, 255), augmentations_per_image=2), "
      "other arguments default (magnitude 0.5, rate 10/11)",
      f"Each figure: median of {repeats} runs of {seconds:g} s after {warmup:g} s of warm-up.",
  ]
  print("\n".join(header), flush=True)
  load_before = reporting.load_average()

  pipelines = build_pipelines(images, batch_size, size)
  medians, cpu, rows = {}, {}, []
  for key, (label, dataset) in pipelines.items():
    row, medians[key], cpu[key] = _row(
        key, label, *measure(dataset, batch_size, repeats, seconds, warmup))
    rows.append(row)
    print(row, flush=True)  # progress, repeated in the table below
  peer = "d1" if medians["d1"] >= medians["d2"] else "d2"
  d = medians[peer]
  a, b, b2, c = medians["a"], medians["b"], medians["b2"], medians["c"]

  print("\n" + "\n".join(header))
  print(f"  {'pipeline':<43} {'images/s':>9}   {'min .. max':^17}  {'CPU us/img':>10}")
  print("\n".join(rows))
  print(f"  peer d = {peer} (RandAugment {'per image' if peer == 'd1' else 'per batch'}, "
        f"the faster): {d:.0f} images/s")
  print(f"  ratios: b/d = {b / d:.2f}   b2/d = {b2 / d:.2f}   c/d = {c / d:.2f}   "
        f"b/a = {b / a:.2f}   c/b = {c / b:.2f}")
  print(f"  same ratios from CPU time per image (steadier on a shared CPU): "
        f"b/d = {cpu[peer] / cpu['b']:.2f}   b2/d = {cpu[peer] / cpu['b2']:.2f}   "
        f"c/d = {cpu[peer] / cpu['c']:.2f}   "
        f"b/a = {cpu['a'] / cpu['b']:.2f}   c/b = {cpu['b'] / cpu['c']:.2f}")
  print(f"  target b/d >= 2.0: {'MET' if b / d >= 2.0 else 'NOT MET'} ({b / d:.2f}; "
        f"trainer's per-image path b2/d = {b2 / d:.2f})")
  print(f"  target c >= b:     {'MET' if c >= b else 'NOT MET'} (c/b = {c / b:.2f})")
  print(f"  ohl_tf RandAugment against keras-cv's: e/d = {medians['e'] / d:.2f} "
        f"(CPU time: {cpu[peer] / cpu['e']:.2f})")
  print(f"  load average (1, 5, 15 min): before {load_before}, after {reporting.load_average()}",
        flush=True)

  if _PROFILE.value:
    profile(images)


# ---------------------------------------------------------------------------------------------
# Profile: the cost of each element family, away from tf.data.
# ---------------------------------------------------------------------------------------------


def _families():
  """{family name: its element indices}, in the order of the search space."""
  families = {}
  for index, element in enumerate(augment.ELEMENTS):
    families.setdefault(element.name, []).append(index)
  return families


def _cpu_microseconds_per_image(fn, num_images, repeats):
  """Min over `repeats` of the process CPU time of fn() per image (after one warm-up call).

  The minimum, because another process sharing the CPU can only add time.
  """
  fn()  # traces
  costs = []
  for _ in range(repeats):
    start = time.process_time()
    fn()
    costs.append(1e6 * (time.process_time() - start) / num_images)
  return min(costs)


def profile(images, repeats=5):
  """Prints the CPU cost per image of each element family and of a whole operation.

  Runs each path on a fixed batch of real images in a tf.function, without tf.data: the
  per-image path under `tf.map_fn` one image at a time (what each call of the per-image map
  does), the batched path in one call. The per-image figures are net of `tf.map_fn`'s own cost,
  measured with an identity function; tf.data adds its per-element cost on top (see (a)).
  """
  batch = tf.constant(images[:256 if images.shape[1] <= 64 else 64])
  num_images = int(batch.shape[0])
  seed = tf.constant([_SEED, 7])

  def per_image(fn, *args):
    return tf.function(lambda: tf.map_fn(lambda a: fn(*a), (batch,) + args,
                                          fn_output_signature=tf.uint8, parallel_iterations=1),
                       autograph=False)

  overhead = _cpu_microseconds_per_image(per_image(lambda x: x), num_images, repeats)
  rows = []
  signs = operations.sample_signs([num_images], seed)
  for name, indices in _families().items():
    elements = tf.gather(indices, tf.range(num_images) % len(indices))  # every magnitude
    rows.append((name, per_image(augment.apply_element, elements, signs),
                 tf.function(lambda e=elements: augment.apply_element(batch, e, signs),
                             autograph=False)))
  ops, op_signs = _sample_ops([num_images], seed)
  rows.append(("operation", per_image(augment.apply_drawn_operation, ops, op_signs),
               tf.function(lambda: augment.apply_operation(batch, ops, op_signs),
                           autograph=False)))

  print(f"\nCPU microseconds per {batch.shape[1]}x{batch.shape[2]} image, min of {repeats} runs "
        f"over {num_images} real images, outside tf.data (per-image: tf.map_fn, net of its "
        f"{overhead:.1f} us; batched: one call). 'operation' = two uniform elements.")
  print(f"  {'family':<14} {'per-image':>10} {'batched':>10}")
  for name, per_image_fn, batched_fn in rows:
    cost = _cpu_microseconds_per_image(per_image_fn, num_images, repeats) - overhead
    batched_cost = _cpu_microseconds_per_image(batched_fn, num_images, repeats)
    print(f"  {name:<14} {cost:>10.1f} {batched_cost:>10.1f}", flush=True)


if __name__ == "__main__":
  app.run(main)
