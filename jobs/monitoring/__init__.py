"""Monitoring of the nightly chain: drift between the training and the scoring population."""
