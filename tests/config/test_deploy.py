"""The production environment the README documents: Django's deployment checklist passes, the
HTTPS defaults hold with DEBUG off, and gunicorn serves the admin behind a TLS proxy.

Every process here gets its environment from scratch (not the test run's, which serves plain
HTTP), with a VAR_DIR of its own.
"""

import http.client
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HOST = "backoffice.example.com"


def documented_production_environment() -> dict[str, str]:
    """The variables of the first code block under "Running in production" in the README."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Running in production\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.DOTALL)
    assert block, "the README shows the production environment in a code block"
    variables = {}
    for line in block.group(1).splitlines():
        name, _, value = line.partition("=")
        assert re.fullmatch(r"[A-Z_]+", name), f"not a variable: {line!r}"
        variables[name] = re.sub(r"\s+#.*$", "", value).strip()
    return variables


def process_env(tmp_path: Path, variables: dict[str, str]) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "VAR_DIR": str(tmp_path / "var"),
    }
    env.update(variables)
    return env


def production_env(tmp_path: Path) -> dict[str, str]:
    variables = documented_production_environment()
    assert variables["DJANGO_SECRET_KEY"].startswith("<"), "the README shows a placeholder, never a key"
    variables["DJANGO_SECRET_KEY"] = secrets.token_urlsafe(50)
    return process_env(tmp_path, variables)


def run(args: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def test_the_documented_production_environment_sets_what_a_deployment_needs():
    variables = documented_production_environment()
    assert variables["DJANGO_DEBUG"] == "false"
    for name in ("DJANGO_SECRET_KEY", "DJANGO_ALLOWED_HOSTS", "DJANGO_CSRF_TRUSTED_ORIGINS"):
        assert variables[name], name
    assert variables["DJANGO_BEHIND_TLS_PROXY"] == "true"
    assert variables["DJANGO_SECURE_HSTS_PRELOAD"] == "true"


def test_the_documented_production_environment_passes_the_deployment_checklist(tmp_path):
    result = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], production_env(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout, result.stdout


SECURITY_SETTINGS = [
    "SECURE_SSL_REDIRECT",
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
    "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_HSTS_PRELOAD",
    "SECURE_PROXY_SSL_HEADER",
]
SECURE = {
    "SECURE_SSL_REDIRECT": True,
    "SESSION_COOKIE_SECURE": True,
    "CSRF_COOKIE_SECURE": True,
    "SECURE_HSTS_SECONDS": 31_536_000,
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
    "SECURE_HSTS_PRELOAD": False,
    "SECURE_PROXY_SSL_HEADER": None,
}
PLAIN_HTTP = {
    "SECURE_SSL_REDIRECT": False,
    "SESSION_COOKIE_SECURE": False,
    "CSRF_COOKIE_SECURE": False,
    "SECURE_HSTS_SECONDS": 0,
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": False,
    "SECURE_HSTS_PRELOAD": False,
    "SECURE_PROXY_SSL_HEADER": None,
}


def security_settings(tmp_path: Path, variables: dict[str, str]) -> dict:
    code = (
        "import json; from django.conf import settings; "
        f"print(json.dumps({{name: getattr(settings, name) for name in {SECURITY_SETTINGS!r}}}))"
    )
    result = run(["-c", code], process_env(tmp_path, variables), timeout=60)
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout)
    if values["SECURE_PROXY_SSL_HEADER"] is not None:
        values["SECURE_PROXY_SSL_HEADER"] = tuple(values["SECURE_PROXY_SSL_HEADER"])
    return values


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        pytest.param({"DJANGO_DEBUG": "false"}, SECURE, id="debug-off-means-https"),
        pytest.param({}, SECURE, id="debug-off-by-default"),
        pytest.param(
            {"DJANGO_HTTPS": "", "DJANGO_SECURE_SSL_REDIRECT": " ", "DJANGO_SECURE_HSTS_SECONDS": ""},
            SECURE,
            id="empty-means-default",
        ),
        pytest.param({"DJANGO_DEBUG": "false", "DJANGO_HTTPS": "false"}, PLAIN_HTTP, id="https-off"),
        pytest.param({"DJANGO_DEBUG": "true"}, PLAIN_HTTP, id="debug-on-means-plain-http"),
        pytest.param(
            {
                "DJANGO_HTTPS": "false",
                "DJANGO_SECURE_HSTS_SECONDS": "600",
                "DJANGO_CSRF_COOKIE_SECURE": "true",
            },
            {**PLAIN_HTTP, "SECURE_HSTS_SECONDS": 600, "CSRF_COOKIE_SECURE": True},
            id="each-value-overridable",
        ),
        pytest.param(
            {"DJANGO_SECURE_HSTS_PRELOAD": "true", "DJANGO_BEHIND_TLS_PROXY": "true"},
            {
                **SECURE,
                "SECURE_HSTS_PRELOAD": True,
                "SECURE_PROXY_SSL_HEADER": ("HTTP_X_FORWARDED_PROTO", "https"),
            },
            id="preload-and-tls-proxy",
        ),
    ],
)
def test_https_defaults_follow_debug_and_each_can_be_overridden(tmp_path, variables, expected):
    assert security_settings(tmp_path, variables) == expected


@pytest.mark.parametrize("value", ["ture", "true  # served over HTTPS", "#"])
def test_a_security_switch_that_is_neither_true_nor_false_stops_the_start(tmp_path, value):
    result = run(
        ["-c", "from django.conf import settings; settings.DEBUG"],
        process_env(tmp_path, {"DJANGO_HTTPS": value}),
    )
    assert result.returncode != 0
    assert "ImproperlyConfigured: A security switch is set to" in result.stderr
    assert "DJANGO_HTTPS" in result.stderr, "the traceback names the variable"


def test_the_test_run_itself_serves_plain_http(settings):
    assert settings.SECURE_SSL_REDIRECT is False
    assert settings.SESSION_COOKIE_SECURE is False
    assert settings.SECURE_HSTS_SECONDS == 0


# gunicorn behind a TLS proxy ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(port: int, path: str, headers: dict[str, str], timeout: float = 10) -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    connection.request("GET", path, headers=headers)
    response = connection.getresponse()
    response.text = response.read().decode("utf-8", "replace")
    connection.close()
    return response


class Gunicorn:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.log = log
        gunicorn = Path(sys.executable).with_name("gunicorn")
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [
                    str(gunicorn),
                    "config.wsgi",
                    "--bind",
                    f"127.0.0.1:{self.port}",
                    "--workers",
                    "1",
                    "--timeout",
                    "60",
                    "--access-logfile",
                    "-",
                ],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                get(self.port, "/admin/login/", {"Host": HOST}, timeout=2)
                return
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"gunicorn did not start:\n{self.log.read_text(errors='replace')[-4000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)


@pytest.fixture
def gunicorn_server(tmp_path, request):
    env = production_env(tmp_path)
    # The documented environment, on a SQLite database and the embedded broker and limiter.
    for name in ("DATABASE_URL", "CELERY_BROKER_URL", "RATE_LIMIT_URL"):
        env.pop(name)
    migrate = run(["manage.py", "migrate", "--no-input", "-v", "0"], env, timeout=300)
    assert migrate.returncode == 0, migrate.stdout + migrate.stderr
    server = Gunicorn(env, tmp_path / "gunicorn.log")
    request.addfinalizer(server.stop)
    server.wait_ready()
    return server


def test_gunicorn_serves_the_admin_over_the_tls_proxy_and_redirects_plain_http(gunicorn_server):
    port = gunicorn_server.port

    proxied = get(port, "/admin/login/", {"Host": HOST, "X-Forwarded-Proto": "https"})
    assert proxied.status == 200, proxied.text[:2000]
    assert 'id="login-form"' in proxied.text
    assert 'name="username"' in proxied.text and 'name="password"' in proxied.text
    assert proxied.getheader("Strict-Transport-Security") == "max-age=31536000; includeSubDomains; preload"
    cookie = proxied.getheader("Set-Cookie") or ""
    assert "csrftoken=" in cookie and "Secure" in cookie

    plain = get(port, "/admin/login/", {"Host": HOST})
    assert plain.status == 301
    assert plain.getheader("Location") == f"https://{HOST}/admin/login/"
