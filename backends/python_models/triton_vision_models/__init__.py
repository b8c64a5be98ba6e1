"""Pure building blocks of triton-vision's Triton models.

Nothing in this package imports ``triton_python_backend_utils`` except
:mod:`triton_vision_models.triton_adapter`, the one place that maps tensors, request
parameters and errors to Triton's Python backend. Everything else is NumPy/OpenCV code
that the unit tests exercise without a server.
"""
