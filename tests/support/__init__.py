"""Shared test support: reference preprocessing, test images, repository builders, processes."""
