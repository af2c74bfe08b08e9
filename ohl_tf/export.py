"""What a run leaves for its users: a SavedModel classifier, the learned policy, the results.

Every artefact is written beside its destination and then renamed into place, so a crash never
leaves a half-written `saved_model/`, `policy.json` or `results.json`.
"""

import json
import os
import shutil
import tempfile

import numpy as np
import tensorflow as tf

from ohl_tf import augment
from ohl_tf import policy
from ohl_tf import preprocess


def write_json(path, payload):
  """Writes `payload` as JSON atomically (temporary file in the same folder, then rename)."""
  folder = os.path.dirname(os.path.abspath(path))
  with tempfile.NamedTemporaryFile("w", dir=folder, suffix=".tmp", delete=False) as file:
    json.dump(payload, file, indent=2)
    file.write("\n")
  os.replace(file.name, path)


def elements_payload():
  """policy.json's `elements`: the search space it was learned over, [{name, magnitude}] x 36."""
  return [{"name": e.name, "magnitude": e.magnitude} for e in augment.ELEMENTS]


def lineage_payload(lineage_counts):
  """policy.json's `lineage`: what the final network trained on, or None before any operation.

  With best-of-N broadcast the surviving network trained, period by period, on the batches of
  that period's best trajectory: the running sum of their op counts (`operations` in all,
  `probabilities` as 36x36 like p_θ) is its training distribution, which is not p_θ.
  """
  counts = np.asarray(lineage_counts, np.float64)
  total = counts.sum()
  if total <= 0:
    return None
  matrix = np.reshape(counts / total, [augment.NUM_ELEMENTS, augment.NUM_ELEMENTS])
  return {"operations": int(round(total)), "probabilities": matrix.tolist()}


def _with_lineage(payload, lineage_counts):
  lineage = None if lineage_counts is None else lineage_payload(lineage_counts)
  return payload if lineage is None else {**payload, "lineage": lineage}


def policy_payload(theta, lineage_counts=None):
  """The contents of policy.json: elements, p_θ as 36x36 (row e1, column e2), θ, and the
  lineage (`lineage_payload`) when given."""
  theta = tf.convert_to_tensor(theta, tf.float32)
  matrix = policy.probability_matrix(policy.operation_probabilities(theta))
  return _with_lineage({
      "elements": elements_payload(),
      "probabilities": np.asarray(matrix, np.float64).tolist(),
      "theta": np.asarray(theta, np.float64).tolist(),
  }, lineage_counts)


def fixed_policy_payload(probabilities, source, lineage_counts=None):
  """policy.json of a run trained with a fixed p (--policy=file:): elements, p, where it came
  from, the lineage; `LearnedAugment.from_policy` reads it like a learned one."""
  matrix = np.reshape(np.asarray(probabilities, np.float64),
                      [augment.NUM_ELEMENTS, augment.NUM_ELEMENTS])
  return _with_lineage({"elements": elements_payload(), "probabilities": matrix.tolist(),
                        "source": source}, lineage_counts)


class Classifier(tf.Module):
  """uint8 images in, class probabilities out; standardisation inside."""

  def __init__(self, model, mean, std):
    super().__init__()
    self.model = model
    self._mean, self._std = mean, std

  def __call__(self, images):
    standardised = preprocess.normalize(images, self._mean, self._std)  # as in training
    logits = self.model(standardised, training=False)
    return tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)


def save_classifier(model, path, mean, std, image_shape):
  """Exports `model` as a SavedModel whose `serving_default` maps uint8 [None,H,W,3] images to
  probabilities [None, classes], atomically (never a half-written directory at `path`)."""
  classifier = Classifier(model, mean, std)
  serve = tf.function(classifier.__call__, input_signature=[
      tf.TensorSpec([None, *image_shape], tf.uint8, name="images")])
  parent = os.path.dirname(os.path.abspath(path))
  staging = tempfile.mkdtemp(dir=parent, prefix=".saved_model.tmp-")
  try:
    tf.saved_model.save(classifier, staging, signatures={
        "serving_default": serve.get_concrete_function()})
    _replace_directory(staging, path)
  finally:
    shutil.rmtree(staging, ignore_errors=True)


def _replace_directory(source, destination):
  """Renames `source` to `destination`, replacing an older `destination` last."""
  retired = None
  if os.path.exists(destination):
    retired = tempfile.mkdtemp(dir=os.path.dirname(os.path.abspath(destination)),
                               prefix=".retired-")
    os.rename(destination, os.path.join(retired, "old"))
  os.rename(source, destination)
  if retired:
    shutil.rmtree(retired, ignore_errors=True)
