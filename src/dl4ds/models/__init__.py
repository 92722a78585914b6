"""The network registry: ``create("resnet_spc", scale=4, in_channels=1, out_channels=1, static_channels=2)``.

Importing this package registers every architecture; :func:`list_models`
names them and :func:`model_parameters` gives their parameters and defaults.
"""

from dl4ds.models import resnet_spc  # noqa: F401  (registers the architecture)
from dl4ds.models.registry import create, list_models, model_parameters, register_model

__all__ = ["create", "list_models", "model_parameters", "register_model"]
