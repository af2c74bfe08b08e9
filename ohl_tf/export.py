"""What a run leaves for its users: a SavedModel classifier, the learned policy, the results.

Every artefact is written beside its destination and then renamed into place, so a crash never
leaves a half-written `saved_model/`, `policy.json` or `results.json`.
"""

import json
import os
import shutil
import tempfile

import keras
import tensorflow as tf

from ohl_tf import datasets
from ohl_tf import preprocess
from ohl_tf import private_api


def write_json(path, payload):
  """Writes `payload` as JSON atomically (temporary file in the same folder, then rename).

  Raises:
    OSError: the write failed, named after `path` (its filename); the temporary file is removed.
  """
  text = json.dumps(payload, indent=2) + "\n"  # a payload that cannot be encoded fails first
  handle, temporary = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), suffix=".tmp")
  try:
    # The close is inside: a full disk may fail only when the buffered text is flushed.
    with os.fdopen(handle, "w") as file:
      file.write(text)
    os.replace(temporary, path)
  except BaseException as error:
    if os.path.exists(temporary):
      os.remove(temporary)
    if isinstance(error, OSError):  # named after the destination: the temporary file is gone
      raise OSError(error.errno, error.strerror, path) from None
    raise


CLASS_NAMES_FILE = "class_names.txt"  # saved_model/assets/: line i names class i
# The signatures. TF Serving, KServe and saved_model_cli pick one by name ("signature_name",
# --signature_def) and default to serving_default; the `_bytes` suffix of the encoded images'
# input is the convention by which Google Cloud's prediction service base64-decodes a JSON
# {"b64": ...} value (TF Serving's REST API decodes {"b64": ...} for any string input).
SERVING_DEFAULT = "serving_default"
SERVING_BYTES = "serving_bytes"


class Classifier:
  """The functions the signatures serve: images in, class probabilities, ids and names out.

  Standardisation is inside, as in training; encoded images are decoded and brought to the
  training size as the dataset's evaluation prepares its own (`serving_preprocess`).

  Attributes:
    model: the Keras classifier, called on standardised images; its logits, in any dtype.
    image_shape: (H, W, 3) of the images `model` takes.
  """

  def __init__(self, model, mean, std, image_shape, class_names, serving_preprocess):
    self.model, self.image_shape = model, tuple(image_shape)
    self._mean, self._std = mean, std
    self._class_names = tf.constant(class_names, tf.string)  # a constant of the serving graph
    self._serving_preprocess = serving_preprocess

  def __call__(self, images):
    """float32 probabilities [B, K] of uint8 images [B, H, W, 3]."""
    standardised = preprocess.normalize(images, self._mean, self._std)  # as in training
    logits = self.model(standardised, training=False)
    # float32 whatever the model computes in (e.g. mixed_float16): the signature's dtype is fixed.
    return tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)

  def serve(self, images):
    """`serving_default`: probabilities, the top class's id and name of uint8 [B, H, W, 3]."""
    probabilities = self(images)
    class_id = tf.argmax(probabilities, axis=-1, output_type=tf.int64)
    return {"probabilities": probabilities, "class_id": class_id,
            "class_name": tf.gather(self._class_names, class_id)}

  def serve_bytes(self, image_bytes):
    """`serving_bytes`: `serve`'s outputs of a batch [B] of encoded JPEG/PNG/BMP/GIF images.

    Each is decoded to RGB as the dataset readers decode files (grey or RGBA images too, an
    animated GIF's first frame), then prepared by `serving_preprocess`, one at a time since
    their sizes may differ.
    """
    return self.serve(tf.map_fn(self._prepare, image_bytes,
                                fn_output_signature=tf.TensorSpec(self.image_shape, tf.uint8)))

  def _prepare(self, encoded):
    return self._serving_preprocess(
        tf.io.decode_image(encoded, channels=3, expand_animations=False))


def _check_serving_preprocess(serving_preprocess, image_shape):
  """Raises ValueError unless `serving_preprocess` takes uint8 [h, w, 3] of any size to uint8
  `image_shape`.

  Traced on its own, before the signature's tf.map_fn traces it: an error raised inside map_fn
  leaves TensorFlow's global variable scope with map_fn's caching device (TF 2.21), and every
  later tf.distribute scope of the process then fails.
  """
  image = tf.function(serving_preprocess, autograph=False).get_concrete_function(
      tf.TensorSpec([None, None, 3], tf.uint8)).structured_outputs
  if (not isinstance(image, tf.Tensor) or image.dtype != tf.uint8
      or not image.shape.is_fully_defined() or tuple(image.shape) != tuple(image_shape)):
    received = (f"an image with dtype={image.dtype.name}, shape={image.shape}"
                if isinstance(image, tf.Tensor) else f"{image!r}")
    raise ValueError(f"serving_preprocess must return a uint8 image of the model's shape "
                     f"{tuple(image_shape)}. Received: {received}")


def save_classifier(model, path, mean, std, image_shape, class_names, *, serving_preprocess):
  """Exports `model` as a SavedModel for serving, atomically (never a half-written `path`).

  Two signatures, both returning `probabilities` (float32 [None, K]), `class_id` (int64 [None],
  the argmax) and `class_name` (string [None], class_names[class_id]):
    * `serving_default` takes `images`, uint8 [None, H, W, 3] at `image_shape`;
    * `serving_bytes` takes `image_bytes`, string [None]: encoded JPEG/PNG/BMP/GIF images of any
      size, decoded and prepared by `serving_preprocess`, as evaluation prepares the dataset's.
  The names are also the asset `assets/class_names.txt`, line i naming class i, written from the
  same tuple.

  Written by Keras' `ExportArchive`, whose SavedModel the session-based loaders of TF Serving,
  KServe's TensorFlow runtime and `saved_model_cli run` restore: `tf.saved_model.save` of a
  module holding a Keras 3 model saves the variables where those loaders do not find them
  (keras-team/keras#19274).

  Args:
    model: a Keras model from standardised float images [B, H, W, 3] to logits [B, K].
    path: the SavedModel's directory; an older one there is replaced last.
    mean: per-channel mean in [0, 255] units, as in training.
    std: per-channel std in [0, 255] units, or None (mean subtraction only).
    image_shape: (H, W, 3) of the served images.
    class_names: K names, label i is class_names[i] (`datasets.check_class_names`).
    serving_preprocess: callable, uint8 [h, w, 3] of any size -> uint8 `image_shape`: the
      dataset's `serving_preprocess` (`ImageDataset`, `StreamingDataset`).

  Raises:
    ValueError: bad class_names, not one per logit of the model, or a serving_preprocess that
      does not return uint8 `image_shape` (nothing is written).
  """
  class_names = datasets.check_class_names(class_names)
  _check_serving_preprocess(serving_preprocess, image_shape)
  classifier = Classifier(model, mean, std, image_shape, class_names, serving_preprocess)
  archive = keras.export.ExportArchive()
  archive.track(model)
  serve = archive.add_endpoint(SERVING_DEFAULT, classifier.serve, [
      tf.TensorSpec([None, *image_shape], tf.uint8, name="images")])
  num_logits = serve.get_concrete_function().structured_outputs["probabilities"].shape[-1]
  if num_logits is not None and num_logits != len(class_names):  # None: known when served
    raise ValueError(f"class_names must name each of the model's {num_logits} outputs. "
                     f"Received: {len(class_names)} class_names for model {model.name!r}")
  archive.add_endpoint(SERVING_BYTES, classifier.serve_bytes, [
      tf.TensorSpec([None], tf.string, name="image_bytes")])
  parent = os.path.dirname(os.path.abspath(path))
  # One staging folder for the asset's source and the SavedModel, removed whatever happens.
  staging = tempfile.mkdtemp(dir=parent, prefix=".saved_model.tmp-")
  try:
    names_file = os.path.join(staging, CLASS_NAMES_FILE)
    with open(names_file, "w", encoding="utf-8", newline="\n") as file:
      file.writelines(f"{name}\n" for name in class_names)
    # ExportArchive saves endpoints, variables and lookup tables; an asset goes on the object it
    # saves (keras 3.15, pinned), so that it is copied into assets/, listed in the MetaGraph's
    # asset_file_def (where loaders other than TensorFlow's Python one find it) and is the
    # loaded object's `class_names_file`.
    root = private_api.export_archive_root(archive)
    root.class_names_file = tf.saved_model.Asset(names_file)
    saved_model = os.path.join(staging, "saved_model")
    archive.write_out(saved_model, verbose=False)
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
