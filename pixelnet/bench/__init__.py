"""Benchmarks behind `pixelnet bench ...`: what they build and time lives here, the commands in
`pipeline/bench.py`. Figures come from running code, never from constants: each result records the
device it ran on and the settings it used."""
