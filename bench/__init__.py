"""Benchmarks, run by hand (`python -m bench.edge_bench`); they print figures and never assert timings."""
