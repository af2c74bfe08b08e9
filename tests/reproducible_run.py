"""A --deterministic run of a policy, twice, in a fresh process: the checkpoints must be equal.

The baselines that draw their own augmentation from the seed (RandAugment, TrivialAugment) show
with it that a run is reproduced from --seed. Op determinism is process-wide and cannot be
switched off, so the two runs stay out of the test session; the second run also shows that
nothing carries over from the first.

Example:
  >>> assert_two_deterministic_runs_match(tmp_path, "trivialaugment")
"""

import json
import os
import subprocess
import sys

import run_testing

_TWO_RUNS = """
import sys
from ohl_tf import run_config
from ohl_tf import search
for model_dir in sys.argv[2:]:
  search.run(run_config.Config(
      dataset="synthetic", model="resnet8", policy=sys.argv[1], deterministic=True,
      trajectories=1, epochs=1, inner_steps=2, batch_size=16, train_subset=64, val_size=64,
      eval_batch_size=64, cutout=8, seed=3, model_dir=model_dir))
"""


def assert_two_deterministic_runs_match(tmp_path, policy):
  """Runs --policy=`policy` --deterministic twice on synthetic data; asserts equal checkpoints
  (every weight and slot, all but the wall time) and equal results.json but the wall time.

  Args:
    tmp_path: a pathlib.Path to put the two model_dirs in.
    policy: a --policy value.
  """
  first, second = tmp_path / "first", tmp_path / "second"
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(run_testing.ROOT))
  result = subprocess.run([sys.executable, "-c", _TWO_RUNS, policy, str(first), str(second)],
                          cwd=run_testing.ROOT, env=env, capture_output=True, text=True,
                          timeout=600, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  expected = run_testing.final_checkpoint(first)
  assert any("_trainable_variables" in name for name in expected)  # the weights are compared
  run_testing.assert_same_checkpoint(second, expected)
  results = [json.loads((d / "results.json").read_text()) for d in (first, second)]
  for r in results:
    del r["wall_time_s"]
  assert results[0] == results[1] and results[0]["policy"] == policy
