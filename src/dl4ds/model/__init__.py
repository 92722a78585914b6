"""The trained model: a network from :mod:`dl4ds.networks` with everything needed to apply it.

:class:`DownscalingModel` holds the network, its :class:`ModelMetadata`
(variables, grids, normalisation statistics, architecture, configuration),
the static fields and the mask of cells without truth;
:mod:`dl4ds.model.checkpoint` writes and reads it (:func:`load_model`).
"""

from dl4ds.model.capabilities import Capabilities
from dl4ds.model.checkpoint import load_model, read_checkpoint, save_checkpoint
from dl4ds.model.downscaling_model import DownscalingModel
from dl4ds.model.metadata import ModelMetadata

__all__ = ["Capabilities", "DownscalingModel", "ModelMetadata", "load_model", "read_checkpoint", "save_checkpoint"]
