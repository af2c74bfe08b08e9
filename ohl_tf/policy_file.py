"""policy.json, the learned policy a run leaves: its format, written, read, checked, as log p.

A policy.json holds (see docs/run_directory.md):
  * `search_space`: the `--search_space` it was learned in ("paper" for a file without it,
    written before there was a choice); a run in another space refuses it;
  * `elements`: that space's elements, [{name, magnitude}] x E (`augment.SearchSpace.elements`,
    in order; with `probability` for an element that applies with one); a file whose elements
    are not its space's is refused;
  * `probabilities`: p over the E² operations as ExE (row e1, applied first; column e2), so
    op k = E e1 + e2 (paper, eq. 7; E = 36, 1296 operations in the paper's space);
  * `theta`: θ [E²], for a learned (or uniform) policy; `source`: the policy.json a fixed
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
_OPERATION_COUNTS = tuple(s.num_operations for s in augment.SEARCH_SPACES.values())


# ---------------------------------------------------------------------------------------------
# Writing.
# ---------------------------------------------------------------------------------------------

def elements_payload(space):
  """policy.json's `elements`: those of the search space it was learned over, [{name,
  magnitude}] x E, with the element's `probability` where it is below 1."""
  return [{"name": e.name, "magnitude": e.magnitude,
           **({} if e.probability == 1 else {"probability": e.probability})}
          for e in space.elements]


def _space_payload(space):
  """The keys that say which space a policy.json belongs to."""
  return {"search_space": space.name, "elements": elements_payload(space)}


def lineage_probabilities(lineage_counts):
  """The distribution the surviving network trained on: lineage counts / their sum.

  Args:
    lineage_counts: int or float array [K] (K = 1296, 1369 or 1764, a search space's
      operations), the running sum over outer steps of the op counts of each period's best
      trajectory; finite, >= 0.

  Returns:
    float64 array [K] summing to 1.

  Raises:
    ValueError: wrong shape, non-finite or negative counts, or a zero sum (no outer step yet,
      or a policy that draws no OHL operation: there is no distribution).
  """
  counts = np.asarray(lineage_counts, np.float64)
  if counts.ndim != 1 or counts.shape[0] not in _OPERATION_COUNTS:
    sizes = " or ".join(f"[{k}]" for k in _OPERATION_COUNTS)
    expected = "rank 1" if counts.ndim != 1 else f"shape {sizes} (a search space's operations)"
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
  `probabilities` as ExE like p_θ) is its training distribution, which is not p_θ.
  """
  counts = np.asarray(lineage_counts, np.float64)
  if counts.sum() <= 0:
    return None
  matrix = _as_matrix(lineage_probabilities(counts))
  return {"operations": int(round(counts.sum())), "probabilities": matrix.tolist()}


def _as_matrix(values):
  """An op-indexed vector [E²] as ExE, row e1, column e2."""
  num_elements = augment.space_of_operations(values.shape[-1]).num_elements
  return np.reshape(values, [num_elements, num_elements])


def _with_lineage(payload, lineage_counts):
  lineage = None if lineage_counts is None else lineage_payload(lineage_counts)
  return payload if lineage is None else {**payload, "lineage": lineage}


def learned_payload(theta, lineage_counts=None):
  """The contents of a run's policy.json: its search space (the one of θ's size) and elements,
  p_θ as ExE (row e1, column e2), θ, and the lineage (`lineage_payload`) when given."""
  theta = tf.convert_to_tensor(theta, tf.float32)
  space = augment.space_of_operations(theta.shape[-1])
  matrix = policy.probability_matrix(policy.operation_probabilities(theta))
  return _with_lineage({
      **_space_payload(space),
      "probabilities": np.asarray(matrix, np.float64).tolist(),
      "theta": np.asarray(theta, np.float64).tolist(),
  }, lineage_counts)


def fixed_payload(probabilities, source, lineage_counts=None):
  """policy.json of a run trained with a fixed p (--policy=file:): its search space (that of
  p's size) and elements, p, where it came from, the lineage; `read` takes it like a learned
  one."""
  matrix = _as_matrix(np.ravel(np.asarray(probabilities, np.float64)))
  space = augment.space_of_elements(matrix.shape[0])
  return _with_lineage({**_space_payload(space), "probabilities": matrix.tolist(),
                        "source": source}, lineage_counts)


# ---------------------------------------------------------------------------------------------
# Reading and checking.
# ---------------------------------------------------------------------------------------------

def _shapes(spaces):
  """The shapes p may have in `spaces`: [E²] or [E, E] (row e1, column e2)."""
  return [shape for s in spaces for shape in ((s.num_operations,),
                                              (s.num_elements, s.num_elements))]


def check_probabilities(probabilities, space=None):
  """Returns `probabilities` as float64 [E²], or raises naming what is wrong.

  Args:
    probabilities: p over the operations of `space`, [E²] or [E, E].
    space: the `augment.SearchSpace` p must belong to; None: any (its size says which).
  """
  spaces = augment.SEARCH_SPACES.values() if space is None else [space]
  shapes = " or ".join(str(list(shape)) for shape in _shapes(spaces))
  try:
    values = np.asarray(probabilities, np.float64)
  except (TypeError, ValueError) as error:
    raise ValueError(f"probabilities must be numbers, {shapes}. "
                     f"Received: probabilities={probabilities!r:.200}") from error
  if values.shape not in _shapes(spaces):
    raise ValueError(f"probabilities must have shape {shapes} (row e1, column e2). "
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


def check_elements(elements, path, space):
  """Raises unless policy.json's `elements` are `space`'s, in order."""
  expected = elements_payload(space)
  if not isinstance(elements, list):
    raise ValueError(f"{path}: `elements` must be a list of {len(expected)} "
                     f"{{name, magnitude[, probability]}}. Received: elements={elements!r:.200}")
  for index in range(max(len(elements), len(expected))):
    got = elements[index] if index < len(elements) else "<missing>"
    want = expected[index] if index < len(expected) else "<none>"
    if got != want:  # 10 == 10.0, so JSON's int/float spelling does not matter
      raise ValueError(
          f"{path} was written for another search space: element {index} is {got}, but "
          f"element {index} of --search_space={space.name} is {want} ({len(elements)} elements "
          f"in the file, {len(expected)} expected). Received: elements[{index}]={got}")


def file_space(payload, path):
  """The `augment.SearchSpace` a policy.json's payload was learned in: its `search_space`, or
  the paper's for a file written before the field existed.

  Raises:
    ValueError: a space this version does not know.
  """
  name = payload.get("search_space", augment.PAPER.name)
  if name not in augment.SEARCH_SPACES:
    raise ValueError(f"{path} was learned in a search space this version does not know; known: "
                     f"{', '.join(augment.SEARCH_SPACES)}. Received: search_space={name!r}")
  return augment.SEARCH_SPACES[name]


def read(path, space=None):
  """The probabilities p [E²] (float64, op k = E e1 + e2) of a policy.json.

  Args:
    path: the policy.json.
    space: the `augment.SearchSpace` the caller samples in (a run's --search_space); the file
      must have been learned in it. None: the file's own (the size of p says which).

  Raises:
    ValueError: there is no such file, it is not JSON, it was learned in another space than
      `space`, its `elements` are not its space's (names and magnitudes, in order), it names no
      probabilities, or they are invalid.
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
  learned_in = file_space(payload, path)
  if space is not None and learned_in != space:
    raise ValueError(f"{path} was learned in --search_space={learned_in.name} "
                     f"({learned_in.num_operations} operations), but this run's is "
                     f"--search_space={space.name} ({space.num_operations}): run with "
                     f"--search_space={learned_in.name} to use it. "
                     f"Received: search_space={learned_in.name!r}")
  check_elements(payload["elements"], path, learned_in)
  try:
    return check_probabilities(payload["probabilities"], learned_in)
  except ValueError as error:
    raise ValueError(f"{path}: {error}") from error


def log_probabilities(probabilities):
  """float32 log p for `policy.draw_operations` (-inf where p = 0: never drawn)."""
  with np.errstate(divide="ignore"):
    return np.log(check_probabilities(probabilities)).astype(np.float32)
