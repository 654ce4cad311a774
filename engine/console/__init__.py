"""The web console (``verdict console``): pages for analysts, policy owners, approvers and auditors.

Its own process, never inside the Decide server, so a backtest never takes CPU from ``Decide``.
Modules: ``app`` (assembly and the session/role/CSRF guard), ``pages`` (the handlers), ``access``
(route × role), ``users`` (the users file), ``security`` (sessions, CSRF, login limits, headers),
``search`` (decision search), ``jobs`` (backtests in a worker), ``releases`` (maker–checker on
``engine.policy.approvals``), ``svg`` (charts). Needs the ``[console]`` extra (docs/console.md).
"""
