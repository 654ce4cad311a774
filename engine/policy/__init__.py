"""Policy: what owners write (flows, rules, tables, routing, tests) and how it is loaded, checked and compiled.

Its output is the immutable ``PolicySet`` of compiled flows that ``engine.runtime`` serves.
It never imports an edge (grpc, commands, batch, console, cli, app): docs/architecture.md.
"""
