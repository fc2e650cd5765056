"""Nightly training: training set, model fitting, evaluation, tuning and the registry."""
