"""The network registry: ``create("resnet_spc", scale=4, in_channels=1, out_channels=1, static_channels=2)``.

Importing this package registers every architecture (see
:mod:`dl4ds.networks.architectures` for the naming scheme); :func:`list_models`
names them and :func:`model_parameters` gives their parameters and defaults.
:class:`ConditionalDiscriminator` judges generated fields for conditional
adversarial training.
"""

from dl4ds.networks import architectures, diffusion  # noqa: F401  (registers the architectures)
from dl4ds.networks.discriminator import ConditionalDiscriminator
from dl4ds.networks.registry import create, describe_model, list_models, model_parameters, register_model

__all__ = ["ConditionalDiscriminator", "create", "describe_model", "list_models", "model_parameters", "register_model"]
