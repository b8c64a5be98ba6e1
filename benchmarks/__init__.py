"""Runnable benchmarks (python -m benchmarks.NAME from the project root); docs/benchmarking.md."""
