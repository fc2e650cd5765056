"""Point-in-time customer features (silver -> ``gold/features``): see :mod:`jobs.features.build`."""

from __future__ import annotations
