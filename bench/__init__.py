"""Benchmarks: the app side by side with baselines measured in the same run.

`python -m bench` runs everything and exits non-zero when a figure misses its
target; `--quick` is the short run CI does. Every figure is a ratio against a
baseline taken in the same run (the machines are shared and noisy), or a count
or a size that does not depend on the machine's speed.
"""
