"""Imported data sets as first-class inputs: train, score and evaluate them through the platform."""
