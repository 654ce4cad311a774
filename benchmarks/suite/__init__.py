"""The benchmark suite behind ``benchmarks/run.py`` and ``verdict bench``.

Modules, one concept each: ``manifest`` (the case file's schema), ``stats`` (percentiles and the
median of rounds), ``machine`` (what the numbers were measured on), ``inputs`` (real requests from
data/), ``benchroot`` (a policy root to measure), ``inprocess`` (cases without a network),
``zen_rules`` (the same rules as a zen-engine decision table), ``server`` and ``loadgen`` (gRPC
cases: a ``verdict serve`` process and client processes), ``scaling`` (rule count and model
size), ``report`` (Markdown, targets, plots), ``cli`` (the runner).
"""
