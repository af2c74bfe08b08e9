"""What a run leaves for its users: a SavedModel classifier, the learned policy, the results.

Every artefact is written beside its destination and then renamed into place, so a crash never
leaves a half-written `saved_model/`, `policy.json` or `results.json`.
"""

import json
import os
import shutil
import tempfile

import tensorflow as tf

from ohl_tf import preprocess


def write_json(path, payload):
  """Writes `payload` as JSON atomically (temporary file in the same folder, then rename)."""
  folder = os.path.dirname(os.path.abspath(path))
  with tempfile.NamedTemporaryFile("w", dir=folder, suffix=".tmp", delete=False) as file:
    json.dump(payload, file, indent=2)
    file.write("\n")
  os.replace(file.name, path)


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
