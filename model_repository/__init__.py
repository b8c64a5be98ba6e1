"""The built-in model repository, shipped in the wheel as package data (``triton-vision init DIR``
writes it out). Triton ignores this file: it loads the model folders beside it."""
