"""Every flagfile parses and builds its model and input pipeline on mock data, so none rots."""

import dataclasses
import pathlib

from absl import flags
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
import pipeline_testing

from ohl_tf import datasets
from ohl_tf import run_config
from ohl_tf import search
from ohl_tf import trajectory

_FLAGS_DIR = pathlib.Path(__file__).resolve().parents[1] / "flags"
RECOMMENDED = _FLAGS_DIR / "ohl_recommended.cfg"  # added after another flagfile, not a run
FLAGFILES = sorted(set(_FLAGS_DIR.glob("*.cfg")) - {RECOMMENDED})
# One row of the paper's Tables 2 and 3 each, and the quick start.
PAPER_ROWS = {"cifar_resnet18", "cifar_wrn", "cifar_dpn92", "cifar_amoebanet",
              "imagenet_resnet50", "imagenet_se_resnext101"}


def _parse(path, *overrides):
  """The `run_config.Config` of `--flagfile=path` and `overrides`, as ohl_tf.main builds it."""
  if "policy" not in flags.FLAGS:
    run_config.define_flags()
  flags.FLAGS.unparse_flags()  # no value left over from another flagfile
  flags.FLAGS(["ohl_tf.main", f"--flagfile={path}", *overrides])
  return run_config.from_flags()


def _file_settings(path):
  """{flag: text value} of the --flag=value lines of a flagfile."""
  lines = [line.strip() for line in path.read_text().splitlines()]
  pairs = [line[2:].split("=", 1) for line in lines if line.startswith("--")]
  return {pair[0]: pair[1] if len(pair) == 2 else "true" for pair in pairs}


def test_every_row_of_tables_2_and_3_has_a_flagfile():
  assert PAPER_ROWS | {"quickstart"} <= {path.stem for path in FLAGFILES}


def test_the_recommended_settings_replace_only_their_own_after_any_flagfile():
  recommended = _file_settings(RECOMMENDED)
  assert "dataset" not in recommended and "model_dir" not in recommended
  for path in FLAGFILES:
    paper, combined = _parse(path), _parse(path, f"--flagfile={RECOMMENDED}")
    changed = {field.name for field in dataclasses.fields(paper)
               if getattr(paper, field.name) != getattr(combined, field.name)}
    assert changed <= set(recommended), (path.stem, changed - set(recommended))
    for name, value in recommended.items():
      assert str(getattr(combined, name)) == str(type(getattr(paper, name))(value)), name
  assert (combined.estimator, combined.es_groups, combined.search_space, combined.reward) == (
      "element_es", "operations", "autoaugment_cifar10", "loss")


def test_paper_rows_keep_the_papers_estimator_and_the_quick_run_one_that_learns():
  for path in FLAGFILES:
    config = _parse(path)
    if path.stem in PAPER_ROWS:  # eq. 6 with the paper's Adam (section 4.1), its 36 elements
      assert (config.estimator, config.theta_lr, config.reward, config.search_space) == (
          "reinforce", 0.05, "accuracy", "paper"), path.stem
      assert _file_settings(path)["search_space"] == "paper", path.stem
  quick = _parse(_FLAGS_DIR / "quickstart.cfg")
  assert (quick.estimator, quick.reward, quick.es_sigma, quick.theta_lr) == (
      "element_es", "loss", 2.0, 0.5)


@pytest.mark.parametrize("path", FLAGFILES, ids=lambda path: path.stem)
def test_flagfile_builds_its_model_and_pipeline_on_mock_data(path, tmp_path):
  settings = _file_settings(path)
  # element_es pairs its trajectories: two, else one (the full-size models cost time).
  trajectories = 2 if settings.get("estimator") == "element_es" else 1
  small = [f"--model_dir={tmp_path / 'run'}", f"--trajectories={trajectories}", "--batch_size=2",
           "--val_size=4", "--eval_batch_size=4", "--train_subset=8"]
  if settings["dataset"] == datasets.IMAGENET:
    small.append("--image_size=64")  # the models are size-agnostic; 224 only costs time here
  config = _parse(path, *small)
  for name, value in settings.items():  # every other setting is the flagfile's own
    if not any(override.startswith(f"--{name}=") for override in small):
      field = getattr(config, name)
      assert str(field).lower() == value.lower() or field == type(field)(value), name

  with tfds.testing.mock_data(num_examples=16):
    data = datasets.load(config.dataset, val_size=config.val_size, seed=config.seed,
                         image_size=config.image_size or None)
    run = search.OnlineSearch(config, data, [["/cpu:0"]] * trajectories)
    log_probs = run.outer.sampling_log_probs(0) or [None]
    batches = pipeline_testing.period_batches(run.population.train_data, 0, 0, log_probs[0])
    images, labels, ops, _ = next(iter(batches))
  logits = run.trajectories[0].model(images, training=False)
  assert images.shape == (2, *data.image_shape) and labels.shape == (2,)
  assert logits.shape == (2, data.num_classes) and np.isfinite(logits.numpy()).all()
  assert ops.shape == (2,)


@pytest.mark.parametrize("stem,start,peak,warmup_epochs", [
    ("cifar_amoebanet", 0.005, 0.024, 40),
    ("imagenet_se_resnext101", 0.0, 0.8, 2),
])
def test_warm_up_rises_linearly_to_the_peak(stem, start, peak, warmup_epochs):
  config = _parse(_FLAGS_DIR / f"{stem}.cfg")
  steps_per_epoch, total = 100, 100 * config.epochs
  schedule = trajectory.learning_rate_schedule(config.lr, total, warmup_epochs * steps_per_epoch,
                                               config.warmup_lr)
  values = [float(schedule(step)) for step in (0, warmup_epochs * steps_per_epoch // 2,
                                               warmup_epochs * steps_per_epoch, total)]
  np.testing.assert_allclose(values[:3], [start, (start + peak) / 2, peak], rtol=1e-5,
                             atol=1e-7)
  assert values[3] == pytest.approx(0, abs=1e-6)  # cosine to 0 after the warm-up
  assert config.warmup_epochs == warmup_epochs and config.warmup_lr == start


@pytest.mark.parametrize("epochs, decay_epochs", [(None, 260), (340, 300)])
def test_amoebanet_warm_up_is_inside_the_epochs_or_on_top_with_more(epochs, decay_epochs):
  # The flagfile's reading: 40 warm-up epochs inside the 300; --epochs=340 gives 300 of decay.
  config = _parse(_FLAGS_DIR / "cifar_amoebanet.cfg", *([f"--epochs={epochs}"] if epochs else []))
  steps_per_epoch = 100
  schedule = trajectory.learning_rate_schedule(
      config.lr, steps_per_epoch * config.epochs, steps_per_epoch * config.warmup_epochs,
      config.warmup_lr)
  halfway = steps_per_epoch * (config.warmup_epochs + decay_epochs // 2)
  assert float(schedule(halfway)) == pytest.approx(config.lr / 2, rel=1e-4)


def test_imagenet_flagfiles_hold_the_papers_settings():
  for stem in ("imagenet_resnet50", "imagenet_se_resnext101"):
    config = _parse(_FLAGS_DIR / f"{stem}.cfg")
    assert (config.batch_size, config.lr, config.warmup_epochs, config.epochs,
            config.trajectories, config.weight_decay, config.momentum, config.nesterov,
            config.val_size) == (2048, 0.8, 2, 150, 4, 1e-4, 0.9, True, 50000)
