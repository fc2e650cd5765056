"""Benchmarks run by ``make bench`` (never by pytest): figures go to docs/BENCHMARKS.md."""
