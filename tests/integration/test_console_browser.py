"""The web console end to end in a real browser: Selenium drives Debian's headless Chromium against a real
`verdict serve` (gRPC, decision log) and a real `verdict console`, both on loopback port 0.

Chromium and chromium-driver come from Debian (scripts/test_services.sh installs them): under CI=true a
missing browser fails these tests; elsewhere they skip, saying why. With VERDICT_CONSOLE_SCREENSHOTS=DIR
the main pages are saved as PNGs there (scripts/console_screenshots.sh regenerates docs/img/console/).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml

from engine.console.releases import current_revision
from engine.console.users import Users
from engine.grpc.gen.verdict.v1 import decision_pb2_grpc as pb_grpc
from engine.policy.approvals import ApprovalLog
from tests.unit.policy_roots import routed_copy

from .helpers import ROOT, ServeProcess, credit_applications, request, verdict_command, wait_serving

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery staple"
USERS = {"ana": "analyst", "olga": "policy_owner", "abe": "approver", "aud": "auditor"}
SHOTS = os.environ.get("VERDICT_CONSOLE_SCREENSHOTS", "")
FLOW = "credit_application"


def _browser_or_skip() -> None:
    missing = [name for name in ("chromium", "chromedriver") if shutil.which(name) is None]
    if missing:
        why = f"{' and '.join(missing)} not installed (Debian packages chromium, chromium-driver; scripts/test_services.sh installs them)"
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)


class ConsoleProcess:
    """``verdict console --port 0`` in a subprocess; its URL from its first line."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen([*verdict_command(), "console", "--port", "0", *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        m = re.search(r"http://[\d.]+:\d+", line)
        if m is None:
            self.proc.kill()
            raise RuntimeError(f"the console did not start: {line}{self.proc.stderr.read() if self.proc.stderr else ''}")
        self.url = m.group(0)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _bootstrap_approvals(root: Path) -> None:
    """Approve what the copy routes today (maker-checker is switched on for it below)."""
    log = ApprovalLog(root)
    others = [(d.name, str(yaml.safe_load((d / "routing.yaml").read_text())["live"]), "live", 1.0, "")
              for d in sorted((root / "policies").iterdir()) if d.is_dir() and d.name != FLOW]  # every other flow, as routed
    for flow, version, target, share, key in [*others, (FLOW, "3", "live", 1.0, ""), (FLOW, "4", "challenger", 0.1, "customer_id")]:
        revision = current_revision(root, flow, version)
        p = log.propose(flow, version, revision, target, "bootstrap-owner", share=share, key=key, note="approvals switched on")
        log.decide(p.id, "bootstrap-approver", "approved", revision)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A routed copy of the project with approvals required, `verdict serve` on it, `verdict console` on both."""
    _browser_or_skip()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    base = tmp_path_factory.mktemp("console_e2e")
    root = routed_copy(base / "root")
    for png in (ROOT / "model_artifacts").glob("*/*/*.png"):  # the copy leaves plots out; the model page shows them
        shutil.copy(png, root / png.relative_to(ROOT))
    (root / "approvals.yaml").write_text("approvals: required\n")
    _bootstrap_approvals(root)
    (root / "data").mkdir()
    rows = (ROOT / "data" / "credit_data.csv").read_text().splitlines()
    (root / "data" / "credit_sample.csv").write_text("\n".join(rows[:401]) + "\n")
    users = Users(base / "users.yaml")
    for name, role in USERS.items():
        users.add(name, role, PASSWORD)
    log_dir = base / "log"
    server = ServeProcess(base, "--root", str(root), "--audit", str(log_dir), "--cases", str(base / "cases.db"))
    wait_serving(server.target)
    console = ConsoleProcess("--root", str(root), "--log-dir", str(log_dir), "--users", str(base / "users.yaml"),
                             "--cases", str(base / "cases.db"), "--reload-target", server.target)
    options = webdriver.ChromeOptions()
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1000"):
        options.add_argument(flag)
    options.binary_location = shutil.which("chromium") or "chromium"
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver") or "chromedriver"), options=options)
    driver.implicitly_wait(5)
    try:
        yield {"root": root, "base": base, "server": server, "console": console, "driver": driver, "log": log_dir}
    finally:
        driver.quit()
        console.stop()
        server.terminate_and_wait()


def _shot(driver: Any, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(SHOTS) / f"{name}.png"))


def sign_in(stack: dict[str, Any], name: str, password: str = PASSWORD) -> Any:
    """Sign out whoever is signed in, then sign in as `name` through the login form."""
    from selenium.webdriver.common.by import By

    driver = stack["driver"]
    driver.delete_all_cookies()
    driver.get(stack["console"].url + "/login")
    driver.find_element(By.ID, "username").send_keys(name)
    driver.find_element(By.ID, "password").send_keys(password)
    driver.find_element(By.ID, "sign-in").click()
    text_of(driver, "whoami" if password == PASSWORD else "login-error", name if password == PASSWORD else "wrong password", timeout=30)
    return driver


def text_of(driver: Any, element_id: str, expected: str, timeout: float = 20.0) -> str:
    """The text of element `element_id` once it contains `expected` (waits across page loads)."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout, ignored_exceptions=(StaleElementReferenceException, NoSuchElementException)).until(
        lambda d: expected in d.find_element(By.ID, element_id).text)
    return str(driver.find_element(By.ID, element_id).text)


def _decide_until_review(target: str) -> Any:
    """Decide credit applications over gRPC until one is a REVIEW; that response."""
    with grpc.insecure_channel(target) as channel:
        stub = pb_grpc.DecisionServiceStub(channel)
        for i, application in enumerate(credit_applications(400)):
            response = stub.Decide(request(FLOW, {**application, "customer_id": f"E2E{i:04d}"}, request_id=f"e2e-{i}"), timeout=10)
            if response.action == 2 and response.route == "live" and any(r.feature for r in response.reasons):  # REVIEW, scored
                return response
    raise AssertionError("no REVIEW among the first 400 applications")


def test_sign_in_refusals_csrf_and_roles(stack: dict[str, Any]) -> None:
    """A wrong password is refused on the page; a tampered CSRF token gets 403; an auditor has no forms that change anything."""
    from selenium.webdriver.common.by import By

    driver = sign_in(stack, "aud", "not the password at all")
    text_of(driver, "login-error", "Unknown user or wrong password")
    _shot(driver, "login")
    driver = sign_in(stack, "aud")
    driver.get(stack["console"].url + "/releases")
    text_of(driver, "whoami", "aud (auditor)")
    assert not driver.find_elements(By.ID, "propose-form")
    driver.get(stack["console"].url + "/backtests")
    assert not driver.find_elements(By.ID, "backtest-form")
    driver = sign_in(stack, "olga")
    driver.get(stack["console"].url + "/releases")
    driver.execute_script("document.querySelector('#propose-form input[name=csrf_token]').value = 'forged'")
    driver.find_element(By.ID, "rp-version").send_keys("4")
    driver.find_element(By.ID, "rp-submit").click()
    text_of(driver, "error", "CSRF token is missing or wrong")


def _disposition_records(log_dir: Path, decision_id: str) -> list[dict[str, Any]]:
    """The decision log's disposition records of `decision_id` (read through the log's own line reader)."""
    import json

    from engine.cases import chain_lines

    return [r for r in (json.loads(line) for line in chain_lines(log_dir, None))
            if r.get("kind") == "disposition" and r.get("decision_id") == decision_id]


def test_review_decision_is_queued_decided_and_streamed(stack: dict[str, Any]) -> None:
    """A REVIEW decided over gRPC opens a case the analyst claims and declines in the browser; the disposition reaches
    CaseService.WatchCases and the decision log as a chained disposition record."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    from engine.grpc.gen.verdict.v1 import decision_pb2 as pb

    response = _decide_until_review(stack["server"].target)
    driver = sign_in(stack, "ana")
    # the server's case opener opens the case from the durable log record, on its own thread: reload the queue until it is there
    WebDriverWait(driver, 20).until(lambda d: d.get(stack["console"].url + "/cases") or d.find_elements(By.LINK_TEXT, response.decision_id))
    _shot(driver, "queue")
    driver.find_element(By.LINK_TEXT, response.decision_id).click()
    driver.find_element(By.ID, "claim").click()
    text_of(driver, "case-state", "assigned (ana)")
    _shot(driver, "case")
    Select(driver.find_element(By.ID, "disposition")).select_by_visible_text("decline")
    driver.find_element(By.ID, "note").send_keys("income could not be verified")
    Select(driver.find_element(By.ID, "outcome")).select_by_visible_text("default")  # the label a replay uses below
    driver.find_element(By.ID, "decide").click()
    text_of(driver, "case-disposition", "decline by ana: income could not be verified")
    with grpc.insecure_channel(stack["server"].target) as channel:
        stream = pb_grpc.CaseServiceStub(channel).WatchCases(pb.WatchCasesRequest(since=0), timeout=20)
        event = next(e for e in stream if e.decision_id == response.decision_id)
        stream.cancel()
    assert (event.disposition, event.actor, event.note, event.request_id) == ("decline", "ana", "income could not be verified", response.request_id)
    deadline = time.monotonic() + 20
    while not (records := _disposition_records(stack["log"], response.decision_id)):
        assert time.monotonic() < deadline, "the disposition never reached the decision log"
        time.sleep(0.2)
    assert (records[0]["disposition"], records[0]["actor"], records[0]["case_seq"]) == ("decline", "ana", event.seq)
    driver.get(stack["console"].url + f"/decisions?request_id={response.request_id}")
    driver.find_element(By.LINK_TEXT, response.decision_id).click()
    text_of(driver, "action", "REVIEW")
    assert driver.find_elements(By.CSS_SELECTOR, "#fired tr") and driver.find_elements(By.CSS_SELECTOR, "#contributions svg rect")
    _shot(driver, "decision")


def test_owner_proposes_approver_approves_and_routing_serves_it(stack: dict[str, Any]) -> None:
    """Version 4 proposed for live by the owner, approved by the approver: the console rewrites routing, reloads the server, and Decide is answered by 4."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    driver = sign_in(stack, "olga")
    driver.get(stack["console"].url + "/releases")
    Select(driver.find_element(By.ID, "rp-flow")).select_by_visible_text(FLOW)
    driver.find_element(By.ID, "rp-version").send_keys("4")
    driver.find_element(By.ID, "rp-note").send_keys("promote the challenger")
    driver.find_element(By.ID, "rp-submit").click()
    pid = re.search(r"proposed ([0-9a-f]{12})", text_of(driver, "message", "proposed")).group(1)  # type: ignore[union-attr]
    assert not driver.find_elements(By.ID, f"approve-{pid}")  # the maker cannot approve
    driver = sign_in(stack, "abe")
    driver.get(stack["console"].url + "/releases")
    _shot(driver, "releases")
    driver.find_element(By.ID, f"approve-{pid}").click()
    message = text_of(driver, "message", f"approved {pid}", timeout=60)  # the console waits for the server's Reload
    assert "OK" in message, message
    with grpc.insecure_channel(stack["server"].target) as channel:
        answer = pb_grpc.DecisionServiceStub(channel).Decide(request(FLOW, credit_applications(1)[0]), timeout=10)
    assert (answer.version, answer.route) == ("4", "live")
    driver.get(stack["console"].url + "/audit")
    text_of(driver, "chain", "hash chain verified")
    _shot(driver, "audit")


def test_backtest_diff_and_model_pages(stack: dict[str, Any]) -> None:
    """A backtest of credit_application 1 -> 2 with outcomes and a replay of today's logged decisions with the case store's
    labels run in the console and show their tables; the diff and model pages render."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    driver = sign_in(stack, "olga")
    driver.get(stack["console"].url + "/backtests")
    Select(driver.find_element(By.ID, "bt-history")).select_by_visible_text("credit_sample.csv")
    driver.find_element(By.ID, "bt-run").click()
    text_of(driver, "bt-state", "done:", timeout=60)  # htmx polls the job every second
    assert driver.find_elements(By.CSS_SELECTOR, "#bt-outcomes tr") and driver.find_elements(By.CSS_SELECTOR, ".plots svg")
    _shot(driver, "backtest")
    driver.get(stack["console"].url + "/backtests")
    driver.find_element(By.ID, "rl-version").clear()
    driver.find_element(By.ID, "rl-version").send_keys("3")
    driver.find_element(By.ID, "rl-since").send_keys(time.strftime("%Y-%m-%d", time.gmtime()))
    driver.find_element(By.ID, "rl-run").click()
    text_of(driver, "bt-state", "done:", timeout=60)
    assert driver.find_elements(By.CSS_SELECTOR, "#rp-outcomes tr")  # the analyst's "default" label from the case store
    _shot(driver, "replay")
    driver.get(stack["console"].url + f"/flows/{FLOW}/diff?a=3&b=4")
    assert driver.find_elements(By.CSS_SELECTOR, "tr.change")
    _shot(driver, "diff")
    driver.get(stack["console"].url + "/models/credit_default/2")
    assert driver.find_elements(By.CSS_SELECTOR, "#psi tr") and driver.find_elements(By.CSS_SELECTOR, "img[alt='roc.png']")
    _shot(driver, "model")
