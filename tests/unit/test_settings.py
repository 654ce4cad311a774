"""One frozen settings object: defaults, then VERDICT_* environment, then flags; validated once."""

from pathlib import Path

import pytest
from pydantic import ValidationError

from engine.settings import Settings, SettingsError, bundled_root, default_root, is_loopback, root_origin

ROOT = Path(__file__).resolve().parents[2]


def test_defaults():
    """Without environment or flags the documented defaults apply."""
    s = Settings.load(env={})
    assert (s.host, s.port, s.workers, s.threads) == ("127.0.0.1", 50051, 1, 16)
    assert (s.max_message_bytes, s.grace_seconds, s.log_level, s.log_format) == (65536, 10.0, "info", "json")
    assert s.root == default_root()
    assert s.address == "127.0.0.1:50051"


def test_environment_overrides_defaults_and_flags_override_environment():
    """VERDICT_* variables beat defaults; a given flag beats the variable; a None flag does not."""
    env = {"VERDICT_PORT": "6000", "VERDICT_HOST": "0.0.0.0", "VERDICT_LOG_LEVEL": "DEBUG", "VERDICT_WORKERS": "3", "VERDICT_INSECURE": "1"}
    s = Settings.load(env=env, port=7000, host=None)
    assert (s.port, s.host, s.log_level, s.workers) == (7000, "0.0.0.0", "debug", 3)


def test_every_setting_is_documented():
    """Each field has a description and appears in the module's table with its variable."""
    import engine.settings as module

    for name, field in Settings.model_fields.items():
        assert field.description, f"{name} has no description"
        assert f"VERDICT_{name.upper()}" in module.__doc__, f"{name} is missing from the table"


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"VERDICT_PORT": "http"}, "VERDICT_PORT"),
        ({"VERDICT_PORT": "70000"}, "VERDICT_PORT"),
        ({"VERDICT_WORKERS": "0"}, "VERDICT_WORKERS"),
        ({"VERDICT_LOG_FORMAT": "xml"}, "VERDICT_LOG_FORMAT"),
    ],
)
def test_invalid_values_are_rejected_naming_the_variable(env, named):
    """A bad value stops start-up with a message that names the variable."""
    with pytest.raises(SettingsError, match=named):
        Settings.load(env=env)


def test_all_bad_values_are_reported_at_once():
    """Two bad settings give one error naming both."""
    with pytest.raises(SettingsError) as caught:
        Settings.load(env={"VERDICT_PORT": "-1", "VERDICT_THREADS": "0"})
    assert "port" in str(caught.value) and "threads" in str(caught.value)


def test_unknown_flag_is_an_error():
    """A misspelt setting is refused, not ignored."""
    with pytest.raises(SettingsError, match="prot"):
        Settings.load(env={}, prot=1)


def test_settings_are_frozen():
    """Settings cannot change after start-up."""
    s = Settings.load(env={})
    with pytest.raises(ValidationError):
        s.port = 1  # type: ignore[misc]


def test_the_bundled_root_is_the_project_root():
    """In a checkout / editable install the bundled examples are the directory holding policies/ beside the package."""
    assert bundled_root() == ROOT
    assert (bundled_root() / "policies").is_dir()


def test_the_default_root_is_the_current_directory_when_it_holds_policies(tmp_path, monkeypatch):
    """Inside a copy of the policies the default root is that copy, not the bundled one."""
    (tmp_path / "policies").mkdir()
    monkeypatch.chdir(tmp_path)
    assert default_root() == tmp_path.resolve()
    assert Settings.load(env={}).root == tmp_path.resolve()
    assert root_origin(None, env={}) == "the current directory"


def test_without_policies_in_the_current_directory_the_bundled_examples_are_used(tmp_path, monkeypatch):
    """In a directory without policies/ the default is the bundled examples, and the origin says so."""
    monkeypatch.chdir(tmp_path)
    assert default_root() == bundled_root()
    assert root_origin(None, env={}) == "the bundled examples: no policies/ in the current directory"


def test_root_precedence_is_flag_then_environment_then_current_directory(tmp_path, monkeypatch):
    """--root beats VERDICT_ROOT, which beats the current directory."""
    (tmp_path / "cwd" / "policies").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "cwd")
    env = {"VERDICT_ROOT": str(tmp_path / "env")}
    assert Settings.load(env=env).root == tmp_path / "env" and root_origin(None, env=env) == "VERDICT_ROOT"
    flag = tmp_path / "flag"
    assert Settings.load(env=env, root=flag).root == flag and root_origin(flag, env=env) == "--root"


def test_ipv6_host_is_bracketed_in_the_address():
    """An IPv6 host gives a bindable address."""
    assert Settings.load(env={}, host="::1", port=1).address == "[::1]:1"


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"])
def test_loopback_hosts_need_no_tls(host):
    """The default (and any loopback address) serves plaintext without --insecure."""
    assert is_loopback(host)
    assert Settings.load(env={}, host=host).tls is False


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "verdict.internal"])
def test_a_non_loopback_host_without_tls_needs_insecure(host):
    """Binding beyond loopback without TLS is refused, naming --insecure; with --insecure it is allowed."""
    assert not is_loopback(host)
    with pytest.raises(SettingsError, match="--insecure"):
        Settings.load(env={}, host=host)
    assert Settings.load(env={}, host=host, insecure=True).insecure
    assert Settings.load(env={"VERDICT_INSECURE": "true"}, host=host).insecure


def test_a_non_loopback_host_with_tls_is_allowed(tmp_path):
    """TLS (certificate and key) is enough to bind a non-loopback host."""
    s = Settings.load(env={}, host="0.0.0.0", tls_cert=tmp_path / "c.pem", tls_key=tmp_path / "k.pem")
    assert s.tls and not s.insecure


def test_security_settings_that_do_not_fit_are_all_named():
    """A key without its certificate, authz without a way to know callers and a public host without TLS: one error naming all three."""
    with pytest.raises(SettingsError) as caught:
        Settings.load(env={}, tls_key="k.pem", authz="authz.yaml", host="0.0.0.0")
    message = str(caught.value)
    assert "tls_cert and tls_key must be given together" in message
    assert "authz needs a way to know the caller" in message
    assert "--insecure" in message
    with pytest.raises(SettingsError, match=r"tls_client_ca \(mutual TLS\) needs the server's own tls_cert"):
        Settings.load(env={}, tls_client_ca="ca.pem")
