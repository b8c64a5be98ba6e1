"""Model repository authoring: ``add-model`` (ensembles from a spec), ``check``, ``export-repo``,
``init`` and the model files (``models prepare`` / ``models status``)."""
