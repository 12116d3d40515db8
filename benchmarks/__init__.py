"""Benchmarks of cometnb against the alternatives (``make bench``); see ``run.py``."""
