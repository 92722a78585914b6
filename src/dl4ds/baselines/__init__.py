"""Reference methods the networks must beat: the baseline ladder.

Every baseline downscales :class:`~dl4ds.data.pairing.PairedData` through one
interface: ``fit(train)`` learns from the training pairs only, and
``predict(data)`` downscales the coarse inputs of ``data``, whose target is used
for its coordinates and attributes but never its values. From the simplest rung
up (the order of :func:`list_baselines`):

================  ================================================================
``nearest``       each coarse value repeated over its ``scale`` x ``scale`` block
``bilinear``      bilinear interpolation
``bicubic``       bicubic interpolation (the networks' global skip connection)
``conservative``  bilinear, corrected so that every block averages to its coarse value
``lapse_rate``    interpolation plus a fitted linear elevation correction
``bcsd``          quantile-mapping bias correction and spatial disaggregation
``regression``    linear regression at each fine point on all interpolated inputs
================  ================================================================

All interpolation uses :func:`dl4ds.utils.interpolation.upsample`, the kernel of the
networks' global skip. As with the networks, a coarse cell without data (NaN)
gives NaN over its whole block; to keep it from spreading into neighbouring
blocks, such cells are filled from their valid neighbours before interpolating.
"""

from dl4ds.baselines.base import Baseline
from dl4ds.baselines.bcsd import BCSD
from dl4ds.baselines.interpolation import Conservative, Interpolation, interpolate_to_fine
from dl4ds.baselines.lapse_rate import LapseRate
from dl4ds.baselines.options import BaselineOptions, BCSDOptions, LapseRateOptions, RegressionOptions
from dl4ds.baselines.registry import create_baseline, list_baselines
from dl4ds.baselines.regression import PointwiseRegression

__all__ = [
    "BCSD",
    "BCSDOptions",
    "Baseline",
    "BaselineOptions",
    "Conservative",
    "Interpolation",
    "LapseRate",
    "LapseRateOptions",
    "PointwiseRegression",
    "RegressionOptions",
    "create_baseline",
    "interpolate_to_fine",
    "list_baselines",
]
