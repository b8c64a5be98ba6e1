"""Ensembles from model specs: ``triton-vision add-model`` (and the built-in ensembles, generated the same way).

- :mod:`.modelspec`: the spec (TOML) and its checks;
- :mod:`.onnx_model`: the model file against its spec (tensors, batching, refusals);
- :mod:`.dali_source`: the ``dali.py`` of the preprocessing;
- :mod:`.configs`: the ``config.pbtxt`` and ``model.py`` files;
- :mod:`.addmodel`: writing them into a repository;
- :mod:`.verify`: the spec's preprocessing against its common alternatives on labelled photos;
- :mod:`.cli`: the ``add-model`` command.
"""
