"""The web console over Starlette's TestClient: route x role table, sessions, CSRF, login limits, headers and pages."""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Iterator
from html import unescape
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from engine.cases import ReviewConfig, case_from_record, open_store
from engine.commands.console import build
from engine.console.access import ACCESS, allowed
from engine.console.app import route_table
from engine.console.security import HEADERS, Session, SessionCodec
from engine.console.users import ROLES, Users
from engine.policy.loader import load
from tests.unit.audit_helpers import PAN, write_log
from tests.unit.cases_helpers import review_record
from tests.unit.policy_roots import routed_copy

PASSWORD = "correct horse battery staple"
USERS = {"ana": "analyst", "olga": "policy_owner", "abe": "approver", "aud": "auditor"}
BY_ROLE = {role: name for name, role in USERS.items()}


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A routed copy of the project, a decision log of 40 records, a case store with two cases, four users."""
    base = tmp_path_factory.mktemp("console")
    root = routed_copy(base / "root")
    (root / "data").mkdir()
    history = (Path(__file__).resolve().parents[2] / "data" / "credit_data.csv").read_text().splitlines()
    (root / "data" / "credit_sample.csv").write_text("\n".join(history[:301]) + "\n")
    write_log(base / "log", 40)
    users = Users(base / "users.yaml")
    for name, role in USERS.items():
        users.add(name, role, PASSWORD)
    store = open_store(base / "cases.db")
    store.open_cases([c for c in (case_from_record(review_record(i), ReviewConfig({})) for i in ("c1", "c2")) if c is not None])
    logged = {**review_record("c3"), "masked": ["income"], "revision": load(root).compiled[("credit_application", "2")].revision,
              "input": {"amount": 800, "price": 846, "time": 60, "income": "***", "expenses": 73, "debt": 0}}
    store.open_cases([c for c in [case_from_record(logged, ReviewConfig({}))] if c is not None])
    store.close()
    args = argparse.Namespace(log_dir=base / "log", data_dir=None, idle_minutes=15.0, secure_cookies=False, reload_target=[],
                              cases=str(base / "cases.db"))
    app = build(args, root, users)
    yield {"app": app, "root": root, "base": base}
    app.state.console.jobs.close()


def _csrf(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, html[:500]
    return m.group(1)


def signed_in(app: Any, name: str) -> tuple[TestClient, str]:
    """A client signed in as `name`, and its CSRF token."""
    client = TestClient(app, follow_redirects=False)
    token = _csrf(client.get("/login").text)
    r = client.post("/login", data={"csrf_token": token, "username": name, "password": PASSWORD, "next": "/flows"})
    assert r.status_code == 303, r.text
    page = client.get("/flows")
    assert page.status_code == 200
    return client, _csrf(page.text)


@pytest.fixture(scope="module")
def clients(setup: dict[str, Any]) -> dict[str, tuple[TestClient, str]]:
    return {role: signed_in(setup["app"], name) for role, name in BY_ROLE.items()}


def _path(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: {"flow": "credit_application", "version": "3", "name": "credit_default",
                                            "plot": "none.png", "case_id": "c2"}.get(m.group(1), "x"), path)


def test_every_route_is_in_the_access_table() -> None:
    """Each page route names an entry of engine.console.access.ACCESS (none is left open by omission)."""
    names = {name for _, name, _, _ in route_table()}
    assert names <= set(ACCESS), names - set(ACCESS)
    assert all(not allowed(name, "auditor") for name in names if name.startswith(("backtest_start", "release_", "case_")) and name != "case")


@pytest.mark.parametrize("role", ROLES)
def test_route_by_role_table(setup: dict[str, Any], clients: dict[str, tuple[TestClient, str]], role: str) -> None:
    """For every route and every role: 403 exactly where the access table refuses, something else where it allows."""
    client, token = clients[role]
    for path, name, _, methods in route_table():
        data = {"csrf_token": token}  # and nothing else: an allowed role gets 400/404/409, never a change
        r = client.post(_path(path), data=data) if methods == ["POST"] else client.get(_path(path))
        if allowed(name, role):
            assert r.status_code != 403, (name, role, r.status_code, r.text[:300])
        else:
            assert r.status_code == 403 and "may not" in r.text, (name, role, r.status_code)


def test_pages_need_a_session(setup: dict[str, Any]) -> None:
    """Without a session a page redirects to the login page and a POST is refused with 401."""
    client = TestClient(setup["app"], follow_redirects=False)
    r = client.get("/decisions")
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    assert client.post("/releases/propose", data={}).status_code == 401


def test_post_without_or_with_a_foreign_csrf_token_is_refused(setup: dict[str, Any], clients: dict[str, tuple[TestClient, str]]) -> None:
    """A POST with no CSRF token, or another session's, is refused with 403 and changes nothing."""
    client, _ = clients["policy_owner"]
    _, other = clients["analyst"]
    before = len(setup["app"].state.console.releases.log.events())
    for data in ({}, {"csrf_token": other}):
        r = client.post("/releases/propose", data={**data, "flow": "credit_application", "version": "4", "target": "live"})
        assert r.status_code == 403 and "CSRF" in r.text
    assert len(setup["app"].state.console.releases.log.events()) == before


def test_login_is_rate_limited(setup: dict[str, Any]) -> None:
    """After 5 failed sign-ins for a name, the 6th attempt gets 429 with Retry-After, even with the right password."""
    client = TestClient(setup["app"], follow_redirects=False)
    token = _csrf(client.get("/login").text)
    setup["app"].state.console.limiter.succeeded("addr:testclient")
    for _ in range(5):
        assert client.post("/login", data={"csrf_token": token, "username": "aud", "password": "wrong password!"}).status_code == 401
    r = client.post("/login", data={"csrf_token": token, "username": "aud", "password": PASSWORD})
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
    setup["app"].state.console.limiter.succeeded("user:aud", "addr:testclient")


def test_login_needs_the_csrf_token_and_refuses_wrong_passwords(setup: dict[str, Any]) -> None:
    """A login POST without the form's token is 403; a wrong password is 401 and sets no signed-in session."""
    client = TestClient(setup["app"], follow_redirects=False)
    assert client.post("/login", data={"username": "ana", "password": PASSWORD}).status_code == 403
    token = _csrf(client.get("/login").text)
    assert client.post("/login", data={"csrf_token": token, "username": "ana", "password": "not the password"}).status_code == 401
    assert client.get("/decisions").status_code == 303
    setup["app"].state.console.limiter.succeeded("user:ana", "addr:testclient")


def test_security_headers_and_cookie_flags(setup: dict[str, Any]) -> None:
    """Every answer carries the CSP (no inline script) and the other headers; the session cookie is HttpOnly and SameSite=Strict."""
    client = TestClient(setup["app"], follow_redirects=False)
    r = client.get("/login")
    for key, value in HEADERS.items():
        assert r.headers[key] == value
    assert "script-src 'self'" in r.headers["content-security-policy"] and "unsafe-inline" not in r.headers["content-security-policy"]
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    assert "<script>" not in r.text and " on" + "click=" not in r.text


def test_sessions_expire_when_idle_and_refuse_forgery() -> None:
    """A cookie older than the idle timeout, or signed with another secret, is no session."""
    codec = SessionCodec("secret-a", idle=60)
    cookie = codec.dump(Session("ana", "analyst", "t"))
    assert codec.load(cookie) == Session("ana", "analyst", "t")
    assert SessionCodec("secret-a", idle=-1).load(cookie) is None
    assert SessionCodec("secret-b", idle=60).load(cookie) is None


def test_next_after_login_is_never_another_site(setup: dict[str, Any]) -> None:
    """next=//evil.example is replaced by / (no open redirect)."""
    client = TestClient(setup["app"], follow_redirects=False)
    token = _csrf(client.get("/login").text)
    r = client.post("/login", data={"csrf_token": token, "username": "aud", "password": PASSWORD, "next": "//evil.example/x"})
    assert r.headers["location"] == "/"


def test_decision_search_filters_and_masks(clients: dict[str, tuple[TestClient, str]]) -> None:
    """Search by request id, action and reason finds the matching records only; no page shows a raw card number."""
    client, _ = clients["auditor"]
    one = client.get("/decisions", params={"request_id": "req-7"})
    assert one.status_code == 200 and "d000007" in one.text and "d000008" not in one.text
    reviews = client.get("/decisions", params={"action": "review", "flow": "card_payment"}).text
    ids = set(re.findall(r'href="/decisions/(d\d+)"', reviews))
    assert ids == {f"d{i:06d}" for i in range(40) if i % 3 == 1}
    assert set(re.findall(r'href="/decisions/(d\d+)"', client.get("/decisions", params={"reason": "NEW_DEVICE"}).text)) == {
        f"d{i:06d}" for i in range(40) if i % 3 != 0}
    late = client.get("/decisions", params={"since": "2023-11-14T22:13:50"}).text
    assert set(re.findall(r'href="/decisions/(d\d+)"', late)) == {f"d{i:06d}" for i in range(30, 40)}
    page = client.get("/decisions/d000005").text
    assert "411111******1111" in page and PAN not in page
    assert "<svg" in page and "new_device" in page  # the model contribution chart
    assert client.get("/decisions/nope").status_code == 404


def test_flow_pages_diff_and_tests(clients: dict[str, tuple[TestClient, str]]) -> None:
    """The diff of versions 3 and 4 marks the changed version line side by side, and each version shows its policy tests."""
    client, _ = clients["analyst"]
    diff = client.get("/flows/credit_application/diff", params={"a": "3", "b": "4"}).text
    assert re.search(r'<tr class="change"><td><pre>version: &#34;3&#34;</pre></td><td><pre>version: &#34;4&#34;</pre>', diff), diff[:2000]
    assert "passed" in diff
    version = client.get("/flows/credit_application/3").text
    assert "Policy tests:" in version and "FAIL" not in version
    bad = client.get("/flows/credit_application/diff", params={"a": "3", "b": "9"})
    assert bad.status_code == 400 and "no version '9'" in unescape(bad.text)


def test_model_page_shows_card_plots_and_psi(setup: dict[str, Any], clients: dict[str, tuple[TestClient, str]]) -> None:
    """A model page shows the card's metrics and its calibration plot; the plot route serves only PNGs of that model."""
    import json

    client, _ = clients["auditor"]
    card = json.loads((setup["root"] / "model_artifacts" / "credit_default" / "2" / "card.json").read_text())
    page = client.get("/models/credit_default/2").text
    assert str(card["metrics"]["cv_auc"]) in page and 'id="calibration"' in page and "<polyline" in page
    assert client.get("/models/credit_default/2/model.onnx").status_code == 404
    assert client.get("/models/credit_default/2/..%2F..%2F..%2Fpyproject.toml").status_code == 404


def _finished_backtest(client: TestClient, token: str, versions: list[str]) -> tuple[str, str]:
    """Run a credit_application backtest of the sample history with its Status outcomes from the form; (job URL, finished page)."""
    r = client.post("/backtests", data={"csrf_token": token, "flow": "credit_application", "versions": versions,
                                        "history": "credit_sample.csv", "outcome_column": "Status"})
    assert r.status_code == 303, r.text
    job = r.headers["location"]
    deadline = time.monotonic() + 120
    while "done:" not in (page := client.get(job).text):
        assert "failed:" not in page and time.monotonic() < deadline, page[-2000:]
        time.sleep(0.3)
    return job, page


def test_backtest_v2_against_v1_with_outcomes_matches_the_cli(setup: dict[str, Any], clients: dict[str, tuple[TestClient, str]]) -> None:
    """A console backtest of credit_application 1 -> 2 with the Status outcomes shows the same rates as `verdict backtest --json`."""
    from engine.batch.backtest import backtest
    from engine.runtime.service import load_decider

    client, token = clients["policy_owner"]
    job, page = _finished_backtest(client, token, ["1", "2"])
    expected = backtest(load_decider(setup["root"]), "credit_application", ["1", "2"], setup["root"] / "data" / "credit_sample.csv",
                        outcome_column="Status").as_dict()
    assert client.get(job, params={"format": "json"}).json()["versions"] == expected["versions"]
    rate = expected["versions"]["2"]["outcomes"]["bad_rate_of_approved"]
    assert f"{rate * 100:.1f} %" in page and "Transitions" in page


def test_backtest_of_one_version_alone(setup: dict[str, Any], clients: dict[str, tuple[TestClient, str]]) -> None:
    """A console backtest with the candidate left empty decides the history with the baseline alone, as `verdict backtest --versions 3` does."""
    from engine.batch.backtest import backtest
    from engine.runtime.service import load_decider

    client, token = clients["policy_owner"]
    job, _page = _finished_backtest(client, token, ["3", ""])
    expected = backtest(load_decider(setup["root"]), "credit_application", ["3"], setup["root"] / "data" / "credit_sample.csv",
                        outcome_column="Status").as_dict()
    got = client.get(job, params={"format": "json"}).json()
    assert list(got["versions"]) == ["3"] and got["versions"] == expected["versions"]


def test_backtest_form_names_every_bad_field(clients: dict[str, tuple[TestClient, str]]) -> None:
    """A backtest with an unknown flow and history is refused with 400 naming both fields."""
    client, token = clients["analyst"]
    r = client.post("/backtests", data={"csrf_token": token, "flow": "nope", "versions": ["1"], "history": "../etc/passwd"})
    assert r.status_code == 400 and "flow: 'nope'" in unescape(r.text) and "history:" in r.text


def test_backtest_queue_is_bounded() -> None:
    """With one backtest running and two waiting, a fourth is refused (Busy) rather than queued without bound."""
    import threading

    from engine.console.jobs import BacktestJobs, Busy, JobSpec

    gate = threading.Event()
    jobs = BacktestJobs(lambda spec, progress: (gate.wait(10), ({}, ""))[1], max_pending=2)
    spec = JobSpec("f", ("1", "2"), Path("x.csv"))
    for _ in range(3):
        jobs.submit(spec, "olga")
    with pytest.raises(Busy):
        jobs.submit(spec, "olga")
    gate.set()
    jobs.close()


def test_release_proposed_by_owner_and_approved_by_approver(setup: dict[str, Any], clients: dict[str, tuple[TestClient, str]]) -> None:
    """The owner proposes 2 as a challenger, the approver approves, routing.yaml changes and the audit page shows the chain."""
    owner, otoken = clients["policy_owner"]
    r = owner.post("/releases/propose", data={"csrf_token": otoken, "flow": "credit_application", "version": "4",
                                              "target": "challenger", "share": "0.2", "key": "customer_id"})
    assert r.status_code == 303, r.text
    pid = r.headers["location"].rsplit("+", 1)[1]
    approver, atoken = clients["approver"]
    assert f'id="approve-{pid}"' in approver.get("/releases").text
    assert f'id="approve-{pid}"' not in owner.get("/releases").text  # the maker sees no approve button
    r = approver.post(f"/releases/{pid}/decide", data={"csrf_token": atoken, "verdict": "approved"})
    assert r.status_code == 303, r.text
    routing = (setup["root"] / "policies" / "credit_application" / "routing.yaml").read_text()
    assert "share: 0.2" in routing and pid in routing
    audit = approver.get("/audit").text
    assert "hash chain verified" in audit and f"approved {pid} by abe" in audit
    again = approver.post(f"/releases/{pid}/decide", data={"csrf_token": atoken, "verdict": "approved"})
    assert again.status_code == 409 and "already approved" in again.text


def test_bad_release_form_is_400_naming_the_field(clients: dict[str, tuple[TestClient, str]]) -> None:
    """A challenger share that is not a number is refused naming share."""
    owner, token = clients["policy_owner"]
    r = owner.post("/releases/propose", data={"csrf_token": token, "flow": "credit_application", "version": "4",
                                              "target": "challenger", "share": "ten"})
    assert r.status_code == 400 and "share: 'ten' is not a number" in unescape(r.text)


def test_queue_claim_and_decide(clients: dict[str, tuple[TestClient, str]]) -> None:
    """An analyst sees the open case, claims it and decides it with a note; a second decision is refused (409)."""
    client, token = clients["analyst"]
    queue = client.get("/cases").text
    assert "/cases/c1" in queue
    assert client.post("/cases/c1/claim", data={"csrf_token": token}).status_code == 303
    assert "assigned (ana)" in client.get("/cases/c1").text
    r = client.post("/cases/c1/decide", data={"csrf_token": token, "disposition": "decline", "note": "documents forged"})
    assert r.status_code == 303
    page = client.get("/cases/c1").text
    assert "decline by ana: documents forged" in page and "411111******1111" in page and PAN not in page
    assert client.post("/cases/c1/decide", data={"csrf_token": token, "disposition": "approve", "note": "x"}).status_code == 409
    bad = client.post("/cases/c2/decide", data={"csrf_token": token, "disposition": "maybe", "note": ""})
    assert bad.status_code == 400 and "disposition:" in bad.text and "note:" in bad.text


def test_a_note_on_a_case_from_the_console(clients: dict[str, tuple[TestClient, str]]) -> None:
    """An analyst and an approver add notes (card number masked) shown in the history; an empty note is 400 naming text; the auditor gets no form and 403."""
    client, token = clients["analyst"]
    assert 'id="note-form"' in client.get("/cases/c2").text
    assert client.post("/cases/c2/note", data={"csrf_token": token, "text": f"customer sent card {PAN}"}).status_code == 303
    approver, atoken = clients["approver"]
    assert approver.post("/cases/c2/note", data={"csrf_token": atoken, "text": "second look: fine"}).status_code == 303
    page = client.get("/cases/c2").text
    assert "customer sent card 411111******1111" in page and PAN not in page and "second look: fine" in page
    bad = client.post("/cases/c2/note", data={"csrf_token": token, "text": "   "})
    assert bad.status_code == 400 and "text:" in bad.text
    auditor, utoken = clients["auditor"]
    assert 'id="note-form"' not in auditor.get("/cases/c2").text
    assert auditor.post("/cases/c2/note", data={"csrf_token": utoken, "text": "x"}).status_code == 403


def test_the_case_page_shows_the_features_as_of_decision_time(clients: dict[str, tuple[TestClient, str]]) -> None:
    """The case page lists derived features recomputed by the deciding version, marks those reading a masked field unavailable, and says why when the version is gone."""
    client, _ = clients["auditor"]
    page = unescape(client.get("/cases/c3").text)
    assert "<th>installment</th><td>13.33" in page and "<th>loan_to_price</th><td>0.945" in page
    assert "<th>debt_to_income</th><td class=\"muted\">unavailable (reads a masked field)" in page
    gone = unescape(client.get("/cases/c1").text)
    assert "Derived features unavailable: version '2' is not loaded with revision rrrrrrrrrrrr" in gone


def test_an_oversized_form_is_refused_before_it_is_read(clients: dict[str, tuple[TestClient, str]]) -> None:
    """A POST declaring more than 25 MiB gets 413 and the console goes on serving."""
    client, _ = clients["policy_owner"]
    r = client.post("/backtests", content=b"x" * 16, headers={"content-length": str(26 * 1024 * 1024),
                                                              "content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 413
    assert client.get("/flows").status_code == 200


def test_replay_of_a_period_of_the_log(clients: dict[str, tuple[TestClient, str]]) -> None:
    """A replay of card_payment's logged decisions from 2023-11-14T22:13:50 on considers exactly the 10 records of that period."""
    client, token = clients["analyst"]
    r = client.post("/backtests", data={"csrf_token": token, "kind": "replay", "flow": "card_payment", "versions": "1",
                                        "since": "2023-11-14T22:13:50"})
    assert r.status_code == 303, r.text
    deadline = time.monotonic() + 60
    while "done:" not in (page := client.get(r.headers["location"]).text):
        assert "failed:" not in page and time.monotonic() < deadline, page[-2000:]
        time.sleep(0.3)
    report = client.get(r.headers["location"], params={"format": "json"}).json()
    assert report["considered"] == 10 and "Transitions (rows: logged" in page


def test_replay_form_names_every_bad_field(clients: dict[str, tuple[TestClient, str]]) -> None:
    """A replay with an unknown version and a malformed period is refused with 400 naming versions, since and until."""
    client, token = clients["analyst"]
    r = client.post("/backtests", data={"csrf_token": token, "kind": "replay", "flow": "card_payment", "versions": "9",
                                        "since": "yesterday", "until": "2026-13"})
    text = unescape(r.text)
    assert r.status_code == 400 and "versions: card_payment has no version 9" in text and "since: 'yesterday'" in text and "until: '2026-13'" in text


def test_an_unreadable_decision_log_is_a_clear_503(setup: dict[str, Any], tmp_path: Path) -> None:
    """A console whose --log-dir does not exist answers a search with 503 naming the log, and keeps serving."""
    users = Users(setup["base"] / "users.yaml")
    args = argparse.Namespace(log_dir=tmp_path / "missing", data_dir=None, idle_minutes=15.0, secure_cookies=False, reload_target=[],
                              cases=None)
    app = build(args, setup["root"], users)
    client, _ = signed_in(app, "aud")
    r = client.get("/decisions", params={"request_id": "x"})
    assert r.status_code == 503 and "the decision log cannot be read" in r.text and "missing" in r.text
    assert client.get("/flows").status_code == 200
    app.state.console.jobs.close()
