"""What a run leaves for its users: a SavedModel classifier, the learned policy, the results.

Every artefact is written beside its destination and then renamed into place, so a crash never
leaves a half-written `saved_model/`, `policy.json` or `results.json`.
"""

import json
import os
import shutil
import tempfile

import tensorflow as tf

from ohl_tf import datasets
from ohl_tf import preprocess


def write_json(path, payload):
  """Writes `payload` as JSON atomically (temporary file in the same folder, then rename)."""
  folder = os.path.dirname(os.path.abspath(path))
  with tempfile.NamedTemporaryFile("w", dir=folder, suffix=".tmp", delete=False) as file:
    try:
      json.dump(payload, file, indent=2)
      file.write("\n")
      file.flush()  # a full disk fails here, not after the temporary file is renamed into place
    except OSError as error:  # named after the destination: the temporary file is gone
      os.remove(file.name)
      raise OSError(error.errno, error.strerror, path) from None
    except BaseException:
      os.remove(file.name)
      raise
  os.replace(file.name, path)


CLASS_NAMES_FILE = "class_names.txt"  # saved_model/assets/: line i names class i


class Classifier(tf.Module):
  """uint8 images in, class probabilities, ids and names out; standardisation inside.

  Attributes:
    model: the Keras classifier, called on standardised images; its logits, in any dtype.
    class_names_file: the asset that holds the class names, one per line, tracked so that
      tf.saved_model.save copies it into the SavedModel's assets/ and lists it in the
      MetaGraph's asset_file_def, where loaders other than TensorFlow's Python one find it.
  """

  def __init__(self, model, mean, std, class_names, class_names_file):
    super().__init__()
    self.model = model
    self._mean, self._std = mean, std
    self._class_names = tf.constant(class_names, tf.string)  # a constant of the serving graph
    self.class_names_file = tf.saved_model.Asset(class_names_file)

  def __call__(self, images):
    """float32 probabilities [B, K] of uint8 images [B, H, W, 3]."""
    standardised = preprocess.normalize(images, self._mean, self._std)  # as in training
    logits = self.model(standardised, training=False)
    # float32 whatever the model computes in (e.g. mixed_float16): the signature's dtype is fixed.
    return tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)

  def serve(self, images):
    """The serving signature's outputs: probabilities, the top class's id and name."""
    probabilities = self(images)
    class_id = tf.argmax(probabilities, axis=-1, output_type=tf.int64)
    return {"probabilities": probabilities, "class_id": class_id,
            "class_name": tf.gather(self._class_names, class_id)}


def save_classifier(model, path, mean, std, image_shape, class_names):
  """Exports `model` as a SavedModel for serving, atomically (never a half-written `path`).

  `serving_default` takes `images`, uint8 [None, H, W, 3], and returns `probabilities` (float32
  [None, K]), `class_id` (int64 [None], the argmax) and `class_name` (string [None],
  class_names[class_id]). The names are also the asset `assets/class_names.txt`, line i naming
  class i, written from the same tuple.

  Args:
    model: a Keras model from standardised float images [B, H, W, 3] to logits [B, K].
    path: the SavedModel's directory; an older one there is replaced last.
    mean: per-channel mean in [0, 255] units, as in training.
    std: per-channel std in [0, 255] units, or None (mean subtraction only).
    image_shape: (H, W, 3) of the served images.
    class_names: K names, label i is class_names[i] (`datasets.check_class_names`).

  Raises:
    ValueError: bad class_names, or not one per logit of the model (nothing is written).
  """
  class_names = datasets.check_class_names(class_names)
  parent = os.path.dirname(os.path.abspath(path))
  # One staging folder for the asset's source and the SavedModel, removed whatever happens.
  staging = tempfile.mkdtemp(dir=parent, prefix=".saved_model.tmp-")
  try:
    names_file = os.path.join(staging, CLASS_NAMES_FILE)
    with open(names_file, "w", encoding="utf-8", newline="\n") as file:
      file.writelines(f"{name}\n" for name in class_names)
    classifier = Classifier(model, mean, std, class_names, names_file)
    serve = tf.function(classifier.serve, input_signature=[
        tf.TensorSpec([None, *image_shape], tf.uint8, name="images")]).get_concrete_function()
    num_logits = serve.structured_outputs["probabilities"].shape[-1]
    if num_logits is not None and num_logits != len(class_names):  # None: known when served
      raise ValueError(f"class_names must name each of the model's {num_logits} outputs. "
                       f"Received: {len(class_names)} class_names for model {model.name!r}")
    saved_model = os.path.join(staging, "saved_model")
    tf.saved_model.save(classifier, saved_model, signatures={"serving_default": serve})
    _replace_directory(saved_model, path)
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
