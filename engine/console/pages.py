"""The console's pages: each a handler ``(request, console, session, form) -> Response`` and a row of ``ROUTES``.

Read pages take their data from the engine's own readers (the decision log's ``open_source``, the
loader, ``engine.policy.policytest``, model cards, ``engine.monitor``); nothing here decides or scores.
Forms are validated field by field and every bad field is named in one message (HTTP 400).
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response

from engine.console.search import Query, SearchResult, search
from engine.console.svg import bars, lines

if TYPE_CHECKING:
    from engine.console.app import Console, Handler
    from engine.console.security import Session

__all__ = ["ROUTES"]

MAX_OUTCOMES_BYTES = 20 * 1024 * 1024


def problem(ctx: Console, request: Request, session: Session, errors: list[str], status: int = 400) -> Response:
    """The error page naming every problem (400 by default: a bad form or query)."""
    return ctx.render(request, "error.html", session, status, message="; ".join(errors))


# -- the root, loaded once per change of its files ------------------------------------------------
def loaded(ctx: Console) -> Any:
    """The root's LoadResult and policy-test report, recomputed when a watched file changes."""
    from engine.policy.loader import load
    from engine.policy.policytest import run
    from engine.policy.testcases import discover
    from engine.runtime.reload import fingerprint

    mark = fingerprint(ctx.root)
    cached = ctx.cache.get("root")
    if cached is None or cached[0] != mark:
        result = load(ctx.root)
        report = run(result.compiled, discover(ctx.root)[0])
        cached = (mark, result, report)
        ctx.cache["root"] = cached
    return cached[1], cached[2]


# -- decisions --------------------------------------------------------------------------------------
async def _search(ctx: Console, query: Query, gaps: list[Any], limit: int = 100) -> SearchResult | str:
    """``search`` over the decision log, off the event loop; the reason as text when the log cannot be read."""
    from engine.audit.errors import AuditError
    from engine.audit.source import open_source

    def run() -> SearchResult | str:
        if ctx.log_dir is None:
            return SearchResult()
        try:
            source = open_source(ctx.log_dir)
        except AuditError as exc:
            return f"the decision log cannot be read: {exc}"
        try:
            return search(source.decisions(gaps=gaps), query, limit=limit)
        except AuditError as exc:
            return f"the decision log cannot be read: {exc}"
        finally:
            source.close()

    return await run_in_threadpool(run)


async def decisions(request: Request, ctx: Console, session: Session, form: FormData | None) -> Response:
    """Decision search (query parameters: engine.console.search.Query); the results alone for an htmx request."""
    query = Query.of(request.query_params)
    gaps: list[Any] = []
    result = await _search(ctx, query, gaps) if not query.empty else None
    if isinstance(result, str):
        return problem(ctx, request, session, [result], 503)
    template = "decisions_results.html" if request.headers.get("HX-Request") else "decisions.html"
    return ctx.render(request, template, session, query=query, result=result, gaps=[str(g) for g in gaps], log=ctx.log_dir)


async def decision(request: Request, ctx: Console, session: Session, form: FormData | None) -> Response:
    """One decision: reasons, the rules that fired with their conditions, model contributions (SVG bars), masked input; 404 when not in the log."""
    did = request.path_params["decision_id"]
    gaps: list[Any] = []
    result = await _search(ctx, Query(decision_id=did), gaps, limit=1)
    if isinstance(result, str):
        return problem(ctx, request, session, [result], 503)
    found = result.records
    if not found:
        return problem(ctx, request, session, [f"no decision {did} in the decision log"], 404)
    record = found[0]
    result, _ = loaded(ctx)
    compiled = result.compiled.get((record["flow"], record["version"]))
    rules = {r.id: r for r in compiled.rules} if compiled is not None else {}
    fired = [{**f, "condition": rules[f["id"]].condition if f["id"] in rules else "(rule no longer loaded)",
              "source": rules[f["id"]].source if f["id"] in rules else "",
              "message": rules[f["id"]].message if f["id"] in rules else ""} for f in record.get("fired", ())]
    contributions = [(r["feature"], float(r["contribution"])) for r in record.get("reasons", ()) if r.get("feature")]
    related = _related(ctx, record)
    return ctx.render(request, "decision.html", session, r=record, fired=fired, chart=bars(contributions, title="model contributions"),
                      related=related, same_revision=compiled is not None and compiled.revision == record.get("revision"))


def _related(ctx: Console, record: Mapping[str, Any]) -> list[Any]:
    """The decision's case (its id is the decision id), when there is a case store and one."""
    if ctx.cases is None:
        return []
    from engine.cases import CaseNotFound

    try:
        return [ctx.cases.get(record["decision_id"])]
    except CaseNotFound:
        return []


# -- flows, versions, rules, diffs, tests ----------------------------------------------------------
async def flows(request: Request, ctx: Console, session: Session, form: FormData | None) -> Response:
    """Every flow: versions, live and challenger, the problems holding it back, and the policy-test totals."""
    result, report = loaded(ctx)
    rows = []
    for name, versions in sorted(result.flow_sources.items()):
        serving = result.flows.get(name)
        rows.append({"name": name, "versions": sorted(versions, key=version_order), "live": serving.live if serving else "",
                     "challenger": serving.challenger if serving else None,
                     "problems": [str(p) for p in result.problems if p.flow == name and p.severity == "error"]})
    return ctx.render(request, "flows.html", session, flows=rows, tests=report)


def version_order(v: str) -> Any:
    """The sort key of a version name (engine.runtime.routing.version_key: 2 before 10)."""
    from engine.runtime.routing import version_key

    return version_key(v)


def _version_view(ctx: Console, flow: str, version: str) -> dict[str, Any] | None:
    result, report = loaded(ctx)
    src = result.flow_sources.get(flow, {}).get(version)
    if src is None:
        return None
    content = result.contents.get((flow, version))
    compiled = result.compiled.get((flow, version))
    files = dict(content.files) if content is not None else {src.path: src.digest}
    tests = [c for c in report.results if c.flow == flow and c.version == version]
    from engine.policy.release import lock_path

    return {"flow": flow, "version": version, "revision": content.revision if content else "", "files": files,
            "released": lock_path(ctx.root, flow, version).is_file(), "rules": compiled.rules if compiled else (),
            "tests": tests, "passed": sum(c.passed for c in tests), "failed": sum(not c.passed for c in tests),
            "problems": [str(p) for p in result.problems if p.flow == flow and p.path.startswith(f"policies/{flow}/{version}/")]}


async def flow(request: Request, ctx: Console, session: Session, form: FormData | None) -> Response:
    """One flow: its routing file and each version's revision, release state and test results; 404 for an unknown flow."""
    name = request.path_params["flow"]
    result, _ = loaded(ctx)
    if name not in result.flow_sources:
        return problem(ctx, request, session, [f"no flow {name!r}"], 404)
    versions = [_version_view(ctx, name, v) for v in sorted(result.flow_sources[name], key=version_order)]
    routing = ctx.root / "policies" / name / "routing.yaml"
    return ctx.render(request, "flow.html", session, name=name, versions=versions, serving=result.flows.get(name),
                      routing=routing.read_text(encoding="utf-8") if routing.is_file() else "(no routing.yaml: the newest version is live)")


async def flow_version(request: Request, ctx: Console, session: Session, form: FormData | None) -> Response:
    """One version: its rules (action, reason, condition, file:line), its test cases and its files' sha256."""
    view = _version_view(ctx, request.path_params["flow"], request.path_params["version"])
    if view is None:
        return problem(ctx, request, session, ["no such flow version"], 404)
    return ctx.render(request, "flow_version.html", session, v=view)


def _side_by_side(a: list[str], b: list[str]) -> list[tuple[str, str, str]]:
    """Rows (kind, left, right) of a side-by-side diff; kind is same, change, delete or insert."""
    out: list[tuple[str, str, str]] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op == "equal":
            out += [("same", a[i], b[j]) for i, j in zip(range(i1, i2), range(j1, j2))]
            continue
        left, right = a[i1:i2], b[j1:j2]
        for k in range(max(len(left), len(right))):
            kind = "change" if k < len(left) and k < len(right) else "delete" if k < len(left) else "insert"
            out.append((kind, left[k] if k < len(left) else "", right[k] if k < len(right) else ""))
    return out


async def flow_diff(request: Request, ctx: Console, session: Session, form: FormData | None) -> Response:
    """Versions ``a`` and ``b`` side by side, file by file, with both versions' test results; 400 naming each unknown version."""
    name = request.path_params["flow"]
    a, b = request.query_params.get("a", ""), request.query_params.get("b", "")
    va, vb = _version_view(ctx, name, a), _version_view(ctx, name, b)
    errors = [f"{name} has no version {v!r}" for v, view in ((a, va), (b, vb)) if view is None]
    if errors or va is None or vb is None:
        return problem(ctx, request, session, errors)
    left_files, right_files = _by_role(va["files"], name, a), _by_role(vb["files"], name, b)
    diffs = []
    for key in sorted(set(left_files) | set(right_files), key=lambda k: (not k.startswith("policies/"), k)):
        pa, pb = left_files.get(key), right_files.get(key)
        same = pa is not None and pb is not None and va["files"][pa] == vb["files"][pb]
        entry: dict[str, Any] = {"path": key, "same": same, "rows": [], "in": "both" if pa and pb else ("a" if pa else "b")}
        if not same and not key.endswith(_BINARY):
            entry["rows"] = _side_by_side(_text(ctx.root / pa) if pa else [], _text(ctx.root / pb) if pb else [])
        diffs.append(entry)
    return ctx.render(request, "flow_diff.html", session, name=name, a=va, b=vb, diffs=diffs)


_BINARY = (".onnx", ".json", ".txt", ".parquet", ".csv", ".png")


def _by_role(files: Mapping[str, str], flow: str, version: str) -> dict[str, str]:
    """Path with the version's own directory written ``<version>`` -> path: a version's flow.yaml pairs with the other's."""
    own = f"policies/{flow}/{version}/"
    return {(f"policies/{flow}/<version>/{p[len(own):]}" if p.startswith(own) else p): p for p in files}


def _text(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()[:5000]
    except (OSError, UnicodeDecodeError):
        return ["(unreadable)"]


# -- models ------------------------------------------------------------------------------------------
def _cards(ctx: Console) -> list[dict[str, Any]]:
    out = []
    for card in sorted((ctx.root / "model_artifacts").glob("*/*/card.json")):
        try:
            data = json.loads(card.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        out.append({"name": card.parent.parent.name, "version": card.parent.name, "card": data})
    return out


async def models(request: Request, ctx: Console, session: Session, form: FormData | None) -> Response:
    """The model cards under model_artifacts/."""
    return ctx.render(request, "models.html", session, cards=_cards(ctx))


async def model(request: Request, ctx: Console, session: Session, form: FormData | None) -> Response:
    """One model card: metrics, calibration (SVG), its PNG plots and PSI monitoring over the logged decisions."""
    name, version = request.path_params["name"], request.path_params["version"]
    card = next((c for c in _cards(ctx) if (c["name"], c["version"]) == (name, version)), None)
    if card is None:
        return problem(ctx, request, session, [f"no model card {name}/{version}"], 404)
    directory = ctx.root / "model_artifacts" / name / version
    plots = [p.name for p in sorted(directory.glob("*.png"))]
    return ctx.render(request, "model.html", session, c=card, plots=plots, metrics=card["card"].get("metrics", {}),
                      monitoring=await run_in_threadpool(_monitoring, ctx, name, version), calibration=_calibration_svg(card["card"]))


def _calibration_svg(card: Mapping[str, Any]) -> str:
    """The out-of-fold calibration (mean predicted vs observed rate per score band) as an SVG line, when the card has it."""
    metrics = card.get("metrics")
    bands = metrics.get("calibration_oof") if isinstance(metrics, dict) else None
    if not isinstance(bands, list) or not bands:
        return ""
    try:
        points = [(float(b["mean_predicted"]), float(b["observed_rate"])) for b in bands]
    except (KeyError, TypeError, ValueError):
        return ""
    return lines([("out-of-fold", points)], xlabel="mean predicted probability", ylabel="observed rate", diagonal=True)


def _monitoring(ctx: Console, name: str, version: str, n: int = 5000) -> dict[str, Any] | None:
    """PSI of the model's inputs and score over the newest `n` logged decisions (engine.monitor)."""
    if ctx.log_dir is None:
        return None
    from engine.audit.source import open_source
    from engine.monitor.psi import grade
    from engine.monitor.report import stability_from_records

    result, _ = loaded(ctx)
    if result.policies is None:
        return {"error": "the policies do not load: see Flows"}
    try:
        records = open_source(ctx.log_dir).last_decisions(n, gaps=[])
        s = stability_from_records(records, result.policies)
    except Exception as exc:  # noqa: BLE001 - monitoring is a view: its failure is shown, the page still renders
        return {"error": f"{type(exc).__name__}: {exc}"}
    m = s.models.get((name, version))
    if m is None:
        return {"decisions": s.decisions, "rows": 0}
    feats = sorted(((f, v["psi"], grade(v["psi"])) for f, v in m["features"].items()), key=lambda t: -(t[1] if t[1] == t[1] else -1))
    return {"decisions": s.decisions, "rows": m["n"], "score_psi": m["score_psi"], "score_grade": grade(m["score_psi"]), "features": feats,
            "actions": {p: dict(c) for p, c in sorted(s.actions.items())}}


async def model_plot(request: Request, ctx: Console, session: Session, form: FormData | None) -> Response:
    """A PNG plot of a model's directory (nothing else: 404 for any other file or path)."""
    name, version, plot = request.path_params["name"], request.path_params["version"], request.path_params["plot"]
    directory = (ctx.root / "model_artifacts" / name / version).resolve()
    path = (directory / plot).resolve()
    if path.parent != directory or path.suffix != ".png" or not path.is_file() or directory.parent.parent != (ctx.root / "model_artifacts").resolve():
        return Response("not found", status_code=404)
    return FileResponse(path, media_type="image/png")


async def home(request: Request, ctx: Console, session: Session, form: FormData | None) -> Response:
    """Analysts start at the queue (when there is one), everyone else at the decision search."""
    return RedirectResponse("/cases" if session.role == "analyst" and ctx.cases is not None else "/decisions", status_code=303)


ROUTES: list[tuple[str, str, Handler, list[str]]] = [
    ("/", "home", home, ["GET"]),
    ("/decisions", "decisions", decisions, ["GET"]),
    ("/decisions/{decision_id}", "decision", decision, ["GET"]),
    ("/flows", "flows", flows, ["GET"]),
    ("/flows/{flow}", "flow", flow, ["GET"]),
    ("/flows/{flow}/diff", "flow_diff", flow_diff, ["GET"]),
    ("/flows/{flow}/{version}", "flow_version", flow_version, ["GET"]),
    ("/models", "models", models, ["GET"]),
    ("/models/{name}/{version}", "model", model, ["GET"]),
    ("/models/{name}/{version}/{plot}", "model_plot", model_plot, ["GET"]),
]
