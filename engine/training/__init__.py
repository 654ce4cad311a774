"""Model training: data preparation, LightGBM/logistic/anomaly trainers, ONNX export, cards, rebuild.

Modules (import them directly; this package imports nothing heavy on its own):
``table`` (CSV typing), ``derived`` (derived feature definitions shared with flows), ``dataset``
(target + encoded matrix), ``metrics``, ``lightgbm_trainer``, ``onnx_export``, ``artifacts``
(writing a model directory), ``binary`` (the end-to-end LightGBM pipeline), ``fraud_data``
(the seeded transaction generator) and ``rebuild`` (every bundled model in one command).
"""
