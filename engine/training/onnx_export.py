"""Exporting a LightGBM booster to ONNX and checking ONNX against the native model.

Split thresholds are kept in double precision. onnxmltools writes LightGBM's float64 thresholds
into ``TreeEnsembleClassifier`` (ai.onnx.ml opset 1) as FLOATS, so ``x <= t`` becomes
``(float)x <= (float)t`` and an input between ``t`` and ``float32(t)`` goes down the other branch
(onnx/onnx#3897; credit_default v1 served pd 0.298910 for 0.302237 at amount 3562 / price 5948).
:func:`lightgbm_to_onnx` therefore rewrites the converted node to ai.onnx.ml opset 3 with
``nodes_values_as_tensor`` (float64) and declares the graph input as double (onnxruntime runs a
double-input tree ensemble with double thresholds since 1.11, microsoft/onnxruntime#10821). The
served score is then the booster's at every threshold, which :func:`max_abs_diff` over
:func:`engine.training.probes.probe_rows` checks before any model is written.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import lightgbm as lgb
import numpy as np
import onnx

from engine.models.onnx_runtime import ort
from engine.models.runtime import session_options
from engine.training.errors import ParityError

__all__ = [
    "PARITY_TOLERANCE", "canonical_bytes", "input_dtype", "lightgbm_to_onnx", "max_abs_diff", "onnx_scores",
    "with_missing",
]

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
    opsets = sorted((o.domain, o.version) for o in model.opset_import)
    del model.opset_import[:]
    for domain, version in opsets:
        model.opset_import.append(onnx.helper.make_opsetid(domain, version))
    return model.SerializeToString()


def lightgbm_to_onnx(booster: lgb.Booster, n_features: int) -> bytes:
    """The booster as an ONNX graph: input ``input`` (N, n) float64, outputs label and probabilities.

    Thresholds are the booster's float64 values (see the module docstring). Raises ``ValueError``
    if the converted graph's nodes do not line up with the booster's (a changed converter).
    """
    import onnxmltools
    from onnxmltools.convert.common.data_types import FloatTensorType

    # The converter accepts only a float input; the input is widened to double below (the tree
    # node is its only consumer).
    model = onnxmltools.convert_lightgbm(
        booster, initial_types=[(INPUT_NAME, FloatTensorType([None, n_features]))],
        zipmap=False, target_opset=15,
    )
    _double_thresholds(model, booster)
    model.graph.input[0].type.tensor_type.elem_type = onnx.TensorProto.DOUBLE
    onnx.checker.check_model(model)
    return canonical_bytes(model, "verdict_lightgbm_binary")


def _converter_thresholds(booster: lgb.Booster) -> list[float]:
    """The float64 ``nodes_values`` onnxmltools computes before storing them as float32, in its node order.

    Runs the converter's own tree walk (``_parse_tree_structure`` over the same dump, categorical
    sets unfolded the same way) and its sort of nodes by tree then node id.
    """
    from onnxmltools.convert.common.tree_ensemble import (
        get_default_tree_classifier_attribute_pairs,
    )
    from onnxmltools.convert.lightgbm.operator_converters import LightGbm

    gbm, info = LightGbm.dump_booster_model(booster)
    LightGbm.modify_tree_for_rule_in_set(gbm, use_float=True, info=info)
    attrs = get_default_tree_classifier_attribute_pairs()
    for i, tree in enumerate(gbm["tree_info"]):
        LightGbm._parse_tree_structure(i, 0, 1.0, tree["tree_structure"], attrs)
    per_tree: dict[int, int] = {}
    for t in attrs["nodes_treeids"]:
        per_tree[t] = per_tree.get(t, 0) + 1
    offset, start = {}, 0
    for t in sorted(per_tree):
        offset[t], start = start, start + per_tree[t]
    order = sorted(range(len(attrs["nodes_nodeids"])),
                   key=lambda k: offset[attrs["nodes_treeids"][k]] + attrs["nodes_nodeids"][k])
    return [_unclamp(float(attrs["nodes_values"][k])) for k in order]


def _unclamp(t: float) -> float:
    """The booster's threshold behind a dumped one: the JSON dump writes ±inf as ±1e300.

    LightGBM's ``Common::AvoidInf`` clamps values beyond ±1e300 when it dumps JSON, while the
    booster (and ``model.txt``) keep ``inf``, the threshold of a "missing or not" split.
    """
    return math.copysign(math.inf, t) if abs(t) >= 1e300 else t


def _double_thresholds(model: onnx.ModelProto, booster: lgb.Booster) -> None:
    """Replace the tree node's float32 ``nodes_values`` by float64 ``nodes_values_as_tensor`` (ai.onnx.ml 3)."""
    nodes = [n for n in model.graph.node if n.op_type == "TreeEnsembleClassifier"]
    if len(nodes) != 1:
        raise ValueError(f"expected one TreeEnsembleClassifier node, found {len(nodes)}")
    node = nodes[0]
    attr = next(a for a in node.attribute if a.name == "nodes_values")
    values = _converter_thresholds(booster)
    stored = np.asarray(attr.floats, dtype=np.float32)
    with np.errstate(over="ignore"):  # a 1e300 threshold ("missing or not") is inf in float32, as stored
        narrowed = np.asarray(values, dtype=np.float32)
    if len(values) != len(stored) or not np.array_equal(narrowed, stored):
        raise ValueError("the converted graph's thresholds do not match the booster's; refusing to guess")
    node.attribute.remove(attr)
    node.attribute.append(onnx.helper.make_attribute(
        "nodes_values_as_tensor", onnx.numpy_helper.from_array(np.asarray(values, dtype=np.float64))))
    for opset in model.opset_import:
        if opset.domain == "ai.onnx.ml":
            opset.version = max(opset.version, 3)


_ONNX_DTYPES: dict[str, type[np.floating]] = {"tensor(float)": np.float32, "tensor(double)": np.float64}


def input_dtype(session: ort.InferenceSession) -> type[np.floating]:
    """The numpy dtype of a session's (single) input: float32 or float64; ``ValueError`` otherwise."""
    kind = session.get_inputs()[0].type
    if kind not in _ONNX_DTYPES:
        raise ValueError(f"graph input type {kind} is neither float nor double")
    return _ONNX_DTYPES[kind]


def onnx_scores(onnx_bytes: bytes, x: np.ndarray, output: str, index: int) -> np.ndarray:
    """Scores of ``x`` through onnxruntime, column ``index`` of output ``output``."""
    sess = ort.InferenceSession(onnx_bytes, sess_options=session_options(), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    out = sess.run([output], {name: np.ascontiguousarray(x, dtype=input_dtype(sess))})[0]
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
    """Max |native - ONNX| over ``x``; raises :class:`ParityError` above ``tolerance``.

    Both receive the row the server would send the graph: float64 for a double-input graph,
    float32 (then widened for the native model) for a float-input one.
    """
    sess = ort.InferenceSession(onnx_bytes, sess_options=session_options(), providers=["CPUExecutionProvider"])
    rows = np.ascontiguousarray(np.asarray(x).astype(input_dtype(sess)))
    diff = float(np.max(np.abs(native(rows) - onnx_scores(onnx_bytes, rows, output, index)))) if len(rows) else 0.0
    if not diff <= tolerance:
        raise ParityError(
            f"ONNX and native predictions differ by {diff:.3g} on {what} (tolerance {tolerance:g}); "
            "the model was not written"
        )
    return diff
