"""``triton-vision bench``: the ensemble against client-side preprocessing, in-process and the work bound.

In one run, on the same real photos (JPEG and PNG, several sizes) and the same ``model.onnx``:

- the ensemble over a concurrency sweep, driven by the bench's asyncio gRPC load generator (one
  image per request), with Triton's per-model statistics and the CPU per image of each process
  of the server (``tritonserver`` and each composing model's backend stub) over every window;
- optionally ``perf_analyzer`` (from the tritonclient wheel, via :mod:`triton_vision_bench.perf`)
  on the ensemble;
- the client-side-preprocessing baseline: the client decodes and preprocesses with OpenCV and sends FP32 tensors to the
  bare ONNX model through the same server;
- in-process: the same preprocessing + ONNX Runtime in this process (the ceiling without
  serving), single-image latency, and the model alone on preprocessed tensors;
- the work bound: cores / (preprocessing + model CPU-seconds per image, one thread each, at the
  in-process batch).

It writes ``<out>/bench-<ensemble>.md``, ``.json`` and ``.png`` and prints progress to stderr.
Any ensemble of the repository whose task the bench knows can be measured (:mod:`.profiles`).

One job per module:

- :mod:`.cli`: the arguments and the command (usage errors exit 2);
- :mod:`.options`: the settings of a run; :mod:`.messages`: errors and progress lines;
- :mod:`.profiles`: what the bench needs to know of an ensemble, read from the repository;
- :mod:`.preprocess`: the reference preprocessing, one function per task;
- :mod:`.images`: the photos; :mod:`.repository`: the repository the bench serves;
- :mod:`.run`: one run, start to report;
- :mod:`.load`: the load generator; :mod:`.sweep`: a path over a concurrency sweep;
- :mod:`.cpu`: CPU per image per server process (from :mod:`triton_vision_serving.procfs`);
- :mod:`.perf_analyzer`: the perf_analyzer points; :mod:`.in_process`: in-process and the work bound;
- :mod:`.served`: the server's models as served; :mod:`.machine`: the machine's facts;
- :mod:`.report`: the report's numbers (pure); :mod:`.render`: Markdown, PNG, the files.
"""
