"""What Triton loads: the Python-based ``onnxruntime`` and ``dali`` backends (``<name>/model.py``),
shipped in the wheel as package data, and ``python_models/`` (the Python models' library)."""
