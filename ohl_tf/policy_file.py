"""policy.json, the learned policy a run leaves: its format, written, read, checked, as log p.

A policy.json holds (see docs/run_directory.md):
  * `elements`: the search space, [{name, magnitude}] x 36 (`ohl_tf.augment.ELEMENTS`, in
    order); a file written for another search space is refused;
  * `probabilities`: p over the 1296 operations as 36x36 (row e1, applied first; column e2), so
    op k = 36 e1 + e2 (paper, eq. 7);
  * `theta`: θ [1296], for a learned (or uniform) policy; `source`: the policy.json a fixed
    policy came from (--policy=file:);
  * `lineage` (optional): what the final network trained on, `lineage_payload`.

The trainer writes it (`learned_payload`, `fixed_payload`, through `export.write_json`), and the
trainer (--policy=file:) and `LearnedAugment` read it (`read`), so the format has one home.
"""

import json
import os

import numpy as np
import tensorflow as tf

from ohl_tf import augment
from ohl_tf import policy

_SUM_TOLERANCE = 1e-4


# ---------------------------------------------------------------------------------------------
# Writing.
# ---------------------------------------------------------------------------------------------

def elements_payload():
  """policy.json's `elements`: the search space it was learned over, [{name, magnitude}] x 36."""
  return [{"name": e.name, "magnitude": e.magnitude} for e in augment.ELEMENTS]


def lineage_probabilities(lineage_counts):
  """The distribution the surviving network trained on: lineage counts / their sum.

  Args:
    lineage_counts: int or float array [1296], the running sum over outer steps of the op counts
      of each period's best trajectory; finite, >= 0.

  Returns:
    float64 array [1296] summing to 1.

  Raises:
    ValueError: wrong shape, non-finite or negative counts, or a zero sum (no outer step yet,
      or a policy that draws no OHL operation: there is no distribution).
  """
  counts = np.asarray(lineage_counts, np.float64)
  if counts.ndim != 1 or counts.shape[0] != augment.NUM_OPERATIONS:
    expected = "rank 1" if counts.ndim != 1 else f"shape [{augment.NUM_OPERATIONS}]"
    raise ValueError(f"lineage_counts must have {expected}. "
                     f"Received: lineage_counts.shape={counts.shape}")
  if not np.all(np.isfinite(counts)):
    raise ValueError("lineage_counts must be finite. "
                     f"Received: {np.sum(~np.isfinite(counts))} non-finite values")
  if np.any(counts < 0):
    raise ValueError("lineage_counts must be >= 0 (they are op counts). Received: "
                     f"{np.sum(counts < 0)} negative values, min {counts.min():g}")
  total = counts.sum()
  if total == 0:
    raise ValueError("lineage_counts must not all be 0: no period has been trained yet, or the "
                     "policy draws no OHL operation, so there is no lineage.")
  return counts / total


def lineage_payload(lineage_counts):
  """policy.json's `lineage`: what the final network trained on, or None before any operation.

  With best-of-N broadcast the surviving network trained, period by period, on the batches of
  that period's best trajectory: the running sum of their op counts (`operations` in all,
  `probabilities` as 36x36 like p_θ) is its training distribution, which is not p_θ.
  """
  counts = np.asarray(lineage_counts, np.float64)
  if counts.sum() <= 0:
    return None
  matrix = np.reshape(lineage_probabilities(counts), [augment.NUM_ELEMENTS, augment.NUM_ELEMENTS])
  return {"operations": int(round(counts.sum())), "probabilities": matrix.tolist()}


def _with_lineage(payload, lineage_counts):
  lineage = None if lineage_counts is None else lineage_payload(lineage_counts)
  return payload if lineage is None else {**payload, "lineage": lineage}


def learned_payload(theta, lineage_counts=None):
  """The contents of a run's policy.json: elements, p_θ as 36x36 (row e1, column e2), θ, and
  the lineage (`lineage_payload`) when given."""
  theta = tf.convert_to_tensor(theta, tf.float32)
  matrix = policy.probability_matrix(policy.operation_probabilities(theta))
  return _with_lineage({
      "elements": elements_payload(),
      "probabilities": np.asarray(matrix, np.float64).tolist(),
      "theta": np.asarray(theta, np.float64).tolist(),
  }, lineage_counts)


def fixed_payload(probabilities, source, lineage_counts=None):
  """policy.json of a run trained with a fixed p (--policy=file:): elements, p, where it came
  from, the lineage; `read` takes it like a learned one."""
  matrix = np.reshape(np.asarray(probabilities, np.float64),
                      [augment.NUM_ELEMENTS, augment.NUM_ELEMENTS])
  return _with_lineage({"elements": elements_payload(), "probabilities": matrix.tolist(),
                        "source": source}, lineage_counts)


# ---------------------------------------------------------------------------------------------
# Reading and checking.
# ---------------------------------------------------------------------------------------------

def check_probabilities(probabilities):
  """Returns `probabilities` as float64 [1296], or raises naming what is wrong."""
  try:
    values = np.asarray(probabilities, np.float64)
  except (TypeError, ValueError) as error:
    raise ValueError("probabilities must be numbers, [1296] or [36, 36]. "
                     f"Received: probabilities={probabilities!r:.200}") from error
  if values.shape not in ((augment.NUM_OPERATIONS,),
                          (augment.NUM_ELEMENTS, augment.NUM_ELEMENTS)):
    raise ValueError(f"probabilities must have shape [{augment.NUM_OPERATIONS}] or "
                     f"[{augment.NUM_ELEMENTS}, {augment.NUM_ELEMENTS}] (row e1, column e2). "
                     f"Received: probabilities with shape {values.shape}")
  values = values.reshape(-1)
  for bad, condition in ((~np.isfinite(values), "finite"), (values < 0, "non-negative")):
    if np.any(bad):
      index = int(np.flatnonzero(bad)[0])
      raise ValueError(f"probabilities must be {condition}. "
                       f"Received: probabilities with probabilities[{index}]={values[index]}")
  total = float(values.sum())
  if abs(total - 1) > _SUM_TOLERANCE:
    raise ValueError(f"probabilities must sum to 1 (within {_SUM_TOLERANCE}). "
                     f"Received: probabilities with sum {total}")
  return values


def check_elements(elements, path):
  """Raises unless policy.json's `elements` are augment.ELEMENTS, in order."""
  expected = elements_payload()
  if not isinstance(elements, list):
    raise ValueError(f"{path}: `elements` must be a list of {len(expected)} "
                     f"{{name, magnitude}}. Received: elements={elements!r:.200}")
  for index in range(max(len(elements), len(expected))):
    got = elements[index] if index < len(elements) else "<missing>"
    want = expected[index] if index < len(expected) else "<none>"
    if got != want:  # 10 == 10.0, so JSON's int/float spelling does not matter
      raise ValueError(
          f"{path} was written for another search space: element {index} is {got}, but "
          f"ohl_tf.augment.ELEMENTS[{index}] is {want} ({len(elements)} elements in the file, "
          f"{len(expected)} expected). Received: elements[{index}]={got}")


def read(path):
  """The probabilities p [1296] (float64, op k = 36 e1 + e2) of a policy.json.

  Raises:
    ValueError: there is no such file, it is not JSON, its `elements` are not augment.ELEMENTS
      (names and magnitudes, in order), it names no probabilities, or they are invalid.
    OSError: the file cannot be read.
  """
  if not os.path.isfile(path):
    raise ValueError(f"{path}: no such file; expected the policy.json that a run wrote into its "
                     "--model_dir.")
  with open(path) as file:
    try:
      payload = json.load(file)
    except json.JSONDecodeError as error:
      raise ValueError(f"{path} is not a policy.json: it is not valid JSON ({error}).") from error
  if not isinstance(payload, dict):
    raise ValueError(f"{path} is not a policy.json: expected a JSON object with `elements` and "
                     f"`probabilities`. Received: {type(payload).__name__}")
  for key in ("elements", "probabilities"):
    if key not in payload:
      raise ValueError(f"{path} is not a policy.json: it has no `{key}`. "
                       f"Received: keys={sorted(payload)}")
  check_elements(payload["elements"], path)
  try:
    return check_probabilities(payload["probabilities"])
  except ValueError as error:
    raise ValueError(f"{path}: {error}") from error


def log_probabilities(probabilities):
  """float32 log p for `policy.draw_operations` (-inf where p = 0: never drawn)."""
  with np.errstate(divide="ignore"):
    return np.log(check_probabilities(probabilities)).astype(np.float32)
