"""dl4ds: deep learning for downscaling gridded climate and forecast data.

Main entry points:

- :mod:`dl4ds.datasets`: bundled real data (ERA5, static fields, GloSea4).
- :mod:`dl4ds.data`: pairing coarse and fine data (:class:`~dl4ds.data.PerfectProg`,
  :class:`~dl4ds.data.MOS`), normalisation and torch datasets.
- :mod:`dl4ds.models`: the network registry (``dl4ds.models.create``).
- :mod:`dl4ds.training`: trainers.
- :func:`dl4ds.load_model` and :func:`dl4ds.downscale`: apply a trained model.
- :mod:`dl4ds.evaluation`: verification metrics and maps.
"""

__version__ = "0.1.0"

from dl4ds import datasets, io  # noqa: E402
from dl4ds.checkpoint import load_model  # noqa: E402
from dl4ds.inference.downscale import downscale  # noqa: E402

__all__ = ["__version__", "datasets", "downscale", "io", "load_model"]
