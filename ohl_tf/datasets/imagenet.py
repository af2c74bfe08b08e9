"""`imagenet2012`: ILSVRC 2012 through tensorflow-datasets (manual download), streamed from its
records: a `StreamingDataset`; tfds' validation split is the test split."""

import numpy as np
import tensorflow_datasets as tfds

from ohl_tf import preprocess
from ohl_tf.datasets import containers
from ohl_tf.datasets import registry
from ohl_tf.datasets import tfds_source

IMAGENET = "imagenet2012"
IMAGENET_SIZE = 224  # the training crop and the evaluation crop (docs/pipeline.md)
_SHUFFLE_BUFFER = 10_000  # records; tfds also shuffles the order of its 1,024 train files


def _count(dataset):
  """Examples in a dataset: its cardinality where tfds knows it, else by reading it."""
  cardinality = int(dataset.cardinality())
  if cardinality >= 0:
    return cardinality
  return int(dataset.reduce(np.int64(0), lambda count, _: count + 1))


@registry.register(IMAGENET, help_text="tensorflow-datasets, streamed; needs its manual download "
                                          "in <data_dir>/downloads/manual; --image_size sets "
                                          "its crops (0: 224)")
def read_imagenet(request):
  """ImageNet (ILSVRC 2012) as a `StreamingDataset`; tfds' validation split is the test split."""
  data_dir, val_size = request.data_dir, request.val_size
  image_size = request.image_size or IMAGENET_SIZE
  skip_decoding = {"image": tfds.decode.SkipDecoding()}
  # Prepares the dataset (or says what is missing) once; every read then uses the builder.
  records, info = tfds_source.load_with_help(IMAGENET, data_dir, split="train",
                                             decoders=skip_decoding, with_info=True)
  builder = tfds.builder(IMAGENET, data_dir=data_dir)

  def read(tfds_split, shuffle_seed=None):
    shuffled = shuffle_seed is not None
    dataset = builder.as_dataset(split=tfds_split, shuffle_files=shuffled, as_supervised=True,
                                 decoders=skip_decoding,
                                 read_config=tfds.ReadConfig(shuffle_seed=shuffle_seed,
                                                             try_autocache=False))
    if shuffled:
      dataset = dataset.shuffle(_SHUFFLE_BUFFER, seed=shuffle_seed)
    return dataset

  count = _count(records)
  if not 1 <= val_size < count:
    raise ValueError(
        f"val_size (--val_size) must be in [1, {count - 1}] for {IMAGENET}, whose training split "
        f"has {count} images (the paper holds out 50000). Received: val_size={val_size}")
  return containers.StreamingDataset(
      name=IMAGENET, class_names=tfds_source.class_names(info), mean=preprocess.IMAGENET_MEAN,
      std=None, image_size=image_size, num_train=count - val_size, num_val=val_size, read=read)
