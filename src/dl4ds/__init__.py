"""dl4ds: deep learning for downscaling gridded climate and forecast data.

Main entry points:

- :mod:`dl4ds.datasets`: bundled real data (ERA5, static fields, GloSea4).
- :mod:`dl4ds.data`: pairing coarse and fine data (:class:`~dl4ds.data.PerfectProg`,
  :class:`~dl4ds.data.MOS`), normalisation and torch datasets.
- :mod:`dl4ds.networks`: the network registry (``dl4ds.networks.create``).
- :mod:`dl4ds.training`: trainers.
- :func:`dl4ds.load_model` and :func:`dl4ds.downscale`: apply a trained model.
- :mod:`dl4ds.evaluation`: verification metrics and maps.
"""

from dl4ds import datasets, io
from dl4ds._version import __version__
from dl4ds.inference.downscale import downscale
from dl4ds.model.checkpoint import load_model

__all__ = ["__version__", "datasets", "downscale", "io", "load_model"]
