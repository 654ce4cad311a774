# Sourced by scripts/test.sh: installs and starts, on loopback, the services the tests need.
# (Nothing yet; the decision-log issue adds PostgreSQL here.)
:
