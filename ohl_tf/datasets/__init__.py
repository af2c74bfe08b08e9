"""Image datasets for the OHL trainer, in memory or streamed, with a held-out validation split.

A dataset is named by a *spec* string (--dataset), one of `names()`:
  * "cifar10", "cifar100", "svhn_cropped": through tensorflow-datasets, converted once to numpy;
  * "imagenet2012": through tensorflow-datasets (manual download), streamed: a `StreamingDataset`;
  * "folder:ROOT": images in ROOT/<class>/* or ROOT/train/<class>/* (and optionally
    ROOT/test, ROOT/val or ROOT/validation, or ROOT/test and ROOT/val, then the validation
    split), in memory or streamed from the files
    (`FolderStream`);
  * "synthetic": a small dataset generated here, with no files, whose label is carried by colour
    so that Invert and Solarize destroy it (`HARMFUL_ELEMENTS`): the known answer of
    docs/correctness.md for the OHL loop.

Small datasets are held in memory as uint8 [N, H, W, 3] numpy arrays (`ImageDataset`; CIFAR-10's
training split is 150 MiB). ImageNet is streamed from tfds' records (`StreamingDataset`): images
of any size, decoded in the input pipeline after its shuffle, so that skipping is cheap. A large
folder is streamed from its files (`FolderStream`), each decoded when the pipeline reaches it.

`load` always holds `val_size` images out of the training split (docs/pipeline.md: the OHL
outer step scores the trajectories on them): in memory with a seeded permutation, so the same
spec, seed and val_size give the same three splits on every call; for ImageNet the first
`val_size` records of tfds' train split (tfds shuffled them once, with a fixed key, when it
prepared the dataset, so they are a fixed random sample whatever the seed).

Every dataset names its classes (`class_names`, label i is class_names[i]; the exported
classifier returns them): a folder dataset its class folders, a tfds dataset its label names
(the ids as strings, "0", "1", ..., where tfds has none), the synthetic one its colours.

Each source is its own module and registers itself (`registry.register`); a new dataset is one
such module plus one import line below (docs/extending.md).

Augmentation and normalisation are not done here: `mean` and `std` are handed to the pipeline
(ohl_tf.preprocess).

Example:
  >>> data = load("synthetic", val_size=500)
  >>> data.train_images.shape, data.num_classes
  ((4500, 32, 32, 3), 8)
"""

# Imported for their registrations: cifar10, cifar100, svhn_cropped; imagenet2012; folder:ROOT;
# synthetic.
from ohl_tf.datasets import folder  # pylint: disable=unused-import
from ohl_tf.datasets import imagenet  # pylint: disable=unused-import
from ohl_tf.datasets import synthetic  # pylint: disable=unused-import
from ohl_tf.datasets import tfds_source  # pylint: disable=unused-import
from ohl_tf.datasets.containers import check_class_names
from ohl_tf.datasets.containers import FolderStream
from ohl_tf.datasets.containers import ImageDataset
from ohl_tf.datasets.containers import StreamingDataset
from ohl_tf.datasets.folder import read_image
from ohl_tf.datasets.folder import STREAM_ABOVE_BYTES
from ohl_tf.datasets.folder import STREAM_ABOVE_FILES
from ohl_tf.datasets.imagenet import IMAGENET
from ohl_tf.datasets.registry import check_spec
from ohl_tf.datasets.registry import flag_help
from ohl_tf.datasets.registry import load
from ohl_tf.datasets.registry import names
from ohl_tf.datasets.registry import STREAM_CHOICES
from ohl_tf.datasets.synthetic import HARMFUL_ELEMENTS
from ohl_tf.datasets.synthetic import SYNTHETIC_CLASS_NAMES
from ohl_tf.datasets.synthetic import synthetic_examples
