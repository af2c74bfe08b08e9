r"""How soon does a large folder train, streamed from its files vs decoded into memory?

Writes a ROOT/<class> folder of --images small JPEGs (default 100,000: the shared CIFAR-10
images, resized to 32-48 px and flipped, or random pixels when they are absent) into a temporary
directory, then runs `python -m ohl_tf.main --dataset=folder:ROOT --image_size=32` once per
--folder_stream mode, each in its own process: the seconds from the process's start to the first
training step (the run's own "first training step" line, and the wall time seen from here), the
training images/s of its first outer step, and the process's peak resident memory (ru_maxrss,
from os.wait4), the run being stopped after that outer step. Target: streaming's first step
within seconds, its memory bounded by the pipeline's buffers, not by the folder.

  nice -n 5 python benchmarks/folder_streaming.py     # ~5 min on 2 cores, ~0.5 GB of disk
"""

import datetime
import os
import pathlib
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags
import numpy as np
from PIL import Image
import tensorflow as tf

_REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(_REPO))

from ohl_tf.datasets import known_answer  # pylint: disable=g-import-not-at-top,wrong-import-position
import reporting  # pylint: disable=g-import-not-at-top,wrong-import-position

_IMAGES = flags.DEFINE_integer("images", 100_000, "JPEG files in the generated folder.")
_MODES = flags.DEFINE_list("modes", ["always", "never"], "--folder_stream modes to run.")
_CIFAR = flags.DEFINE_string(
    "cifar", str(known_answer.DEFAULT_DATA_DIR),
    "Folder of the CIFAR-10 PNGs the files are made from (train/<class>), as the tests' "
    f"{known_answer.DATA_ENV}.")
_ROOT = flags.DEFINE_string("root", "", "An existing folder to use instead of generating one.")
_LOAD_ONLY = flags.DEFINE_string("load_only", "", "Internal: time datasets.load of --root with "
                                 "this --folder_stream mode, in this process, and print it.")
_INNER_STEPS = flags.DEFINE_integer("inner_steps", 20, "Steps of the timed first outer step.")
_TIMEOUT = flags.DEFINE_integer("timeout", 1800, "Seconds a run may take before it is stopped.")


def _sources():
  """(uint8 images, class names) the files are made from: CIFAR-10 or random pixels."""
  train = pathlib.Path(_CIFAR.value) / "train"
  if train.is_dir():
    names = sorted(p.name for p in train.iterdir() if p.is_dir())
    paths = sorted(train.glob("*/*.png"))
    return [(np.asarray(Image.open(p).convert("RGB")), names.index(p.parent.name))
            for p in paths], names
  rng = np.random.default_rng(0)
  names = [f"class{i}" for i in range(10)]
  return [(rng.integers(0, 256, [32, 32, 3], np.uint8), i % 10) for i in range(1000)], names


def make_folder(root, count):
  """root/<class>/<i>.jpg of `count` distinct small JPEGs; returns seconds taken."""
  start = time.perf_counter()
  sources, names = _sources()
  for name in names:
    (root / name).mkdir(parents=True)
  order = np.random.default_rng(0).permutation(len(sources))  # every class in a small folder
  for i in range(count):
    image, label = sources[order[i % len(sources)]]
    side = 32 + (i * 7) % 17  # 32-48 px, so --image_size resizes most of them
    picture = Image.fromarray(image).resize((side, side), Image.BILINEAR)
    if (i // len(sources)) % 2:
      picture = picture.transpose(Image.FLIP_LEFT_RIGHT)
    picture.save(root / names[label] / f"{i:06d}.jpg", quality=90)
  return time.perf_counter() - start


def _load(root, mode):
  """--load_only: prints the seconds of `datasets.load` and the process's peak RSS in MiB."""
  from ohl_tf import datasets  # pylint: disable=g-import-not-at-top
  start = time.perf_counter()
  data = datasets.load(f"folder:{root}", val_size=500, test_size=500, seed=0, image_size=32,
                       stream=mode)
  seconds = time.perf_counter() - start
  assert isinstance(data, datasets.FolderStream) == (mode == "always")
  print(f"load {seconds:.2f} {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}")


def load_mode(root, mode):
  """(seconds of datasets.load, peak RSS MiB of a process that only loads) with `mode`."""
  result = subprocess.run([sys.executable, __file__, f"--root={root}", f"--load_only={mode}"],
                          cwd=_REPO, capture_output=True, text=True, check=True,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
  line = next(line for line in result.stdout.splitlines() if line.startswith("load "))
  return tuple(float(value) for value in line.split()[1:])


def run_mode(root, mode, model_dir):
  """(first step s as the run reports it, wall s to it, images/s of the first outer step,
  peak RSS MiB) of one run with --folder_stream=mode."""
  command = [sys.executable, "-m", "ohl_tf.main", f"--dataset=folder:{root}", "--image_size=32",
             f"--folder_stream={mode}", "--model=resnet8", "--trajectories=1",
             "--batch_size=128", "--epochs=1", f"--inner_steps={_INNER_STEPS.value}",
             "--val_size=500", "--test_size=500", "--eval_batch_size=500",
             f"--model_dir={model_dir}"]
  started = time.monotonic()
  process = subprocess.Popen(command, cwd=_REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
  first_step = wall = rate = None
  try:
    for line in process.stdout:
      if line.startswith("first training step"):
        first_step, wall = float(line.split()[3]), time.monotonic() - started
      elif line.startswith("outer step 1/"):
        rate = float(line.split(" images/s")[0].rsplit(" ", 1)[-1])
        break
      if time.monotonic() - started > _TIMEOUT.value:
        break
  finally:
    process.send_signal(signal.SIGKILL)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = status
  if rate is None:
    raise RuntimeError(f"--folder_stream={mode} ended before its first outer step:\n"
                       f"{process.stderr.read()[-3000:]}")
  return first_step, wall, rate, usage.ru_maxrss / 1024


def main(argv):
  del argv
  if _LOAD_ONLY.value:
    _load(_ROOT.value, _LOAD_ONLY.value)
    return
  with tempfile.TemporaryDirectory() as work:
    root = pathlib.Path(_ROOT.value or pathlib.Path(work) / "folder")
    if not _ROOT.value:
      seconds = make_folder(root, _IMAGES.value)
      print(f"wrote {_IMAGES.value:,} JPEGs in {seconds:.0f} s", flush=True)
    count = sum(1 for _ in root.glob("*/*.jpg"))
    size = sum(f.stat().st_size for f in root.glob("*/*.jpg")) / 2**20
    results = {}
    for mode in _MODES.value:
      load_seconds, load_rss = load_mode(root, mode)
      results[mode] = (load_seconds, load_rss, *run_mode(root, mode,
                                                         pathlib.Path(work) / f"run_{mode}"))
      shutil.rmtree(pathlib.Path(work) / f"run_{mode}", ignore_errors=True)
      print(f"  --folder_stream={mode}: datasets.load {load_seconds:.1f} s ({load_rss:.0f} MiB); "
            f"first training step {results[mode][2]:.1f} s (wall {results[mode][3]:.1f} s), "
            f"{results[mode][4]:.0f} training images/s, peak RSS {results[mode][5]:.0f} MiB",
            flush=True)
  print(f"\nfolder_streaming, {datetime.datetime.now():%Y-%m-%d %H:%M}, {reporting.machine()}, "
        f"load {reporting.load_average()}, TensorFlow {tf.__version__}")
  print(f"  {count:,} JPEGs ({size:.0f} MiB) in ROOT/<class>, --image_size=32, resnet8, "
        f"1 trajectory, batch 128, first outer step of {_INNER_STEPS.value} steps")
  print("  | --folder_stream | datasets.load (its process's peak RSS) | first training step "
        "| training images/s | peak RSS of the run |")
  for mode, (load_seconds, load_rss, first_step, wall, rate, rss) in results.items():
    print(f"  | {mode} | {load_seconds:.1f} s ({load_rss:.0f} MiB) | {first_step:.1f} s (wall "
          f"{wall:.1f} s) | {rate:.0f} | {rss:.0f} MiB |")


if __name__ == "__main__":
  app.run(main)
