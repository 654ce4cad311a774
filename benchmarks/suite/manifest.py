"""The schema of ``benchmarks/manifest.yaml``: profiles, cases, scaling sizes and targets."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["CASE_NAMES", "Case", "Manifest", "Profile", "Ref", "Target", "load_manifest"]

#: Case names are fixed so that results can be compared across commits.
CASE_NAMES = (
    "inprocess_decide", "rules_verdict", "rules_zen", "model_onnx", "model_lightgbm", "model_explain",
    "model_explain_lightgbm", "grpc_echo", "grpc_echo_plain", "grpc_decide", "scaling_rules", "scaling_models",
    "bad_request_cost", "batch_local", "batch_spark", "list_lookup", "state_decide",
)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Profile(_Frozen):
    """Iteration counts of one run mode (``full`` or ``quick``)."""

    warmup: int = Field(ge=0, description="calls before timing starts, per case and flow")
    iterations: int = Field(ge=1, description="timed calls per round (in-process cases)")
    rounds: int = Field(ge=1, description="rounds per case; the report gives the median of rounds")
    grpc_warmup: int = Field(ge=0, description="requests before timing, per gRPC configuration")
    grpc_requests: int = Field(ge=1, description="timed requests per round, per method and concurrency")
    grpc_rounds: int = Field(ge=1)
    grpc_round_seconds: float = Field(gt=0, description="a round stops after this long even if requests remain")
    concurrency: tuple[int, ...] = Field(min_length=1)
    workers: tuple[int, ...] = Field(min_length=1, description="server processes (verdict serve --workers N)")
    scaling_rules: tuple[int, ...] = Field(min_length=1, description="total rule counts of the rule-scaling flow")
    scaling_trees: tuple[int, ...] = Field(min_length=1, description="tree counts of the throwaway models")
    scaling_iterations: int = Field(ge=1)
    agreement_inputs: int = Field(ge=1, description="inputs on which rules_zen must agree with rules_verdict")
    batch_rows: int = Field(default=100_000, ge=10, description="credit rows (resampled from data/) of the batch cases")


class Case(_Frozen):
    """One case: its fixed name and what it measures."""

    name: Literal[
        "inprocess_decide", "rules_verdict", "rules_zen", "model_onnx", "model_lightgbm", "model_explain",
        "model_explain_lightgbm", "grpc_echo", "grpc_echo_plain", "grpc_decide", "scaling_rules", "scaling_models",
        "bad_request_cost", "batch_local", "batch_spark", "list_lookup", "state_decide",
    ]
    description: str


class Ref(_Frozen):
    """One statistic of one case result, e.g. grpc_decide p50 at concurrency 1 with 1 worker."""

    case: str
    stat: Literal["p50_us", "p99_us", "p999_us", "mean_us", "rps", "server_cpu_us_per_request", "peak_rss_mb", "cpu_us_per_row"]
    flow: str | None = None
    kind: str | None = None  # bad_request_cost: good, worst or one bad kind; batch_local: small or large; list_lookup: with_lists or without_list_rules; state_decide: its stores (benchmarks/suite/state_cases.py)
    concurrency: int | None = None
    workers: int | None = None


class Target(_Frozen):
    """A ratio of two statistics measured in the same run, with its limit."""

    name: str
    numerator: Ref
    denominator: Ref
    max: float | None = None
    min: float | None = None

    @model_validator(mode="after")
    def _one_bound(self) -> Target:
        if (self.max is None) == (self.min is None):
            raise ValueError("a target has exactly one of 'max' and 'min'")
        return self


class Manifest(_Frozen):
    """benchmarks/manifest.yaml."""

    schema_: Literal["verdict.bench/v1"] = Field(alias="schema")
    flows: tuple[str, ...] = Field(min_length=1, description="bundled flows the cases run on")
    inputs_per_flow: int = Field(ge=1, description="real inputs from data/ cycled through, per flow")
    profiles: dict[Literal["full", "quick"], Profile]
    cases: tuple[Case, ...]
    targets: tuple[Target, ...] = ()

    @model_validator(mode="after")
    def _unique(self) -> Manifest:
        names = [c.name for c in self.cases]
        if len(set(names)) != len(names):
            raise ValueError("a case is listed twice")
        return self


def load_manifest(path: Path) -> Manifest:
    """Read and validate the manifest."""
    return Manifest.model_validate(yaml.safe_load(Path(path).read_text()))
