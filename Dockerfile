# The Verdict serving image: Python 3.11 slim, the package in a virtualenv, the policy root
# (policies/, rules/, model_artifacts/) under /srv/verdict, run as an unprivileged user.
# Build: docker build -t verdict:$(git rev-parse --short HEAD) .
# Checked in CI with hadolint (tests/unit/test_deploy_manifests.py). See docs/operations.md.

FROM python:3.11-slim-bookworm AS build
# Extras of the image: postgres for the decision log and redis for the stateful features of replicas
# (deploy/kubernetes sets VERDICT_AUDIT_DSN and VERDICT_STATE); add otel for traces:
# docker build --build-arg EXTRAS=postgres,redis,otel .
ARG EXTRAS=postgres,redis
WORKDIR /src
COPY pyproject.toml README.md ./
COPY engine ./engine
RUN python -m venv /opt/verdict \
    && /opt/verdict/bin/pip install --no-cache-dir --disable-pip-version-check ".[${EXTRAS}]"

FROM python:3.11-slim-bookworm
RUN useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin verdict \
    && install -d -o verdict -g verdict -m 0700 /var/lib/verdict
COPY --from=build /opt/verdict /opt/verdict
COPY policies /srv/verdict/policies
COPY rules /srv/verdict/rules
COPY model_artifacts /srv/verdict/model_artifacts
COPY lists /srv/verdict/lists
COPY events /srv/verdict/events
ENV PATH=/opt/verdict/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    VERDICT_ROOT=/srv/verdict \
    VERDICT_HOST=0.0.0.0 \
    VERDICT_PORT=50051 \
    VERDICT_METRICS_HOST=0.0.0.0 \
    VERDICT_METRICS_PORT=9464 \
    VERDICT_AUDIT=/var/lib/verdict/audit \
    VERDICT_STATE=/var/lib/verdict/state/state.db
USER 10001:10001
WORKDIR /tmp
EXPOSE 50051 9464
ENTRYPOINT ["verdict", "serve"]
