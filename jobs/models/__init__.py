"""Model training, evaluation metrics and diagnostic plots for the uplift and response models."""

from __future__ import annotations
