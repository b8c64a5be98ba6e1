"""The local serving runtime: ``serve`` (tritonserver as a supervised process, its backends, ports,
logs and memory) and the ``demo``."""
