"""Tests for ohl_tf.report: PNGs from a checkpoint written the way the trainer writes it."""

import json
import os
import pathlib
import subprocess
import sys

from absl import app
from absl import flags
from absl.testing import flagsaver
import numpy as np
import pytest
import tensorflow as tf

from ohl_tf import augment
from ohl_tf import report
from ohl_tf import summaries

K = augment.NUM_OPERATIONS
E = augment.NUM_ELEMENTS
_ROOT = pathlib.Path(__file__).resolve().parents[1]
FIGURE_SHAPE = (round(summaries.FIGURE_SIZE[1] * summaries.DPI),
                round(summaries.FIGURE_SIZE[0] * summaries.DPI), 3)


def _favouring_theta():
  """θ [K] that favours Rotate(20) applied second and disfavours Invert applied first."""
  theta = np.zeros((E, E), np.float32)
  theta[:, 13] = 2.0
  theta[35, :] = -3.0
  return theta.reshape(K)


def _write_run(model_dir, theta, outer_step=3, lineage=None, policy_name=None):
  """A checkpoint like a run's (`run_directory`'s keys), by CheckpointManager into
  model_dir/checkpoints.

  θ grows linearly to `theta` over the outer steps; the history has spare rows after
  outer_step, as in a run that is still training.
  """
  num_periods = outer_step + 2
  history = np.zeros((num_periods + 1, len(theta)), np.float32)
  for t in range(1, outer_step + 1):
    history[t] = theta * t / outer_step
  variables = dict(theta=tf.Variable(theta), theta_history=tf.Variable(history),
                   outer_step=tf.Variable(outer_step, dtype=tf.int64))
  if lineage is not None:
    variables["lineage"] = tf.Variable(np.asarray(lineage, np.float64))
  manager = tf.train.CheckpointManager(tf.train.Checkpoint(**variables),
                                       os.path.join(model_dir, "checkpoints"), max_to_keep=2)
  manager.save(checkpoint_number=outer_step)
  if policy_name is not None:
    with open(os.path.join(model_dir, "config.json"), "w", encoding="utf-8") as f:
      json.dump({"policy": policy_name}, f)
  return model_dir


def _read_png(path):
  image = tf.io.decode_png(tf.io.read_file(str(path))).numpy()
  assert os.path.getsize(path) > 0
  return image


def test_read_run_returns_the_history_up_to_the_outer_step(tmp_path):
  lineage = np.arange(K, dtype=np.float64)
  _write_run(tmp_path, _favouring_theta(), outer_step=3, lineage=lineage)
  state = report.read_run(str(tmp_path))
  assert state.outer_step == 3
  np.testing.assert_array_equal(state.theta, _favouring_theta())
  assert state.theta_history.shape == (4, K)
  np.testing.assert_array_equal(state.theta_history[0], np.zeros(K))
  np.testing.assert_array_equal(state.lineage, lineage)
  assert state.checkpoint.endswith("ckpt-3")


def test_read_run_skips_a_damaged_newest_checkpoint_and_moves_nothing(tmp_path, capsys):
  _write_run(tmp_path, _favouring_theta(), outer_step=2)
  _write_run(tmp_path, _favouring_theta(), outer_step=3)
  data = tmp_path / "checkpoints" / "ckpt-3.data-00000-of-00001"
  data.write_bytes(data.read_bytes()[:100])  # a truncated write
  state = report.read_run(str(tmp_path))
  assert state.outer_step == 2 and state.checkpoint.endswith("ckpt-2")
  assert f"Skipped {tmp_path / 'checkpoints' / 'ckpt-3'}: unreadable (" in capsys.readouterr().err
  assert data.exists() and not (tmp_path / "checkpoints" / "damaged").exists()
  (tmp_path / "checkpoints" / "ckpt-2.index").write_bytes(b"not an index")
  with pytest.raises(report.ReportError, match="No intact checkpoint in .*ckpt-3: .*ckpt-2: "):
    report.read_run(str(tmp_path))


def test_report_writes_readable_pngs_that_show_the_policy(tmp_path, capsys):
  favoured = _write_run(tmp_path / "favoured", _favouring_theta(),
                        lineage=np.where(np.arange(K) == E * 13 + 2, 40.0, 1.0))
  uniform = _write_run(tmp_path / "uniform", np.zeros(K, np.float32), lineage=np.ones(K))
  written = report.report(str(favoured))
  report.report(str(uniform), str(tmp_path / "uniform_report"))

  names = ["probabilities.png", "element_marginals.png", "lineage.png"]
  assert written == [str(favoured / "report" / name) for name in names]
  for name in names:
    image = _read_png(favoured / "report" / name)
    other = _read_png(tmp_path / "uniform_report" / name)
    assert image.shape == other.shape == FIGURE_SHAPE, name
    assert np.any(image != other), name
  # Nothing but the PNGs: the temporary files were renamed into place.
  assert sorted(os.listdir(favoured / "report")) == sorted(names)

  out = capsys.readouterr().out
  assert f"Wrote {favoured / 'report' / 'probabilities.png'}" in out
  # Rotate(20) second is favoured: the top operation is its first pair in index order.
  assert "outer step 3: entropy " in out and "top 5 (p × 1296): ShearX(0.1)→Rotate(20)" in out


def test_report_of_an_identity_space_run_draws_its_37_elements(tmp_path, capsys):
  theta = np.zeros((37, 37), np.float32)
  theta[36, :] = 2.0  # Identity applied first is favoured
  lineage = np.ones(37 * 37)
  run = _write_run(tmp_path / "identity", theta.reshape(-1), lineage=lineage)
  paper = _write_run(tmp_path / "paper", np.zeros(K, np.float32), lineage=np.ones(K))
  assert report.read_run(str(run)).space.name == "paper_identity"
  report.report(str(run))
  report.report(str(paper))
  for name in ("probabilities.png", "element_marginals.png", "lineage.png"):
    image = _read_png(run / "report" / name)
    assert image.shape == FIGURE_SHAPE and np.any(image != _read_png(paper / "report" / name))
  out = capsys.readouterr().out
  assert "top 5 (p × 1369): Identity→ShearX(0.1)" in out


def test_report_without_lineage_writes_no_lineage_png(tmp_path, capsys):
  _write_run(tmp_path, _favouring_theta())
  out_dir = tmp_path / "elsewhere"
  report.report(str(tmp_path), str(out_dir))
  assert sorted(os.listdir(out_dir)) == ["element_marginals.png", "probabilities.png"]
  assert "No lineage.png: its checkpoints do not record the lineage" in capsys.readouterr().out


def test_report_with_zero_lineage_writes_no_lineage_png(tmp_path, capsys):
  _write_run(tmp_path, _favouring_theta(), lineage=np.zeros(K))
  report.report(str(tmp_path))
  assert not (tmp_path / "report" / "lineage.png").exists()
  assert "lineage counts are all 0" in capsys.readouterr().out


def test_missing_checkpoints_name_the_directory(tmp_path):
  with pytest.raises(report.ReportError, match=r"No checkpoint in .*checkpoints.*--model_dir"):
    report.report(str(tmp_path / "not_a_run"))


def test_checkpoint_without_theta_is_refused(tmp_path):
  tf.train.CheckpointManager(tf.train.Checkpoint(step=tf.Variable(1)),
                             str(tmp_path / "checkpoints"), max_to_keep=1).save()
  with pytest.raises(report.ReportError, match=r"holds no policy: theta/.*baseline run"):
    report.report(str(tmp_path))


def test_run_of_a_policy_without_theta_is_refused(tmp_path):
  _write_run(tmp_path, np.zeros(K, np.float32), policy_name="autoaugment")
  with pytest.raises(report.ReportError, match=r"--policy=autoaugment run.*no policy to draw"):
    report.report(str(tmp_path))


def test_main_in_process(tmp_path, capsys):
  _write_run(tmp_path / "run", _favouring_theta())
  flags.FLAGS.mark_as_parsed()  # As app.run leaves them; flagsaver restores --out afterwards.
  with flagsaver.flagsaver(out=str(tmp_path / "pictures")):
    report.main(["report", str(tmp_path / "run")])
    assert sorted(os.listdir(tmp_path / "pictures")) == ["element_marginals.png",
                                                         "probabilities.png"]
    with pytest.raises(SystemExit) as exit_info:
      report.main(["report", str(tmp_path / "missing")])
  assert exit_info.value.code == 1
  assert "No checkpoint in" in capsys.readouterr().err
  with pytest.raises(app.UsageError, match=r"MODEL_DIR"):
    report.main(["report"])


def _run_module(*args):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  return subprocess.run([sys.executable, "-m", "ohl_tf.report", *args], cwd=_ROOT, env=env,
                        capture_output=True, text=True, timeout=300, check=False)


def test_command_line(tmp_path):
  _write_run(tmp_path / "run", _favouring_theta(), lineage=np.ones(K))
  result = _run_module(str(tmp_path / "run"), f"--out={tmp_path / 'pictures'}")
  assert result.returncode == 0, result.stderr[-3000:]
  assert sorted(os.listdir(tmp_path / "pictures")) == [
      "element_marginals.png", "lineage.png", "probabilities.png"]
  assert result.stdout.count("Wrote ") == 3 and "outer step 3: entropy" in result.stdout

  result = _run_module(str(tmp_path / "missing"))
  assert result.returncode == 1
  assert f"No checkpoint in {tmp_path / 'missing' / 'checkpoints'}" in result.stderr
