"""The backtest pages: a history file decided by several versions (``verdict backtest``), or a period
of the decision log replayed with another version (``verdict replay``), run as console jobs
(``engine.console.jobs``: one worker thread, a bounded queue) and shown as tables and plots.
Every bad form field is named in one 400 answer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from engine.console.jobs import Busy, JobSpec
from engine.console.pages import loaded, problem, version_order
from engine.console.svg import bars

if TYPE_CHECKING:
    from engine.console.app import Console, Handler
    from engine.console.security import Session

__all__ = ["ROUTES"]

MAX_OUTCOMES_BYTES = 20 * 1024 * 1024


def _histories(ctx: Console) -> list[str]:
    base = ctx.data_dir or ctx.root / "data"
    return sorted(p.name for p in base.glob("*") if p.suffix in (".csv", ".parquet")) if base.is_dir() else []


async def backtests(request: Request, ctx: Console, session: Session, form: FormData | None) -> Response:
    """The backtest and replay forms (for the roles that may run them) and the kept runs, newest first."""
    result, _ = loaded(ctx)
    choices = {name: sorted(v, key=version_order) for name, v in sorted(result.flow_sources.items())}
    return ctx.render(request, "backtests.html", session, jobs=ctx.jobs.all(), flows=choices, histories=_histories(ctx))


_PERIOD = re.compile(r"^\d{4}-\d{2}-\d{2}(T\d{2}(:\d{2}(:\d{2})?)?)?$")


def _versions(form: FormData, flows: Mapping[str, Any], errors: list[str], most: int) -> tuple[str, tuple[str, ...]]:
    """The form's flow and versions (one to `most`, distinct, existing), each problem appended to `errors`.

    A backtest takes a baseline and, to compare, a different candidate (one version alone is a
    backtest too: a new flow before it serves); a replay takes the one version to replay with."""
    flow_name = str(form.get("flow", ""))
    versions = tuple(str(v).strip() for v in form.getlist("versions") if str(v).strip())[:most]
    if flow_name not in flows:
        errors.append(f"flow: {flow_name!r} is not a flow")
    elif not versions or len(set(versions)) != len(versions):
        errors.append("versions: pick a baseline (and, to compare, a different candidate)" if most == 2 else "versions: pick the version to replay with")
    elif unknown := [v for v in versions if v not in flows[flow_name]]:
        errors.append(f"versions: {flow_name} has no version {', '.join(unknown)}")
    return flow_name, versions


async def _outcomes_upload(form: FormData, errors: list[str]) -> dict[str, bool] | None:
    upload = form.get("outcomes")
    if not (isinstance(upload, UploadFile) and upload.filename):
        return None
    outcomes, problem = _read_outcomes(await upload.read(MAX_OUTCOMES_BYTES + 1))
    if problem:
        errors.append(f"outcomes: {problem}")
    return outcomes


async def backtest_start(request: Request, ctx: Console, session: Session, form: FormData | None) -> Response:
    """Queue a backtest of a history file (kind=backtest) or a replay of the decision log over a period (kind=replay)."""
    assert form is not None
    errors: list[str] = []
    result, _ = loaded(ctx)
    kind = str(form.get("kind", "backtest"))
    flow_name, versions = _versions(form, result.flow_sources, errors, 1 if kind == "replay" else 2)
    outcomes = await _outcomes_upload(form, errors)
    if kind == "replay":
        since, until = (str(form.get(k, "")).strip() for k in ("since", "until"))
        errors += [f"{k}: {v!r} is not a UTC date or time like 2026-11-29 or 2026-11-29T10:00" for k, v in (("since", since), ("until", until))
                   if v and not _PERIOD.match(v)]
        if ctx.log_dir is None:
            errors.append("kind: a replay reads the decision log, and the console was started without --log-dir")
        spec = JobSpec(flow_name, versions, Path(str(ctx.log_dir)), outcomes=outcomes, kind="replay", since=since, until=until)
    else:
        history = str(form.get("history", ""))
        if history not in _histories(ctx):
            errors.append(f"history: {history!r} is not one of {', '.join(_histories(ctx)) or 'none'}")
        column = str(form.get("outcome_column", "")).strip() or None
        id_column = str(form.get("id_column", "")).strip() or None
        if outcomes is not None and column:
            errors.append("outcome_column: give either an outcome column or an outcomes file, not both")
        if outcomes is not None and not id_column:
            errors.append("id_column: an outcomes file is joined on an id column of the history: name it")
        spec = JobSpec(flow_name, versions, (ctx.data_dir or ctx.root / "data") / history, column, outcomes, id_column)
    if kind not in ("backtest", "replay"):
        errors.append(f"kind: {kind!r} is not backtest or replay")
    if errors:
        return problem(ctx, request, session, errors)
    try:
        job = ctx.jobs.submit(spec, session.user)
    except Busy as exc:
        return problem(ctx, request, session, [str(exc)], 429)
    return RedirectResponse(f"/backtests/{job.id}", status_code=303)


def _read_outcomes(raw: bytes) -> tuple[dict[str, bool] | None, str]:
    """An uploaded outcomes CSV read by ``verdict backtest --outcomes``' own reader, or the problem."""
    import tempfile

    from engine.audit.replay import OutcomesError
    from engine.batch.backtest import read_outcomes

    if len(raw) > MAX_OUTCOMES_BYTES:
        return None, f"the file is larger than {MAX_OUTCOMES_BYTES // 1_048_576} MiB"
    with tempfile.NamedTemporaryFile(suffix=".csv") as fh:
        fh.write(raw)
        fh.flush()
        try:
            return read_outcomes(Path(fh.name)), ""
        except OutcomesError as exc:
            return None, str(exc).replace(fh.name, "the uploaded file")


async def backtest(request: Request, ctx: Console, session: Session, form: FormData | None) -> Response:
    """One run: its state (htmx polls it while it runs), then its report; ``?format=json`` gives the report's JSON."""
    job = ctx.jobs.get(request.path_params["job"])
    if job is None:
        return problem(ctx, request, session, ["no such backtest (finished jobs are kept until the console restarts)"], 404)
    if request.query_params.get("format") == "json" and job.report is not None:
        return Response(json.dumps(job.report, indent=2), media_type="application/json")
    template = "backtest_body.html" if request.headers.get("HX-Request") else "backtest.html"
    return ctx.render(request, template, session, job=job, charts=_backtest_charts(job.report))


def _backtest_charts(report: Mapping[str, Any] | None) -> dict[str, str]:
    """Action-rate bars per version of a backtest report; for a replay, the logged and the replayed rates."""
    if not report:
        return {}
    if "versions" not in report:  # a replay
        return {name: bars([(a, float(x[f"{key}_rate"] or 0.0)) for a, x in report["actions"].items()], label_width=90, width=420, fmt="{:.1%}")
                for name, key in (("logged", "before"), (f"replayed with {report['version']}", "after"))}
    out = {}
    for v, r in report["versions"].items():
        rates = [(a, float(x or 0.0)) for a, x in r["rates"].items()]
        out[v] = bars(rates, title=f"action rates, version {v}", label_width=90, width=420, fmt="{:.1%}")
    return out


ROUTES: list[tuple[str, str, Handler, list[str]]] = [
    ("/backtests", "backtests", backtests, ["GET"]),
    ("/backtests", "backtest_start", backtest_start, ["POST"]),
    ("/backtests/{job}", "backtest", backtest, ["GET"]),
]
