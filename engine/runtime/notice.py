"""Adverse-action notices: the principal reasons for a DECLINE, in applicant-facing words.

Regulation B (12 CFR 1002.9(a)(2), (b)(2)) requires a creditor that takes adverse action to give
the applicant a statement of the **specific** principal reasons, and 1002.9(b)(2) itself says that
a statement that the applicant failed to achieve the qualifying score on the creditor's scoring
system is insufficient: the reasons must be the factors the scoring system actually weighed. The
Official Interpretation (comment 9(b)(2)-1) says disclosing more than four reasons is not likely
to be helpful. FCRA §615(a)
(15 U.S.C. 1681m) adds the key factors of a credit score used in the decision.

So, for a DECLINE, :func:`principal_reasons` takes the outcome's reasons and keeps those of the
rules that decided DECLINE (a REVIEW rule that also held is not a reason for the decline). A rule
whose condition reads a model score (``pd >= 0.5``) gives its own generic code (e.g.
HIGH_RISK_SCORE); when the model's explainer gave feature reasons under it, those **replace** the
generic code: the notice names what drove the score (e.g. "Length of employment"), never "the
score was too high". At most four reasons, in the outcome's rank order (rule severity and
priority, then the model's largest contributions first). Each reason's text is the flow's
``notices:`` entry for its code (the flow's applicant-facing catalogue; ``verdict lint`` checks
that every code a DECLINE can give has one).

Pure: no I/O. :func:`render_markdown` writes the notice as Markdown for ``verdict notice``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from engine.types import Action, FiredRule, NoticeReason, Reason

__all__ = ["MAX_NOTICE_REASONS", "principal_reasons", "render_markdown"]

MAX_NOTICE_REASONS = 4  # Reg B Official Interpretation, comment 9(b)(2)-1


def principal_reasons(
    action: Action, reasons: Sequence[Reason], fired: Sequence[FiredRule], notices: Mapping[str, str],
) -> tuple[NoticeReason, ...]:
    """The ranked principal reasons of a DECLINE (1-4 when the flow has a notice catalogue), else ().

    ``reasons`` and ``fired`` are the outcome's, ``notices`` maps a reason code to its
    applicant-facing text (a code without one falls back to nothing: lint refuses such a flow).
    A decline by the flow's default (no rule fired) gives the default's reason.
    """
    if action != Action.DECLINE or not notices:
        return ()
    declining = {f.id for f in fired if f.action == Action.DECLINE}
    explained = {r.rule_id for r in reasons if r.source == "model"}
    out: list[NoticeReason] = []
    seen: set[str] = set()
    for r in reasons:
        if fired and r.rule_id not in declining:
            continue  # a reason of a REVIEW rule, not of the decline
        if r.source == "rule" and r.rule_id in explained:
            continue  # the generic code of a model-driven rule: its model reasons say why
        text = notices.get(r.code)
        if text is None or r.code in seen:
            continue
        seen.add(r.code)
        out.append(NoticeReason(r.code, text, r.source, r.feature))
        if len(out) == MAX_NOTICE_REASONS:
            break
    return tuple(out)


def render_markdown(
    *, decision_id: str, date: str, flow: str, version: str, revision: str, reasons: Sequence[NoticeReason],
) -> str:
    """The notice as Markdown: heading, date, decision id and version, then the numbered reasons.

    ``date`` is the decision's (UTC, ISO 8601 date); the text is ready to be merged into the
    creditor's letter template (which adds the ECOA notice and the creditor's name and address).
    """
    lines = [
        "# Statement of specific reasons for credit denial",
        "",
        f"- Date of decision: {date}",
        f"- Decision: {decision_id}",
        f"- Decided by: {flow} version {version} (revision {revision[:12]})",
        "",
        "Your application was declined for the following principal reason"
        + ("s" if len(reasons) != 1 else "") + ", most important first:",
        "",
    ]
    lines += [f"{i}. {r.text}" for i, r in enumerate(reasons, start=1)]
    return "\n".join(lines) + "\n"
