"""onnxruntime, imported with its telemetry off: the one place Verdict imports it.

onnxruntime 1.32's Linux wheel starts a telemetry provider when the module is imported: it writes a
device id and an event database under ``$XDG_CACHE_HOME`` or ``~/.cache``
(``Microsoft/DeveloperTools/.onnxruntime/``) and may upload a process-information event. Two
switches, both needed:

- the environment variable ``ORT_DISABLE_TELEMETRY=1``, read when the library initialises (so it
  must be set before the first ``import onnxruntime`` in the process): nothing is created or
  written. ``ORT_TELEMETRY_DISABLED``, named in microsoft/onnxruntime#29843, does not do it in 1.32.
- ``onnxruntime.disable_telemetry_events()``, the documented API (microsoft/onnxruntime#5481), for
  every event after import.

An operator who sets ``ORT_DISABLE_TELEMETRY`` to something else keeps their value. Modules use
``from engine.models.onnx_runtime import ort``; a test imports the package with a fresh ``HOME`` and checks
that nothing is written.
"""

from __future__ import annotations

import os

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")  # before the import below: read at initialisation

import onnxruntime as ort

ort.disable_telemetry_events()

__all__ = ["ort"]
