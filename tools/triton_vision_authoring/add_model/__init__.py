"""Ensembles from ensemble specs: ``triton-vision add-model`` (and the built-in ensembles, generated the same way).

- :mod:`.ensemble_spec`: the spec (TOML) and its checks;
- :mod:`.onnx_model`: the model file against its spec (tensors, batching, refusals);
- :mod:`.dali_source`: the ``dali.py`` of the preprocessing;
- :mod:`.configs`: the ``config.pbtxt`` and ``model.py`` files;
- :mod:`.add_model`: writing them into a repository;
- :mod:`.verify`: the spec's preprocessing against its common alternatives on labelled photos;
- :mod:`triton_vision_authoring.add_model_command`: the ``add-model`` command.
"""
