"""The ``triton-vision`` command: one table of commands over the project's packages (:mod:`.main`)."""
