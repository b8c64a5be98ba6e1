"""Thin client for the triton-vision ensembles: encoded bytes in, answers out."""
