"""Small helpers shared by every layer: atomic writes, seeded random draws, interpolation, quantiles, options."""
