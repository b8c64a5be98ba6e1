"""Server-side tooling: the local tritonserver runtime and the model files it serves."""
