"""The dl4ds version, read by the package (``dl4ds.__version__``) and by the build (pyproject.toml)."""

__version__ = "0.2.0.dev0"
