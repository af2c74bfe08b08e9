"""End to end through `python -m ohl_tf.main`, as a user runs it: artefacts read back with plain
TensorFlow and TensorBoard, a SIGKILL and resume, and bad input."""

from concurrent import futures
import dataclasses
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing import event_accumulator
import run_testing
import terminal_testing

from ohl_tf import augment
from ohl_tf import datasets
from ohl_tf import policy_file
from ohl_tf import run_config
from ohl_tf import summaries

_ROOT = run_testing.ROOT


# ---------------------------------------------------------------------------------------------
# A quick run leaves everything a user needs.
# ---------------------------------------------------------------------------------------------

# 4 outer steps of 4 steps. REINFORCE, the paper's estimator: element_es resumes in
# test_sigkill_and_resume_matches_an_uninterrupted_run's recommended case (its ε drawn per
# operation through the same gather that draws the quick run's one per element).
_RESUME_FLAGS = ("--epochs=2", "--inner_steps=4", "--deterministic", "--estimator=reinforce")


@pytest.fixture(scope="module")
def reference_runs(tmp_path_factory):
  """{"quick": (model_dir, result), "deterministic": (model_dir, result)}: the quick run and an
  uninterrupted run of _RESUME_FLAGS, side by side (independent, each mostly on one core)."""
  model_dirs = {name: tmp_path_factory.mktemp(name) / "run" for name in ("quick", "deterministic")}
  results = run_testing.run_side_by_side([
      (model_dirs["quick"], ["--epochs=2", "--inner_steps=4"]),
      (model_dirs["deterministic"], list(_RESUME_FLAGS))])
  return {name: (model_dirs[name], result) for name, result in zip(model_dirs, results)}


@pytest.fixture(scope="module")
def quick_run(reference_runs):
  model_dir, result = reference_runs["quick"]
  assert result.returncode == 0, result.stderr[-4000:]
  return model_dir, result


def test_quick_run_terminal(quick_run):
  model_dir, result = quick_run
  # None of TensorFlow's logs: the configuration, the time to the first training step, one line
  # per outer step, the results.
  assert not terminal_testing.native_lines(result.stdout + result.stderr), result.stderr[-3000:]
  lines = result.stdout.splitlines()
  assert lines[:2] == [f"New run in {model_dir}",
                       "  data      synthetic: 256 training images, 64 validation"]
  assert "  search    N=2 on CPU:0 | CPU:0" in lines[:6]
  steps = [line for line in lines if line.startswith("outer step ")]
  assert [line.split(":")[0] for line in steps] == [
      f"outer step {k}/4 (step {4 * k}/16)" for k in range(1, 5)]
  assert all(", val accuracy [" in line and ", ETA " in line for line in steps)
  # The time itself is the machine's (186 s was seen on 2 cores shared by 5 jobs): its form only.
  assert re.fullmatch(r"first training step \d+\.\d s after the start", lines[6]), lines[6]
  assert lines[7:11] == steps
  assert lines[11:] == [lines[-1]]
  assert lines[-1].startswith("results: dataset=synthetic model=resnet8 policy=ohl ")


def test_saved_model_serves_uint8_images_with_plain_tensorflow(quick_run):
  model_dir, _ = quick_run
  loaded = tf.saved_model.load(str(model_dir / "saved_model"))
  serve = loaded.signatures["serving_default"]
  images = datasets.synthetic_examples(8, seed=5)[0]
  outputs = serve(images=tf.constant(images))
  probabilities = outputs["probabilities"].numpy()
  assert probabilities.shape == (8, len(datasets.SYNTHETIC_CLASS_NAMES))
  np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
  np.testing.assert_array_equal(outputs["class_id"].numpy(), probabilities.argmax(axis=1))
  assert [name.decode() for name in outputs["class_name"].numpy()] == [
      datasets.SYNTHETIC_CLASS_NAMES[i] for i in probabilities.argmax(axis=1)]
  spec = serve.structured_input_signature[1]["images"]
  assert spec.dtype == tf.uint8 and spec.shape.as_list() == [None, 32, 32, 3]
  names_file = model_dir / "saved_model" / "assets" / "class_names.txt"
  assert names_file.read_text().splitlines() == list(datasets.SYNTHETIC_CLASS_NAMES)


def test_policy_and_results_files(quick_run):
  model_dir, _ = quick_run
  exported = json.loads((model_dir / "policy.json").read_text())
  assert [e["name"] for e in exported["elements"]] == [e.name for e in augment.ELEMENTS]
  probabilities = np.array(exported["probabilities"])
  assert probabilities.shape == (36, 36) and abs(probabilities.sum() - 1) < 1e-6
  theta = np.array(exported["theta"])
  assert theta.shape == (1296,) and theta.any()  # 4 outer steps moved it
  sigmoid = 1 / (1 + np.exp(-theta))
  np.testing.assert_allclose(probabilities.reshape(-1), sigmoid / sigmoid.sum(), rtol=1e-5)
  # What the surviving network trained on: one op per image of its 16 steps of 32.
  lineage = exported["lineage"]
  assert lineage["operations"] == 16 * 32
  assert np.shape(lineage["probabilities"]) == (36, 36)
  assert abs(np.sum(lineage["probabilities"]) - 1) < 1e-9
  results = json.loads((model_dir / "results.json").read_text())
  assert set(results) == {"dataset", "model", "policy", "test_accuracy", "test_top5_accuracy",
                          "best_val_accuracy", "epochs", "trajectories",
                          "search_cost_iterations", "wall_time_s"}
  assert (results["dataset"], results["model"], results["policy"]) == ("synthetic", "resnet8",
                                                                       "ohl")
  assert 0 <= results["test_accuracy"] <= results["test_top5_accuracy"] <= 1
  assert results["search_cost_iterations"] == 2 * 16 * 32 / 1024
  assert not list(model_dir.glob(".*tmp*"))  # no staging left behind


def test_tensorboard_reads_the_logs(quick_run):
  model_dir, _ = quick_run
  events = event_accumulator.EventAccumulator(
      str(model_dir / "logs"), size_guidance={event_accumulator.TENSORS: 0})
  events.Reload()
  # TF2 writes every summary (scalars, images, histograms, text) as a tensor event.
  assert {"policy/theta", "policy/probabilities", "policy/element_marginals", "policy/entropy",
          "policy/top_operations", "train/learning_rate", "trajectory_0/val_accuracy",
          "trajectory_1/reward", "trajectory_1/train_loss", "policy/lineage",
          "policy/lineage_operations"} <= set(events.Tags()["tensors"])
  plugins = events.PluginTagToContent
  assert "policy/probabilities" in plugins("images") and "policy/theta" in plugins("histograms")
  assert [e.step for e in events.Tensors("policy/entropy")] == [1, 2, 3, 4]
  # Figures at most every --figure_interval_secs (60 s: the first and the last outer step here).
  for tag in ("policy/probabilities", "policy/element_marginals", "policy/lineage"):
    assert [e.step for e in events.Tensors(tag)] == [1, 4], tag
  width, height, png = tf.make_ndarray(events.Tensors("policy/probabilities")[-1].tensor_proto)
  heatmap = tf.io.decode_png(png)
  assert heatmap.shape == (int(height), int(width), 3)
  marginals = tf.io.decode_png(tf.make_ndarray(
      events.Tensors("policy/element_marginals")[-1].tensor_proto)[2])
  # Both are labelled figures of one fixed size, whatever the number of outer steps.
  figure = (round(summaries.FIGURE_SIZE[1] * summaries.DPI),
            round(summaries.FIGURE_SIZE[0] * summaries.DPI), 3)
  assert heatmap.shape == figure and marginals.shape == figure


def test_checkpoints_hold_theta_and_every_trajectory(quick_run):
  model_dir, _ = quick_run
  reader = tf.train.load_checkpoint(str(model_dir / "checkpoints"))
  names = reader.get_variable_to_shape_map()
  assert names["theta/.ATTRIBUTES/VARIABLE_VALUE"] == [1296]
  assert any(n.startswith("trajectory_1/optimizer") for n in names)
  assert int(reader.get_tensor("outer_step/.ATTRIBUTES/VARIABLE_VALUE")) == 4


# ---------------------------------------------------------------------------------------------
# Policy transfer: the run's policy.json as a Keras layer elsewhere, and as a fixed --policy.
# ---------------------------------------------------------------------------------------------

def test_the_runs_policy_loads_into_learned_augment_in_a_fresh_process(quick_run, tmp_path):
  model_dir, _ = quick_run
  policy_path, keras_path = model_dir / "policy.json", tmp_path / "augment.keras"
  images = datasets.synthetic_examples(8, seed=9)[0]
  np.save(tmp_path / "images.npy", images)
  script = (
      "import keras, numpy as np\n"
      "from ohl_tf import LearnedAugment\n"
      f"layer = LearnedAugment.from_policy({str(policy_path)!r}, seed=4)\n"
      "model = keras.Sequential([keras.Input([32, 32, 3], dtype='uint8'), layer])\n"
      f"model.save({str(keras_path)!r})\n"
      f"np.save({str(tmp_path / 'out.npy')!r}, "
      f"np.asarray(layer(np.load({str(tmp_path / 'images.npy')!r}))))\n")
  result = subprocess.run([sys.executable, "-c", script], cwd=_ROOT, capture_output=True,
                          text=True, timeout=300, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  from ohl_tf import learned_augment  # pylint: disable=g-import-not-at-top
  fresh = learned_augment.LearnedAugment.from_policy(policy_path, seed=4)
  np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), fresh(images))
  loaded = keras.saving.load_model(keras_path).layers[0]
  np.testing.assert_allclose(np.asarray(loaded.get_config()["probabilities"]).reshape(-1),
                             policy_file.read(policy_path), rtol=1e-12)


def test_policy_file_retrains_with_the_learned_policy_fixed(quick_run, tmp_path):
  model_dir, _ = quick_run
  spec = f"file:{model_dir / 'policy.json'}"
  # One trajectory, as README's transfer command: the policy is fixed, nothing to search.
  result = run_testing.run(tmp_path / "transfer", "--epochs=1", "--inner_steps=4",
                           "--trajectories=1", f"--policy={spec}")
  assert result.returncode == 0, result.stderr[-3000:]
  assert result.stdout.splitlines()[-1].startswith(
      f"results: dataset=synthetic model=resnet8 policy={spec} ")
  results = json.loads((tmp_path / "transfer" / "results.json").read_text())
  assert results["policy"] == spec and 0 <= results["test_accuracy"] <= 1
  kept = json.loads((tmp_path / "transfer" / "policy.json").read_text())  # the p it trained with
  assert kept["source"] == str(model_dir / "policy.json")
  np.testing.assert_allclose(kept["probabilities"],
                             json.loads((model_dir / "policy.json").read_text())["probabilities"])


# ---------------------------------------------------------------------------------------------
# ImageNet, streamed: tfds prepares a miniature manual download; the run goes end to end.
# ---------------------------------------------------------------------------------------------

def test_imagenet_run_from_its_manual_download(imagenet_data_dir, tmp_path):
  model_dir = tmp_path / "imagenet"
  result = run_testing.run(model_dir, "--dataset=imagenet2012",
                           f"--data_dir={imagenet_data_dir}", "--image_size=32",
                           "--train_subset=0", "--val_size=5", "--batch_size=4", "--epochs=1",
                           "--cutout=0", "--eval_batch_size=4")
  assert result.returncode == 0, result.stderr[-3000:]
  # tfds reports its preparation on stdout too; the results line comes last.
  assert result.stdout.splitlines()[-1].startswith(
      "results: dataset=imagenet2012 model=resnet8 policy=ohl ")
  serve = tf.saved_model.load(str(model_dir / "saved_model")).signatures["serving_default"]
  outputs = serve(images=tf.zeros([3, 32, 32, 3], tf.uint8))
  assert outputs["probabilities"].shape == (3, 1000)
  # ImageNet's classes are named by their synsets, as tfds names them.
  assert all(name.startswith(b"n") and len(name) == 9 for name in outputs["class_name"].numpy())
  names_file = model_dir / "saved_model" / "assets" / "class_names.txt"
  assert names_file.read_text().splitlines()[:2] == ["n01440764", "n01443537"]
  results = json.loads((model_dir / "results.json").read_text())
  assert results["search_cost_iterations"] == 2 * 1 * 4 * 4 / 1024  # 19 images: 4 steps/epoch


# ---------------------------------------------------------------------------------------------
# Killed, damaged, a failed write: survived, the same θ and weights as an uninterrupted run.
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def deterministic_run(reference_runs):
  """An uninterrupted --deterministic run of 4 outer steps, and its final checkpoint: what every
  interrupted and resumed run of _RESUME_FLAGS must end with."""
  model_dir, result = reference_runs["deterministic"]
  assert result.returncode == 0, result.stderr[-3000:]
  return model_dir, run_testing.final_checkpoint(model_dir)


def _checkpoint_numbers(model_dir):
  """The N of every ckpt-N.index in model_dir/checkpoints (none before the first is written)."""
  return [int(path.name[len("ckpt-"):-len(".index")])
          for path in (model_dir / "checkpoints").glob("ckpt-*.index")]


def _kill_after_checkpoint(model_dir, flags, number, code=_ROOT):
  """Starts `python -m ohl_tf.main` on `model_dir` and SIGKILLs it once ckpt-`number` (or a
  later one: a slow poll may see ckpt-`number` only after the run has kept newer ones) exists.

  `code`: the folder holding the `ohl_tf` and `models` it runs (the repository's, by default).
  """
  process = subprocess.Popen(run_testing.command(model_dir, *flags), cwd=code,
                             env=terminal_testing.environment(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  deadline = time.time() + 300
  while max(_checkpoint_numbers(model_dir), default=0) < number:
    assert process.poll() is None and time.time() < deadline, "the run ended before the kill"
    time.sleep(0.05)
  process.send_signal(signal.SIGKILL)
  process.wait()
  assert not (model_dir / "results.json").exists()


# REINFORCE in the paper's space shares the fault tests' uninterrupted run; the recommended
# settings (element_es with one ε per operation, in AutoAugment's space) also replay each period's
# perturbations and the elements' drawn applications after the restart: their resume is the paper
# space's code with E = 42 (as paper_identity's with E = 37), so one case covers the spaces beyond
# the paper.
_RECOMMENDED = f"--flagfile={_ROOT / 'flags' / 'ohl_recommended.cfg'}"


@pytest.mark.parametrize("settings, search_space", [
    ((), "paper"), ((_RECOMMENDED,), "autoaugment_cifar10")], ids=["reinforce", "recommended"])
def test_sigkill_and_resume_matches_an_uninterrupted_run(deterministic_run, tmp_path, settings,
                                                        search_space):
  flags = [*_RESUME_FLAGS, *settings]
  whole_dir, killed_dir = tmp_path / "whole", tmp_path / "killed"
  with futures.ThreadPoolExecutor(1) as pool:
    if not settings:
      whole_dir, uninterrupted = deterministic_run[0], None
    else:  # its own uninterrupted run, beside the killed one: on 2 cores, little more than one
      uninterrupted = pool.submit(run_testing.run, whole_dir, *flags)
    _kill_after_checkpoint(killed_dir, flags, 2)  # after outer step 2 of 4
    resumed = run_testing.run(killed_dir, *flags)
  if uninterrupted:
    assert uninterrupted.result().returncode == 0, uninterrupted.result().stderr[-3000:]
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert resumed.stdout.startswith(f"Resuming the run in {killed_dir}\n")
  if settings:  # the terminal names the estimator as the run's flags set it
    assert "element_es (σ=2, one ε per operation)" in resumed.stdout
  run_testing.assert_same_checkpoint(killed_dir, run_testing.final_checkpoint(whole_dir))
  policy_json = json.loads((killed_dir / "policy.json").read_text())
  whole = json.loads((whole_dir / "policy.json").read_text())
  assert policy_json["theta"] == whole["theta"]
  assert policy_json["search_space"] == search_space
  assert len(policy_json["theta"]) == augment.search_space(search_space).num_operations


# The code before issue 17 took the trainer apart (search.py one module of 643 lines).
_BEFORE_THE_SPLIT = "57ef149"


def _export_commit(commit, destination):
  """Writes `commit`'s `ohl_tf`, `models` and `flags` into `destination` with `git archive`;
  skips the calling test, with the reason, where the repository or the commit is not there."""
  if shutil.which("git") is None:
    pytest.skip("git is not on PATH: the code before the change cannot be exported")
  found = subprocess.run(["git", "-C", str(_ROOT), "cat-file", "-e", f"{commit}^{{commit}}"],
                         capture_output=True, check=False)
  if found.returncode:
    pytest.skip(f"commit {commit} is not in {_ROOT} (not a git clone with its history, e.g. a "
                f"tarball or a shallow clone): {found.stderr.decode().strip()}")
  archive = subprocess.run(["git", "-C", str(_ROOT), "archive", "--format=tar", commit,
                            "ohl_tf", "models", "flags"], capture_output=True, check=True)
  destination.mkdir()
  subprocess.run(["tar", "-x", "-C", str(destination)], input=archive.stdout, check=True)


@pytest.mark.slow
def test_a_run_directory_of_the_code_before_the_split_resumes_to_the_same_checkpoint(
    deterministic_run, tmp_path):
  # Issue 17: a run started by the code before the change, killed after outer step 2 of 4, ends
  # under this code with the θ, weights and slots of an uninterrupted run of this code.
  old_code = tmp_path / "old_code"
  _export_commit(_BEFORE_THE_SPLIT, old_code)
  assert (old_code / "ohl_tf" / "main.py").exists()
  assert not (old_code / "ohl_tf" / "population.py").exists()  # really the code before the split
  model_dir = tmp_path / "run"
  _kill_after_checkpoint(model_dir, _RESUME_FLAGS, 2, code=old_code)
  resumed = run_testing.run(model_dir, *_RESUME_FLAGS)
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert resumed.stdout.startswith(f"Resuming the run in {model_dir}\n")
  assert "outer step 4/4" in resumed.stdout  # this code trained at least the last period
  whole_dir, expected = deterministic_run
  run_testing.assert_same_checkpoint(model_dir, expected)
  theta = json.loads((model_dir / "policy.json").read_text())["theta"]
  assert theta == json.loads((whole_dir / "policy.json").read_text())["theta"]


def _truncate_data(prefix):
  data = prefix.with_name(prefix.name + ".data-00000-of-00001")
  os.truncate(data, data.stat().st_size // 2)


@pytest.fixture(scope="module")
def damaged_runs(deterministic_run, tmp_path_factory):
  """{truncated: (model_dir, result)}: copies of the deterministic run whose ckpt-4, or ckpt-3
  and ckpt-4 (every one kept), are truncated, rerun side by side (independent, each mostly on
  one core)."""
  damage = {"ckpt-4": (4,), "ckpt-3 and ckpt-4": (3, 4)}
  model_dirs = {name: tmp_path_factory.mktemp("damaged") / "run" for name in damage}
  for name, model_dir in model_dirs.items():
    shutil.copytree(deterministic_run[0], model_dir)
    for number in damage[name]:
      _truncate_data(model_dir / "checkpoints" / f"ckpt-{number}")
  results = run_testing.run_side_by_side([(model_dirs[name], _RESUME_FLAGS) for name in damage])
  return {name: (model_dirs[name], result) for name, result in zip(damage, results)}


# One kind of damage end to end: tests/checkpoints_test.py finds each of five kinds (truncated,
# deleted or flipped data, damaged or deleted index) and sets it aside the same way.
def test_a_damaged_latest_checkpoint_is_set_aside_and_the_run_resumes_from_the_previous_one(
    deterministic_run, damaged_runs):
  _, expected = deterministic_run
  model_dir, resumed = damaged_runs["ckpt-4"]
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert resumed.stdout.startswith(f"Resuming the run in {model_dir}\n")
  # One line names the file and what is wrong; outer step 4 is trained again.
  reports = [line for line in resumed.stderr.splitlines() if "is damaged" in line]
  assert len(reports) == 1 and str(model_dir / "checkpoints" / "ckpt-4") in reports[0], (
      resumed.stderr[-3000:])
  assert "Read less bytes than requested" in reports[0]
  assert "outer step 4/4" in resumed.stdout and "outer step 3/4" not in resumed.stdout
  assert sorted(p.name for p in (model_dir / "checkpoints" / "damaged").iterdir())
  run_testing.assert_same_checkpoint(model_dir, expected)


def test_no_intact_checkpoint_is_one_line_saying_what_to_do(damaged_runs):
  model_dir, result = damaged_runs["ckpt-3 and ckpt-4"]
  assert result.returncode == 1
  assert result.stderr.startswith(f"error: No intact checkpoint in {model_dir / 'checkpoints'} "
                                  "(ckpt-4: Read less bytes than requested; ckpt-3: "), (
                                      result.stderr[-3000:])
  assert "--overwrite" in result.stderr and len(result.stderr.splitlines()) == 1
  assert not (model_dir / "checkpoints" / "damaged").exists()


@pytest.mark.skipif(not hasattr(resource, "prlimit"), reason="needs Linux's prlimit")
def test_a_failed_checkpoint_write_is_one_line_and_the_rerun_resumes(deterministic_run,
                                                                     tmp_path):
  model_dir = tmp_path / "run"
  process = subprocess.Popen(run_testing.command(model_dir, *_RESUME_FLAGS), cwd=_ROOT,
                             env=terminal_testing.environment(), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
  deadline = time.time() + 300
  while not (model_dir / "checkpoints" / "ckpt-1.index").exists():
    assert process.poll() is None and time.time() < deadline, "the run ended too early"
    time.sleep(0.01)
  # From now on no file of the run may grow beyond 256 KB, as on a full disk: a checkpoint's
  # data file (1.3 MB) cannot be written (Python ignores SIGXFSZ: the write fails with EFBIG).
  resource.prlimit(process.pid, resource.RLIMIT_FSIZE, (256 << 10, 256 << 10))
  _, stderr = process.communicate(timeout=300)
  assert process.returncode == 1
  failed = re.fullmatch(
      f"error: Could not write {re.escape(str(model_dir / 'checkpoints'))}/ckpt-([234]): File "
      r"too large\. Nothing half-written is left; rerunning the same command resumes from outer "
      r"step ([123])\.\n", stderr)
  assert failed and int(failed.group(1)) == int(failed.group(2)) + 1, stderr[-3000:]
  assert not [p for p in model_dir.rglob("*") if "_temp" in p.name or ".tmp" in p.name]
  assert not list(model_dir.glob(f"checkpoints/ckpt-{failed.group(1)}.*"))

  resumed = run_testing.run(model_dir, *_RESUME_FLAGS)
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert resumed.stdout.startswith(f"Resuming the run in {model_dir}\n")
  run_testing.assert_same_checkpoint(model_dir, deterministic_run[1])


def test_a_failed_export_write_is_one_line_and_the_rerun_writes_the_exports(deterministic_run,
                                                                            tmp_path):
  model_dir = tmp_path / "run"
  shutil.copytree(deterministic_run[0], model_dir)
  shutil.rmtree(model_dir / "saved_model")
  (model_dir / "policy.json").unlink()
  (model_dir / "results.json").unlink()
  # Every outer step is done: the rerun only exports, and the SavedModel's 300 KB of variables
  # exceed the limit (Python ignores SIGXFSZ: the write fails with EFBIG).
  limit = lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (128 << 10, 128 << 10))
  failed = subprocess.run(run_testing.command(model_dir, *_RESUME_FLAGS), cwd=_ROOT,
                          preexec_fn=limit, env=terminal_testing.environment(),
                          capture_output=True, text=True, timeout=600, check=False)
  assert failed.returncode == 1
  assert failed.stderr == (
      f"error: Could not write {model_dir / 'saved_model'}: File too large. Nothing half-written "
      "is left; rerunning the same command resumes after the last outer step and writes the "
      "exports.\n")
  assert sorted(p.name for p in model_dir.iterdir()) == ["checkpoints", "config.json", "logs"]

  rerun = run_testing.run(model_dir, *_RESUME_FLAGS)
  assert rerun.returncode == 0, rerun.stderr[-3000:]
  assert (json.loads((model_dir / "policy.json").read_text()) ==
          json.loads((deterministic_run[0] / "policy.json").read_text()))
  assert tf.saved_model.load(str(model_dir / "saved_model")).signatures["serving_default"]


# ---------------------------------------------------------------------------------------------
# --augment_on=device: the augmentation in the training step, the same run.
# ---------------------------------------------------------------------------------------------

def test_augmenting_on_the_device_gives_the_run_augmenting_on_the_host(quick_run, tmp_path):
  host_dir, _ = quick_run
  result = run_testing.run(tmp_path / "device", "--epochs=2", "--inner_steps=4",
                           "--augment_on=device")
  assert result.returncode == 0, result.stderr[-3000:]
  assert json.loads((tmp_path / "device" / "config.json").read_text())["augment_on"] == "device"
  # θ, its Adam state, every trajectory's weights and optimizer, the lineage of op counts.
  run_testing.assert_same_checkpoint(tmp_path / "device", run_testing.final_checkpoint(host_dir))
  host_policy, device_policy = (json.loads((d / "policy.json").read_text())
                                for d in (host_dir, tmp_path / "device"))
  assert device_policy["lineage"] == host_policy["lineage"]
  assert device_policy["lineage"]["operations"] == 16 * 32


# ---------------------------------------------------------------------------------------------
# Bad input: a clear message, a non-zero exit, nothing lost.
# ---------------------------------------------------------------------------------------------

# One setting refused by run_config.Config stands for them all (tests/run_config_test.py checks
# each one's message in-process); the others fail later, where something could be written.
_BAD_INPUT = [
    (["--trajectories=0"], "--trajectories must be >= 1"),
    (["--val_size=6000"], "--val_size"),
    (["--cpu_devices=4", "--trajectories=1", "--batch_size=30", "--estimator=reinforce"],
     "--batch_size=30 is not divisible by the 4 replicas of trajectory 0"),
    (["--dataset=folder:/nonexistent/pets"], "/nonexistent/pets"),
    (["--train_subset=9000"], "--train_subset=9000 exceeds the 4936 training images"),
]


@pytest.fixture(scope="module")
def bad_input_runs(tmp_path_factory):
  """[(model_dir, result)] of _BAD_INPUT's runs, in its order, run side by side: each is mostly
  TensorFlow's import, on one core."""
  model_dirs = [tmp_path_factory.mktemp("bad_input") / "run" for _ in _BAD_INPUT]
  results = run_testing.run_side_by_side(
      [(model_dir, ["--epochs=1", *flags]) for model_dir, (flags, _) in zip(model_dirs,
                                                                           _BAD_INPUT)])
  return list(zip(model_dirs, results))


@pytest.mark.parametrize("flags,message", _BAD_INPUT)
def test_bad_input_exits_with_a_clear_message_and_writes_nothing(bad_input_runs, flags, message):
  model_dir, result = bad_input_runs[_BAD_INPUT.index((flags, message))]
  assert result.returncode != 0
  assert f"error: {message}" in result.stderr or message in result.stderr, result.stderr[-2000:]
  assert "Traceback" not in result.stderr
  assert not terminal_testing.native_lines(result.stderr), result.stderr[-2000:]
  assert not model_dir.exists()


def test_verbosity_brings_tensorflows_logs_back(tmp_path):
  # Runs stopped by a bad flag: TensorFlow has loaded, then the error. The second with the user's
  # own TF_CPP_MIN_LOG_LEVEL. Side by side: each is mostly TensorFlow's import, on one core.
  result, chosen = run_testing.run_side_by_side([
      (tmp_path / "verbose", ["--verbosity=1", "--trajectories=0"]),
      (tmp_path / "chosen", ["--trajectories=0"], {"TF_CPP_MIN_LOG_LEVEL": "1"})])
  assert result.returncode == 1
  assert terminal_testing.native_lines(result.stderr)  # e.g. oneDNN's and CUDA's on a CPU
  assert result.stderr.endswith("error: --trajectories must be >= 1. "
                                "Received: --trajectories=0\n")
  # The user's own TF_CPP_MIN_LOG_LEVEL is TensorFlow's level, also while it loads.
  records = [line[0] for line in chosen.stderr.splitlines() if line[:1] in "IWEF"
             and terminal_testing.native_lines(line)]
  assert "I" not in records and "error: --trajectories" in chosen.stderr


def test_a_run_with_flags_of_its_own_takes_nothing_from_the_quick_run(tmp_path):
  env = terminal_testing.environment(PYTHONPATH=str(_ROOT))
  result = subprocess.run(
      [sys.executable, "-m", "ohl_tf.main", "--dataset=synthetic", "--model=resnet8",
       "--trajectories=1", "--epochs=1", "--val_size=4500", "--policy=none"],
      cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  config = json.loads((tmp_path / "runs" / "synthetic_resnet8" / "config.json").read_text())
  # The general defaults (the flags' help), not flags/quickstart.cfg's demo settings.
  assert (config["train_subset"], config["inner_steps"], config["lr"], config["cutout"],
          config["estimator"], config["theta_lr"]) == (0, 0, 0.1, 16, "reinforce", 0.05)
  assert "epochs=1 " in result.stdout and not (_ROOT / "runs" / "synthetic_resnet8").exists()


def test_a_model_dir_of_another_run_is_refused_and_kept(quick_run):
  model_dir, _ = quick_run
  before = (model_dir / "config.json").read_text()
  result = run_testing.run(model_dir, "--epochs=2", "--inner_steps=4", "--lr=0.3")
  assert result.returncode != 0
  assert "holds a run with a different configuration (--lr: 0.05 there, 0.3 now)" in result.stderr
  assert (model_dir / "config.json").read_text() == before


def _help(flag):
  return subprocess.run([sys.executable, "-m", "ohl_tf.main", flag], cwd=_ROOT,
                        env=terminal_testing.environment(), capture_output=True, text=True,
                        timeout=300, check=False)


def test_help_lists_the_trainers_flags_and_helpfull_everything():
  # Side by side: each is mostly the imports. absl's help exits with status 1 after printing.
  with futures.ThreadPoolExecutor(2) as pool:
    shown, full = pool.map(_help, ["--help", "--helpfull"])
  assert shown.stdout.startswith("Trains a classifier"), shown.stderr[-3000:]
  listed = set(re.findall(r"^  --(?:\[no\])?(\w+):", shown.stdout, re.MULTILINE))
  assert {"estimator", "policy", "trajectories", "search_space"} <= listed
  assert listed == {field.name for field in dataclasses.fields(run_config.Config)}
  assert "--test_srcdir" not in shown.stdout and "--test_tmpdir" not in shown.stdout
  assert "  --estimator:" in full.stdout and "  --flagfile:" in full.stdout
