"""Benchmarks, each runnable as a script: `python benchmarks/NAME.py --help`."""
