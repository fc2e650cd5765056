"""Closed loop: realised effects of the strategies against the random holdout, drift, predicted against realised."""
