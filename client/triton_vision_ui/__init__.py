"""``triton-vision ui``: a browser playground for the ensembles of any Triton serving them.

A small Starlette app (the ``ui`` extra) serves one static page and forwards the page's uploads to
Triton over the thin client, so the page and its API share one origin (Triton sends no CORS
headers). Modules: :mod:`.server_info` (configs and statistics), :mod:`.discovery` (which
ensembles, which task), :mod:`.timing` (per-step times from statistics deltas), :mod:`.render`
(answers as JSON with the pictures drawn), :mod:`.playground` (one request end to end),
:mod:`.app` (the HTTP routes), :mod:`.launch` (starting the page: for ``ui`` and ``serve
--ui-port``), :mod:`.cli` (the ``ui`` command).
"""
