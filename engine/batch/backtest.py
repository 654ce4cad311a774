"""Backtests from history: decide the same rows with several flow versions side by side and compare.

``verdict backtest FLOW --versions A[,B,C...] --input HISTORY`` decides every row of a CSV or
Parquet history with each version (pinned: no routing), streamed a chunk at a time through the
batch core, and reports for each version its action counts and rates, the rules that fired and
the reasons given (with outcomes, the bad rate of each rule's hits) and the rows it could not
decide (one version alone is a backtest too: a new flow before it serves); for each later version against the first (the baseline) the comparison of ``verdict
replay`` (``ReplayReport.compare`` and ``engine.audit.report.comparison_lines``: rates before and
after, the transition matrix, the rules behind the changes, rule hits, mean scores, example rows);
and, with known outcomes (an outcome column of the history, or an outcomes file joined on an id
column), the approval rate, bad rate of approved business and decline / review+decline precision
and recall of each version (``engine.audit.replay_report.Metrics``). A row counts in a comparison when
both versions decided it. Rendered as text tables, JSON and PNG plots. The same on Spark with
``engine="spark"``: each version's decisions come from ``engine.batch.spark.decide``.

Fairness: with ``protected`` columns of the history (and an ``age`` column, grouped into
``engine.training.fairness.AGE_BANDS``), each version's decided rows are counted per group and the
report gains, per version and attribute, each group's rows, approval rate (APPROVE actions),
adverse impact ratio against the most favoured group (``engine.training.fairness.adverse_impact``,
flagged below 0.8: the four-fifths rule, 29 CFR 1607.4(D)) and, with outcomes, the bad rate of
approved business. Those columns are carried beside the rows, never sent to the flow: a flow that
declares one as an input field is refused (ProtectedColumnError). The same on Spark: the columns are
carried beside each row's decisions as their text (``engine.batch.spark.decide``'s ``carry``).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.audit.replay import outcome_label
from engine.audit.replay_report import ACTIONS, Compared, Metrics, ReplayReport
from engine.audit.report import comparison_lines, fairness_lines, pct, table
from engine.batch.records import OutputColumns
from engine.batch.run import decided_chunks, flow_fields, resolver
from engine.batch.stateful import time_field
from engine.batch.table import InputTable
from engine.runtime.flow import CompiledFlow
from engine.runtime.service import Decider
from engine.training.fairness import AGE_BANDS, AIR_THRESHOLD, MIN_GROUP_ROWS, GroupTally, group_of
from engine.types import Action

__all__ = [
    "Backtest", "OutcomeError", "ProtectedColumnError", "VersionResult", "backtest", "compared_of", "read_outcomes",
    "target",
]


class OutcomeError(ValueError):
    """An outcome in the history or the outcomes file is neither good nor bad; the message says where."""


class ProtectedColumnError(ValueError):
    """A protected column asked for is an input field of a backtested version: it would be fed to the flow."""


def compared_of(record: Mapping[str, Any], rules: Mapping[str, Any]) -> Compared:
    """A decided output record (engine.batch.records) as ``ReplayReport.compare`` takes it.

    ``rules`` maps the deciding version's rule ids to its CompiledRule (for each fired rule's
    ruleset, action, reason code and priority). Reason messages are not compared (not in records).
    """
    reasons = tuple(
        (r["code"], "", r["source"], r["rule_id"], r["feature"], float(r["contribution"]))
        for r in json.loads(record["reasons"])
    )
    fired = tuple(
        (rule.id, rule.ruleset, rule.action.name, rule.reason_code, rule.priority)
        for rid in record["fired_rules"].split(";") if rid for rule in (rules[rid],)
    )
    scores = {k[len("score_"):]: float(v) for k, v in record.items() if k.startswith("score_") and v is not None}
    return Action[record["action"]], reasons, fired, scores


@dataclass
class VersionResult:
    """One version's decisions of the history: counts, errors and outcome metrics."""

    version: str
    revision: str
    decided: int = 0
    failed: int = 0
    actions: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    metrics: Metrics = field(default_factory=Metrics)
    groups: GroupTally = field(default_factory=GroupTally)  # decided rows per protected attribute and group
    reasons: Counter[str] = field(default_factory=Counter)  # reason code -> decisions giving it
    rules: Counter[str] = field(default_factory=Counter)  # rule id -> decisions it fired in
    bad_by_rule: Counter[str] = field(default_factory=Counter)  # rule id -> labelled bad decisions it fired in
    labelled_by_rule: Counter[str] = field(default_factory=Counter)  # rule id -> labelled decisions it fired in

    def count(self, compared: Compared, is_bad: bool | None) -> None:
        """Count one decided row's reasons and fired rules (and, labelled, the bad rate of each rule's hits)."""
        self.reasons.update(list(dict.fromkeys(r[0] for r in compared[1])))  # a code once per decision
        fired = [f[0] for f in compared[2]]
        self.rules.update(fired)
        if is_bad is not None:
            self.labelled_by_rule.update(fired)
            if is_bad:
                self.bad_by_rule.update(fired)

    def rule_table(self, rules: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Every rule that fired, most hits first: its action, hits, share of decided rows and, with
        outcomes, the bad rate among its labelled hits (how well it singles out bad business)."""
        out = []
        for rid, hits in sorted(self.rules.items(), key=lambda kv: (-kv[1], kv[0])):
            rule = rules.get(rid)
            labelled = self.labelled_by_rule[rid]
            out.append({"rule": rid, "action": rule.action.name if rule is not None else None, "hits": hits,
                        "share": hits / self.decided if self.decided else None, "labelled": labelled,
                        "bad_rate": self.bad_by_rule[rid] / labelled if labelled else None})
        return out

    def as_dict(self) -> dict[str, Any]:
        rates = {a.name: (self.actions[a.name] / self.decided if self.decided else None) for a in ACTIONS}
        return {
            "version": self.version, "revision": self.revision, "decided": self.decided, "failed": self.failed,
            "actions": {a.name: self.actions[a.name] for a in ACTIONS}, "rates": rates,
            "errors": dict(self.errors.most_common()), "outcomes": self.metrics.as_dict(),
            "reasons": dict(sorted(self.reasons.items(), key=lambda kv: (-kv[1], kv[0]))),
        }


@dataclass
class Backtest:
    """What a backtest found; ``as_dict`` is its JSON, ``render`` its text tables."""

    flow: str
    source: str
    versions: dict[str, VersionResult]
    comparisons: dict[str, ReplayReport]  # later version -> its comparison with the first (baseline)
    outcomes_given: bool = False
    rows: int = 0
    labelled: int = 0
    keyed: bool = False  # rows are named by an id column (else by their 1-based number)
    protected: tuple[str, ...] = ()  # protected attributes reported per group (the age column last)
    age: str | None = None  # the protected column grouped into age bands
    rules: dict[str, dict[str, Any]] = field(default_factory=dict)  # version -> rule id -> CompiledRule

    @property
    def baseline(self) -> str:
        return next(iter(self.versions))

    def add(self, key: str, records: Mapping[str, Mapping[str, Any]], rules: Mapping[str, Mapping[str, Any]],
            is_bad: bool | None, attributes: Mapping[str, str] | None = None) -> None:
        """Count one history row decided by every version (``records``: version -> output record;
        ``attributes``: protected attribute -> the row's group)."""
        self.rows += 1
        self.labelled += is_bad is not None
        compared: dict[str, Compared] = {}
        for version, rec in records.items():
            result = self.versions[version]
            if rec["error_code"] is not None:
                result.failed += 1
                result.errors[rec["error_code"]] += 1
                continue
            result.decided += 1
            result.actions[rec["action"]] += 1
            compared[version] = compared_of(rec, rules[version])
            result.count(compared[version], is_bad)
            if is_bad is not None:
                result.metrics.add(Action[rec["action"]], is_bad)
            if attributes:
                result.groups.add(attributes, rec["action"] == Action.APPROVE.name, is_bad)
        base = compared.get(self.baseline)
        for version, report in self.comparisons.items():
            after = compared.get(version)
            if base is not None and after is not None:
                report.compare(base, after, key)
                if is_bad is not None:
                    report.metrics_before.add(base[0], is_bad)
                    report.metrics_after.add(after[0], is_bad)

    def as_dict(self) -> dict[str, Any]:
        """The backtest as JSON-ready data."""
        return {
            "flow": self.flow, "input": self.source, "rows": self.rows, "baseline": self.baseline,
            "labelled": self.labelled if self.outcomes_given else None,
            "versions": {v: {**r.as_dict(), "rules": r.rule_table(self.rules.get(v, {}))} for v, r in self.versions.items()},
            "comparisons": {v: _comparison_dict(r) for v, r in self.comparisons.items()},
            **({"fairness": self.fairness()} if self.protected else {}),
        }

    def fairness(self) -> dict[str, Any]:
        """Version -> attribute -> per-group approval rate, AIR and bad rate of approved (engine.training.fairness)."""
        order = {self.age: [b[0] for b in AGE_BANDS]} if self.age else {}
        return {
            "definition": f"approval = APPROVE; AIR = a group's approval rate / the most favoured group's; flagged below "
                          f"{AIR_THRESHOLD} (four-fifths rule, 29 CFR 1607.4(D)) for groups of at least {MIN_GROUP_ROWS} rows",
            "attributes": list(self.protected),
            "versions": {v: r.groups.table(order) for v, r in self.versions.items()},
        }

    def _rule_lines(self, top: int = 12) -> list[str]:
        """Per version: the rules that fired most (hits, share, bad rate of their labelled hits) and the reasons given most."""
        out: list[str] = []
        for v, r in self.versions.items():
            rows = [[t["rule"], t["action"] or "", f"{t['hits']:,}", pct(t["share"]),
                     *([pct(t["bad_rate"])] if self.outcomes_given else [])] for t in r.rule_table(self.rules.get(v, {}))[:top]]
            if rows:
                head = ["rule", "action", "hits", "share of decided", *(["bad rate of hits"] if self.outcomes_given else [])]
                out += ["", f"rules fired, version {v} (top {min(top, len(rows))} of {len(r.rules)})", *table(head, rows)]
            reasons = [[code, f"{n:,}", pct(n / r.decided if r.decided else None)] for code, n in
                       sorted(r.reasons.items(), key=lambda kv: (-kv[1], kv[0]))[:top]]
            if reasons:
                out += ["", f"reasons given, version {v}", *table(["reason", "decisions", "share of decided"], reasons)]
        return out

    def _fairness_lines(self) -> list[str]:
        out = []
        for version, by in self.fairness()["versions"].items():
            out += fairness_lines(f"version {version}", by, self.outcomes_given)
        return out

    def render(self) -> str:
        """Aligned text tables: every version side by side, then each comparison with the baseline."""
        out = [f"Backtest of {self.flow} on {self.source}: {self.rows:,} rows, versions {', '.join(self.versions)}"]
        rows = [[f"version {v}", f"{r.decided:,}", f"{r.failed:,}",
                 *(pct(r.actions[a.name] / r.decided if r.decided else None) for a in ACTIONS)]
                for v, r in self.versions.items()]
        out += ["", *table(["", "decided", "failed", *(f"{a.name} rate" for a in ACTIONS)], rows)]
        if self.outcomes_given:
            out += ["", f"known outcomes: {self.labelled:,} rows labelled"]
            metrics = [(v, r.metrics.as_dict(), r.metrics) for v, r in self.versions.items()]
            out += table(
                ["", "approval rate", "bad rate of approved", "bad approved", "decline precision", "decline recall",
                 "review+decline precision", "review+decline recall"],
                [[f"version {v}", pct(m["approval_rate"]), pct(m["bad_rate_of_approved"]), f"{raw.approved_bad:,}",
                  pct(m["decline_precision"]), pct(m["decline_recall"]), pct(m["flag_precision"]),
                  pct(m["flag_recall"])] for v, m, raw in metrics],
            )
        out += self._rule_lines()
        if self.protected:
            out += self._fairness_lines()
        for version, report in self.comparisons.items():
            out += ["", f"== version {version} against version {self.baseline} (before = {self.baseline}, after = {version}), "
                        f"{report.replayed:,} rows decided by both"]
            out += comparison_lines(report, before=f"version {self.baseline}", after=f"version {version}",
                                    examples="row ids" if self.keyed else "row numbers")
        return "\n".join(out) + "\n"


def _comparison_dict(report: ReplayReport) -> dict[str, Any]:
    data = report.as_dict()
    keep = ("changed", "changed_rate", "differs", "actions", "transitions", "drivers", "rule_hits", "scores", "examples")
    out = {k: data[k] for k in keep}
    out["rows"] = report.replayed
    if report.outcomes_given:
        out["outcomes"] = {"before": report.metrics_before.as_dict(), "after": report.metrics_after.as_dict()}
    return out


def _is_bad(value: Any, where: str) -> bool | None:
    if value is None or value == "":
        return None
    label = outcome_label(str(value).strip())
    if label is None:
        raise OutcomeError(f"{where}: outcome {str(value)!r} is neither good nor bad")
    return label


def backtest(
    decider: Decider,
    flow: str,
    versions: Sequence[str],
    source: Path,
    *,
    id_column: str | None = None,
    outcome_column: str | None = None,
    outcomes: Mapping[str, bool] | None = None,
    chunk_rows: int = 10_000,
    engine: str = "local",
    root: Path | None = None,
    progress: Callable[[int], None] | None = None,
    protected: Sequence[str] = (),
    age: str | None = None,
) -> Backtest:
    """Decide ``source`` with every version of ``versions`` (the first is the baseline) and compare.

    Outcomes come from ``outcome_column`` of the history or from ``outcomes`` (id -> is_bad,
    ``engine.audit.replay.load_outcomes``) joined on ``id_column``. Raises ValueError for no versions, a repeated one
    or outcomes without an id column, VersionNotFound / FlowNotFound
    for the flow, TableError / TableFormatError for the input (a missing protected column too),
    OutcomeError for a bad label. ``protected`` columns (and ``age``, in age bands; a missing or
    non-numeric age is ``(missing)``) are reported per group and never sent to the flow: raises
    ProtectedColumnError when a version declares one as an input field (names match ignoring case,
    as columns feed fields). An entry ``OTHER@V`` of ``versions`` is version V of another flow
    (``target``): a new flow compared with the one it would replace.
    """
    if not versions or len(set(versions)) != len(versions):
        raise ValueError(f"a backtest needs one or more distinct versions, got {', '.join(versions) or 'none'}")
    if outcomes is not None and id_column is None:
        raise ValueError("an outcomes file is joined on an id column: name it (--id-column)")
    compiled: dict[str, CompiledFlow] = {}
    fields: dict[str, Any] = {}
    for v in versions:
        f, (c,) = flow_fields(decider, *target(flow, v))
        compiled[v] = c
        fields.update({k: spec for k, spec in f.items() if k not in fields})
    attributes = tuple(dict.fromkeys([*protected, *([age] if age else [])]))
    _check_protected(flow, versions, attributes, fields, (id_column, outcome_column))
    result = Backtest(
        flow, str(source), {v: VersionResult(v, c.revision) for v, c in compiled.items()},
        {v: ReplayReport(flow, v, compiled[v].revision, str(source), outcomes_given=bool(outcomes is not None or outcome_column))
         for v in versions[1:]},
        outcomes_given=outcomes is not None or outcome_column is not None,
        keyed=id_column is not None, protected=attributes, age=age,
        rules={v: {r.id: r for r in c.rules} for v, c in compiled.items()},
    )
    rules = result.rules
    rows = _spark_rows if engine == "spark" else _local_rows
    for key, records, label, groups in rows(decider, flow, versions, Path(source), fields, id_column, outcome_column,
                                            chunk_rows, root, attributes):
        is_bad = _is_bad(label, f"{source}, row {key}") if outcome_column else (
            outcomes.get(key) if outcomes is not None else None)
        result.add(key, records, rules, is_bad, {a: group_of(g, a == age) for a, g in zip(attributes, groups, strict=True)})
        if progress is not None:
            progress(result.rows)
    return result


def target(flow: str, label: str) -> tuple[str, str]:
    """(flow, version) of one entry of ``--versions``: ``V`` is version V of ``flow``; ``OTHER@V`` is
    version V of flow OTHER (a new flow against the one it would replace, on the same history)."""
    other, at, version = label.rpartition("@")
    return (other, version) if at and other else (flow, label)


def _check_protected(flow: str, versions: Sequence[str], attributes: Sequence[str], fields: Mapping[str, Any],
                     other: Sequence[str | None]) -> None:
    declared = {k.casefold(): k for k in fields}
    fed = [f"{a!r} (input field {declared[a.casefold()]!r})" for a in attributes if a.casefold() in declared]
    if fed:
        raise ProtectedColumnError(
            f"{flow} version(s) {', '.join(versions)} declare protected column(s) {', '.join(fed)} as input: "
            "a protected attribute is reported beside the decisions, never fed to the flow; give the attribute "
            "under a column name the flow does not read, or backtest versions that do not take it")
    clash = [a for a in attributes if a in other]
    if clash:
        raise ValueError(f"protected column(s) {', '.join(map(repr, clash))} are also the id or outcome column")


_Rows = Iterator[tuple[str, dict[str, dict[str, Any]], Any, tuple[Any, ...]]]


def _local_rows(decider: Decider, flow: str, versions: Sequence[str], source: Path, fields: Mapping[str, Any],
                id_column: str | None, outcome_column: str | None, chunk_rows: int, root: Path | None,
                attributes: Sequence[str] = ()) -> _Rows:
    """(row key, version -> record, outcome label, protected values) for every row, a chunk at a time."""
    carry = tuple(dict.fromkeys([*([outcome_column] if outcome_column else []), *attributes]))
    streams = []
    for v in versions:  # each version reads the history itself, in step; a stateful one holds it whole, in event-time order
        own, (compiled,) = flow_fields(decider, *target(flow, v))
        table = InputTable(source, own, id_column, chunk_rows, carry=carry)  # its own fields: no column it would refuse
        columns = OutputColumns.of([compiled], id_column)
        streams.append(decided_chunks(resolver(decider, *target(flow, v)), columns, table, time_field(flow, [compiled])))
    for parts in zip(*streams, strict=True):
        chunk = parts[0][0]
        decided = {v: [dict(zip(out, row, strict=True)) for row in zip(*out.values(), strict=True)]
                   for v, (_, out) in zip(versions, parts, strict=True)}
        labels = chunk.carried.get(outcome_column, []) if outcome_column else []
        for k in range(chunk.n):
            key = str(chunk.ids[k]) if chunk.ids else str(chunk.start + k)
            yield (key, {v: decided[v][k] for v in versions}, labels[k] if labels else None,
                   tuple(chunk.carried[a][k] for a in attributes))


def _spark_rows(decider: Decider, flow: str, versions: Sequence[str], source: Path, fields: Mapping[str, Any],
                id_column: str | None, outcome_column: str | None, chunk_rows: int, root: Path | None,
                attributes: Sequence[str] = ()) -> _Rows:
    """As ``_local_rows``, each version's decisions from Spark (engine.batch.spark), in input order."""
    from engine.batch import spark as verdict_spark

    if root is None:
        raise ValueError("a backtest on Spark needs the policy root")
    spark = verdict_spark.session()
    df = verdict_spark.read_table(spark, source, fields, id_column)
    carry = tuple(dict.fromkeys([*([outcome_column] if outcome_column else []), *attributes]))
    streams = [verdict_spark.decide(df, *target(flow, v), root=root, id_column=id_column, carry=carry,
                                    csv_plans=verdict_spark.csv_plans(source, fields, id_column)).toLocalIterator()
               for v in versions]
    for n, rows in enumerate(zip(*streams, strict=True), start=1):
        records = {v: r.asDict() for v, r in zip(versions, rows, strict=True)}
        first = records[versions[0]]
        key = str(first["id"]) if id_column else str(n)
        yield (key, records, first.get(outcome_column) if outcome_column else None,
               tuple(first.get(a) for a in attributes))


def read_outcomes(path: Path) -> dict[str, bool]:
    """``engine.audit.replay.load_outcomes`` (id -> is_bad from a CSV), for the command line."""
    from engine.audit.replay import load_outcomes

    return load_outcomes(path)


