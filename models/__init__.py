"""Keras model builders by name: `models.build("resnet20", 10, input_shape=(32, 32, 3))`.

Every builder module is imported here explicitly so that it registers itself; a new model
family is a new module (registering with `from models import registry`, `@registry.register`)
plus one import line below.
"""

# Imported for their registrations: resnet8, resnet18, resnet20, resnet56; wrn28_10; dpn92;
# resnet50, se_resnext101; amoebanet_b.
from models import amoebanet  # pylint: disable=unused-import
from models import dpn  # pylint: disable=unused-import
from models import resnet  # pylint: disable=unused-import
from models import resnet_imagenet  # pylint: disable=unused-import
from models import wide_resnet  # pylint: disable=unused-import
from models.registry import build
from models.registry import names
