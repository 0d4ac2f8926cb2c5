"""Benchmark suite of optuna-fractal: problems x samplers x seeds x budgets.

Run ``python -m benchmarks --help`` from a checkout. The package imports nothing heavy at import
time, so that ``python -m benchmarks`` can cap the math-library threads before numpy loads.
"""
