"""Benchmarks: run with `python bench/run.py` from the repository root (see docs/benchmarks.md)."""
