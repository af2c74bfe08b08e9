"""--precision and --jit_compile: what mixed precision and XLA change in a trajectory (its
arithmetic, within stated tolerances) and what they must not (float32 variables, BatchNorm
statistics, the copied state, the export, a resume's bit-exact replay under --deterministic).

Tolerances, on one fixed batch through resnet8 (N(0, 1) images, as standardised ones), as
‖x − x_float32‖ / ‖x_float32‖, and measured on a 2-core CPU:

  | configuration         | logits, initial | logits, after a step | loss     | asserted |
  | float32 + XLA         | 1.6e-7          | 3.5e-7               | 1.0e-7   | 1e-5     |
  | mixed_bfloat16        | 2.1e-3          | 2.8e-3               | 1.0e-4   | 2e-2     |
  | mixed_float16         | 3.5e-4          | 6.2e-4               | 6.8e-6   | 5e-3     |

bfloat16 keeps 8 significant bits (relative rounding 2^-9 = 2e-3), float16 11 (2^-12 = 2.4e-4);
the margins above the measurements are about 10x.
"""

import dataclasses
import json
import os
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf

import models
import run_testing
from ohl_tf import batch
from ohl_tf import datasets
from ohl_tf import export
from ohl_tf import pipeline
from ohl_tf import preprocess
from ohl_tf import run_config
from ohl_tf import run_directory
from ohl_tf import search
from ohl_tf import trajectory

_BATCH = 32
# (precision, jit_compile) -> the relative tolerance of its logits and loss against float32.
_TOLERANCES = {("float32", True): 1e-5, ("mixed_bfloat16", False): 2e-2,
               ("mixed_float16", False): 5e-3}
_COMPUTE_DTYPE = {"float32": "float32", "mixed_bfloat16": "bfloat16",
                  "mixed_float16": "float16"}


def _images_and_labels():
  rng = np.random.default_rng(0)
  return (rng.normal(size=(_BATCH, 32, 32, 3)).astype(np.float32),
          rng.integers(0, 10, _BATCH).astype(np.int32))


def _trajectory(precision, jit_compile=False, devices=("/cpu:0",)):
  keras.utils.set_random_seed(0)  # one w_0 for every configuration
  return trajectory.Trajectory(
      0, list(devices), lambda: models.build("resnet8", 10, (32, 32, 3)),
      lambda: keras.optimizers.SGD(0.1, momentum=0.9), 5e-4, _BATCH, count_operations=False,
      precision=precision, jit_compile=jit_compile)


def _batches(images, labels):
  return tf.data.Dataset.from_tensor_slices(
      batch.Batch(images, labels, tf.fill([len(labels)], pipeline.NO_OPERATION), {})
  ).batch(_BATCH)


def _relative(value, reference):
  return float(np.linalg.norm(np.asarray(value) - reference) / np.linalg.norm(reference))


@pytest.fixture(scope="module")
def trained():
  """Per (precision, jit_compile): the trajectory after one step on the fixed batch, its logits
  before and after, and the step's loss."""
  images, labels = _images_and_labels()
  results = {}
  for precision, jit_compile in [("float32", False), *_TOLERANCES]:
    t = _trajectory(precision, jit_compile)
    predict = t.evaluator._predict_fn  # pylint: disable=protected-access
    before = predict(tf.constant(images)).numpy()
    loss, _ = t.train(t.input_iterator(_batches(images, labels)), 1)
    after = predict(tf.constant(images)).numpy()
    results[precision, jit_compile] = t, before, after, loss
  return results


@pytest.mark.parametrize("configuration", list(_TOLERANCES))
def test_logits_and_loss_stay_within_tolerance_of_float32(trained, configuration):
  _, before, after, loss = trained[configuration]
  _, reference_before, reference_after, reference_loss = trained["float32", False]
  tolerance = _TOLERANCES[configuration]
  assert before.dtype == after.dtype == np.float32
  assert _relative(before, reference_before) < tolerance
  assert _relative(after, reference_after) < tolerance  # the step itself is close, too
  assert abs(loss - reference_loss) / reference_loss < tolerance
  if configuration[0] != "float32":  # the policy took effect: not float32 by accident
    assert _relative(before, reference_before) > 1e-6


@pytest.mark.parametrize("configuration", list(_TOLERANCES))
def test_variables_and_batchnorm_statistics_stay_float32(trained, configuration):
  t, _, _, _ = trained[configuration]
  precision = configuration[0]
  assert keras.config.dtype_policy().name == "float32"  # the build's policy did not leak
  assert {v.dtype for v in t.model.weights} == {"float32"}
  moving = [v for v in t.model.non_trainable_variables if "moving" in v.path]
  assert len(moving) == 2 * 7 and {v.dtype for v in moving} == {"float32"}
  assert t.model.get_layer("stem_conv").compute_dtype == _COMPUTE_DTYPE[precision]
  assert t.model.get_layer("stem_bn").variable_dtype == "float32"
  assert t.model.get_layer("logits").compute_dtype == "float32"
  assert t.step == 1 and not any(np.isnan(v.numpy()).any() for v in t.model.weights)


@pytest.mark.parametrize("configuration", [("mixed_bfloat16", False), ("mixed_float16", False)])
def test_the_export_is_a_float32_model_with_the_trained_weights(trained, configuration,
                                                               tmp_path):
  t = trained[configuration][0]
  plain = search.float32_copy(t.model, lambda: models.build("resnet8", 10, (32, 32, 3)))
  assert {layer.compute_dtype for layer in plain.layers if layer.weights} == {"float32"}
  for exported, trained_variable in zip(plain.weights, t.model.weights):
    np.testing.assert_array_equal(exported.numpy(), trained_variable.numpy())
  mean, std = (127.5,) * 3, (64.0,) * 3
  export.save_classifier(plain, str(tmp_path / "saved_model"), mean, std, (32, 32, 3),
                         tuple(f"class_{k}" for k in range(10)),
                         serving_preprocess=lambda image: preprocess.resize_uint8(image, [32, 32]))
  serve = tf.saved_model.load(str(tmp_path / "saved_model")).signatures["serving_default"]
  images = datasets.synthetic_examples(8, seed=3)[0]
  outputs = serve(images=tf.constant(images))
  assert set(outputs) == {"probabilities", "class_id", "class_name"}
  assert outputs["probabilities"].dtype == tf.float32
  standardised = preprocess.normalize(tf.constant(images), mean, std)
  np.testing.assert_allclose(outputs["probabilities"],
                             tf.nn.softmax(plain(standardised, training=False)), atol=1e-6)
  # The float32 export and the trained low-precision model agree to the precision's tolerance.
  low_precision = t.evaluator._predict_fn(standardised)  # pylint: disable=protected-access
  assert _relative(plain(standardised, training=False), low_precision) < _TOLERANCES[
      configuration]


# ---------------------------------------------------------------------------------------------
# mixed_float16: loss scaling, part of the state the outer step copies and the checkpoint keeps.
# ---------------------------------------------------------------------------------------------

def test_float16_scales_the_loss_and_its_state_is_copied_and_checkpointed(trained, tmp_path):
  one_step = trained["mixed_float16", False][0]
  assert isinstance(one_step.optimizer, keras.optimizers.LossScaleOptimizer)
  assert not isinstance(trained["mixed_bfloat16", False][0].optimizer,
                        keras.optimizers.LossScaleOptimizer)  # bfloat16 has float32's range
  # One good step: the scale neither grew (that takes 2000) nor halved; the counter counts it.
  assert float(one_step.optimizer.dynamic_scale.numpy()) == 2.0**15
  assert int(one_step.optimizer.step_counter.numpy()) == 1

  source, target = _trajectory("mixed_float16"), _trajectory("mixed_float16")
  assert any(v is source.optimizer.dynamic_scale for v in source.state)
  source.optimizer.dynamic_scale.assign(1024.0)  # as if overflows had halved it
  source.optimizer.step_counter.assign(7)
  assert len(target.state) == len(source.state)
  for destination, value in zip(target.state, source.state):  # what Population.make_equal does
    destination.assign(value.value)
  assert float(target.optimizer.dynamic_scale.numpy()) == 1024.0
  assert int(target.optimizer.step_counter.numpy()) == 7

  path = tf.train.Checkpoint(model=source.model, optimizer=source.optimizer).save(
      str(tmp_path / "ckpt"))
  restored = _trajectory("mixed_float16")
  tf.train.Checkpoint(model=restored.model, optimizer=restored.optimizer).restore(
      path).assert_existing_objects_matched()
  assert float(restored.optimizer.dynamic_scale.numpy()) == 1024.0
  assert int(restored.optimizer.step_counter.numpy()) == 7


def test_float16_replicas_skip_a_step_together_when_one_overflows():
  # Replica 1's half of the batch is NaN: its gradients are not finite, replica 0's are. Without
  # the common decision (Trajectory._agree_on_overflow) the step went through, writing NaN into
  # every replica's weights, and the scale was not lowered.
  images, labels = _images_and_labels()
  images[_BATCH // 2:] = np.nan
  t = _trajectory("mixed_float16", devices=("/cpu:0", "/cpu:1"))
  before = [v.numpy() for v in t.model.trainable_variables]
  t.train(t.input_iterator(_batches(images, labels)), 1)
  assert t.step == 0  # skipped
  for variable, value in zip(t.model.trainable_variables, before):
    for replica in variable.value.values:
      np.testing.assert_array_equal(replica.numpy(), value, err_msg=variable.path)
  assert [float(r.numpy()) for r in t.optimizer.dynamic_scale.value.values] == [2.0**14] * 2
  assert int(t.first_bad_step.numpy()) == 0  # the loss itself was NaN: search stops the run


# ---------------------------------------------------------------------------------------------
# End to end: python -m ohl_tf.main with both flags; stopped after its first outer step and
# resumed, it ends bit for bit where the uninterrupted run ends.
# ---------------------------------------------------------------------------------------------

_FLAGS = ("--precision=mixed_bfloat16", "--jit_compile", "--deterministic", "--epochs=1",
          "--inner_steps=4")


def _stop_after_first_outer_step(whole, stopped):
  """A copy of run `whole` as a run stopped after its first outer step leaves it: its first
  checkpoint the latest, nothing written after it (the later checkpoint, the exports)."""
  shutil.copytree(whole, stopped)
  checkpoints = stopped / "checkpoints"
  for name in os.listdir(checkpoints):
    if name.startswith("ckpt-") and not name.startswith("ckpt-1."):
      os.remove(checkpoints / name)
  tf.compat.v1.train.update_checkpoint_state(str(checkpoints), "ckpt-1",
                                             all_model_checkpoint_paths=["ckpt-1"])
  for name in ("saved_model", "policy.json", "results.json"):
    path = stopped / name
    shutil.rmtree(path) if path.is_dir() else path.unlink()


def test_a_mixed_bfloat16_xla_run_exports_float32_and_resumes_bit_for_bit(tmp_path):
  whole = run_testing.run(tmp_path / "whole", *_FLAGS)
  assert whole.returncode == 0, whole.stderr[-3000:]
  assert "  model     resnet8, batch 32, lr 0.05, mixed_bfloat16, XLA" in whole.stdout
  assert json.loads((tmp_path / "whole" / "config.json").read_text())["precision"] == (
      "mixed_bfloat16")
  serve = tf.saved_model.load(str(tmp_path / "whole" / "saved_model")).signatures[
      "serving_default"]
  outputs = serve(images=tf.constant(datasets.synthetic_examples(4, seed=1)[0]))
  assert set(outputs) == {"probabilities", "class_id", "class_name"}
  assert outputs["probabilities"].dtype == tf.float32
  np.testing.assert_allclose(outputs["probabilities"].numpy().sum(axis=1), 1.0, atol=1e-5)

  _stop_after_first_outer_step(tmp_path / "whole", tmp_path / "stopped")
  resumed = run_testing.run(tmp_path / "stopped", *_FLAGS)
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert resumed.stdout.startswith(f"Resuming the run in {tmp_path / 'stopped'}\n")
  run_testing.assert_same_checkpoint(tmp_path / "stopped",
                                     run_testing.final_checkpoint(tmp_path / "whole"))
  assert (json.loads((tmp_path / "stopped" / "policy.json").read_text())["theta"] ==
          json.loads((tmp_path / "whole" / "policy.json").read_text())["theta"])


def test_precision_and_jit_compile_may_not_change_on_resume(tmp_path):
  config = run_config.Config(model_dir=str(tmp_path))
  for name, there in [("jit_compile", True), ("precision", "mixed_float16")]:
    export.write_json(str(tmp_path / "config.json"),
                      {**dataclasses.asdict(config), name: there})
    with pytest.raises(ValueError, match=f"--{name}: {there!r} there, {getattr(config, name)!r}"):
      run_directory.check(config)
