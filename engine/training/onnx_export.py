"""Exporting a LightGBM booster to ONNX and checking ONNX against the native model."""

from __future__ import annotations

from collections.abc import Callable

import lightgbm as lgb
import numpy as np
import onnx
from engine.onnx_runtime import ort

from engine.models import session_options
from engine.training.errors import ParityError

__all__ = ["PARITY_TOLERANCE", "canonical_bytes", "lightgbm_to_onnx", "max_abs_diff", "onnx_scores", "with_missing"]

PARITY_TOLERANCE = 1e-5
INPUT_NAME = "input"


def _dynamic_batch(model: onnx.ModelProto) -> None:
    """Declare every output's first dimension as the batch (the converter pins ``label`` to 1)."""
    for out in model.graph.output:
        dims = out.type.tensor_type.shape.dim
        if dims:
            dims[0].ClearField("dim_value")
            dims[0].dim_param = "N"


def canonical_bytes(model: onnx.ModelProto, graph_name: str) -> bytes:
    """Serialise with everything a converter leaves to chance fixed: graph name, opset order, batch dim.

    Converters name the graph with a random uuid and emit ``opset_import`` in set order (which
    depends on PYTHONHASHSEED); both would make identical models differ byte for byte.
    """
    _dynamic_batch(model)
    model.graph.name = graph_name
    opsets = sorted(((o.domain, o.version) for o in model.opset_import))
    del model.opset_import[:]
    for domain, version in opsets:
        model.opset_import.append(onnx.helper.make_opsetid(domain, version))
    return model.SerializeToString()


def lightgbm_to_onnx(booster: lgb.Booster, n_features: int) -> bytes:
    """The booster as an ONNX graph: input ``input`` (N, n) float32, outputs label and probabilities."""
    import onnxmltools
    from onnxmltools.convert.common.data_types import FloatTensorType

    model = onnxmltools.convert_lightgbm(
        booster, initial_types=[(INPUT_NAME, FloatTensorType([None, n_features]))],
        zipmap=False, target_opset=15,
    )
    return canonical_bytes(model, "verdict_lightgbm_binary")


def onnx_scores(onnx_bytes: bytes, x: np.ndarray, output: str, index: int) -> np.ndarray:
    """Scores of ``x`` through onnxruntime, column ``index`` of output ``output``."""
    sess = ort.InferenceSession(onnx_bytes, sess_options=session_options(), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    out = sess.run([output], {name: np.ascontiguousarray(x, dtype=np.float32)})[0]
    return np.asarray(out[:, index] if out.ndim == 2 else out, dtype=np.float64)


def with_missing(x: np.ndarray, seed: int, rate: float = 0.1) -> np.ndarray:
    """A copy of ``x`` with a seeded ``rate`` of cells set to NaN (checks missing-value routing)."""
    rng = np.random.default_rng(seed)
    out = np.array(x, dtype=np.float32, copy=True)
    out[rng.random(out.shape) < rate] = np.nan
    return out


def max_abs_diff(
    native: Callable[[np.ndarray], np.ndarray], onnx_bytes: bytes, x: np.ndarray, output: str, index: int,
    what: str, tolerance: float = PARITY_TOLERANCE,
) -> float:
    """Max |native - ONNX| over ``x``; raises :class:`ParityError` above ``tolerance``."""
    x32 = np.ascontiguousarray(x, dtype=np.float32)
    diff = float(np.max(np.abs(native(x32) - onnx_scores(onnx_bytes, x32, output, index)))) if len(x32) else 0.0
    if not diff <= tolerance:
        raise ParityError(
            f"ONNX and native predictions differ by {diff:.3g} on {what} (tolerance {tolerance:g}); "
            "the model was not written"
        )
    return diff
