"""Runtime: what happens per request (validate, route, decide, shadow, mask) and the reload that swaps it.

Uses the policy output and the models; never imports an edge (grpc, commands, batch, console,
cli, app): docs/architecture.md.
"""
