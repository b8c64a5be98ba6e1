"""Batch jobs on a Ray cluster: a folder job's images spread over Ray actors that call one or more
Triton servers, results written as Parquet parts (``triton-vision batch``; the ``batch`` extra)."""
