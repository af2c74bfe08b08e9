"""A Keras preprocessing layer that augments with a fixed, learned OHL policy (policy transfer).

After a search, `policy.json` (`ohl_tf.policy_file`) holds p_θ over the operations of its search
space (1296 in the paper's, 1369 with Identity, 1764 in AutoAugment's); retraining a model with
that policy fixed only needs this layer in the input pipeline or at the front of the model.
"""

import keras
import numpy as np
import tensorflow as tf

from ohl_tf import augment
from ohl_tf import policy
from ohl_tf import policy_file

@keras.saving.register_keras_serializable(package="ohl_tf")
class LearnedAugment(keras.layers.Layer):
  """Applies one operation per image, sampled from a learned OHL policy p over a search space.

  The size of p says the space (`ohl_tf.augment.SEARCH_SPACES`): 1296 operations (36x36) the
  paper's, 1369 (37x37) the paper's elements plus Identity (element 36), 1764 (42x42)
  AutoAugment's CIFAR-10 operations plus Identity.
  For each image the layer draws an operation k = E e1 + e2 from `probabilities` and the two
  signs (e1's and e2's, each -1 or +1) uniformly, and whether each element applies (always, but
  in AutoAugment's space with the element's probability: `augment.draw_signs`), then applies e1
  and e2 with `ohl_tf.augment.apply_operation` (the batched path for a batch, the per-image path
  for one image), so the result is byte-identical to Pillow's. Sampling is apart from applying
  (`sample_operations`, then `augment.apply_operation`), and seeded: a
  `keras.random.SeedGenerator(seed)` gives a fresh seed per call that feeds stateless TF ops, so
  two fresh layers with the same seed give the same outputs, call after call. (In a
  `tf.data` map with `num_parallel_calls`, which image gets which draw depends on scheduling;
  map over batches, or sequentially, for reproducible runs.)

  With `training=False` (e.g. `model.predict`, `model.evaluate`) the input is returned unchanged.
  The operations are uint8 ops: put the layer before any rescaling or normalisation.

  Args:
    probabilities: p over a search space's operations, E² floats (index k = E e1 + e2) or ExE
      (row e1, applied first; column e2), E = 36, 37 or 42, each finite and >= 0, summing to 1
      within 1e-4; as in the `probabilities` of policy.json (`ohl_tf.policy_file`).
    seed: optional int, the seed of the layer's SeedGenerator; None draws one at random.
    **kwargs: keras.layers.Layer arguments (`name`, ...).

  Input shape:
    uint8 [B, H, W, 3] (a batch) or [H, W, 3] (one image, e.g. in `tf.data.Dataset.map`),
    H, W >= 3.

  Output shape:
    uint8, the shape of the input.

  Example:

  ```python
  augmenter = LearnedAugment.from_policy("run/policy.json", seed=0)
  # In the input pipeline, one uint8 image at a time, before normalisation:
  dataset = dataset.map(lambda image, label: (augmenter(image), label))
  # Or at the front of a model (the identity under predict and evaluate):
  inputs = keras.Input([32, 32, 3], dtype="uint8")
  x = LearnedAugment.from_policy("run/policy.json", seed=0)(inputs)
  x = keras.layers.Rescaling(1 / 255)(x)
  outputs = keras.layers.Conv2D(16, 3)(x)
  model = keras.Model(inputs, outputs)
  ```
  """

  def __init__(self, probabilities, seed=None, **kwargs):
    super().__init__(**kwargs)
    log_probabilities = policy_file.log_probabilities(probabilities)  # checks them
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
      raise TypeError(f"seed must be an int or None. Received: seed={seed!r}")
    self._probabilities = np.asarray(probabilities, np.float64).tolist()
    self.seed = None if seed is None else int(seed)
    self._log_probabilities = log_probabilities  # -inf where p = 0: never drawn
    self.space = augment.space_of_operations(log_probabilities.shape[0])
    self.seed_generator = keras.random.SeedGenerator(self.seed, name="seed_generator")
    # The batched path partitions the batch by kernel (data-dependent shapes): keep XLA out, as
    # Keras's own lookup layers do; compile(jit_compile="auto") then runs the model without it.
    self.supports_jit = False

  @classmethod
  def from_policy(cls, path, seed=None, **kwargs):
    """A LearnedAugment with the `probabilities` of a policy.json (`ohl_tf.policy_file.read`).

    Args:
      path: the policy.json file.
      seed: as in the constructor.
      **kwargs: keras.layers.Layer arguments.

    Raises:
      ValueError: the file's `elements` are not those of its search space (names and
        magnitudes, in order), names no probabilities, or its probabilities are invalid.
    """
    return cls(policy_file.read(path), seed=seed, **kwargs)

  def sample_operations(self, batch_size=None):
    """Draws the operations and signs of one call; one SeedGenerator step.

    Args:
      batch_size: int or scalar int tensor, the number of images; None for one image.

    Returns:
      (ops, signs): int32 [B] in [0, E²) and int32 [B, 2] in {-1, +1} (0 where an element that
      applies with a probability does not, `augment.draw_signs`); [] and [2] when `batch_size`
      is None.
    """
    seed = tf.cast(self.seed_generator.next(), tf.int32)
    op_seed, sign_seed = tf.unstack(tf.random.split(seed, 2))
    count = 1 if batch_size is None else batch_size
    ops = policy.draw_operations(tf.constant(self._log_probabilities), count, op_seed)
    signs = augment.draw_signs(ops, sign_seed, self.space)
    if batch_size is None:
      return ops[0], signs[0]
    return ops, signs

  def call(self, images, training=True):
    images = tf.convert_to_tensor(images)
    if images.dtype != tf.uint8:
      raise TypeError("LearnedAugment applies Pillow-exact uint8 operations: put it before any "
                      "rescaling or normalisation, on uint8 images [B,H,W,3] or [H,W,3]. "
                      f"Received: images.dtype={images.dtype.name}")
    if images.shape.rank not in (3, 4):
      raise ValueError("LearnedAugment expects uint8 images [B,H,W,3] or [H,W,3]. "
                       f"Received: images.shape={images.shape}")
    if not training:
      return images
    batch_size = tf.shape(images)[0] if images.shape.rank == 4 else None
    ops, signs = self.sample_operations(batch_size)
    return augment.apply_operation(images, ops, signs, space=self.space)

  def compute_output_shape(self, input_shape):
    return input_shape

  def get_config(self):
    config = super().get_config()
    config.update({"probabilities": self._probabilities, "seed": self.seed})
    return config
