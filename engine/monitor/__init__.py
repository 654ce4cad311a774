"""Drift and stability monitoring: PSI over fixed training bins (``psi``), the training baseline
stored beside each model card (``baseline``), the server's rolling windows (``live``) and the
report of ``verdict monitor`` (``report``)."""

__all__: list[str] = []
