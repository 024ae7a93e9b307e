import pytest
from django.core.management import call_command


def test_system_checks_pass():
    call_command("check", fail_level="WARNING")


@pytest.mark.django_db
def test_models_and_migrations_agree():
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)


def test_every_setting_read_from_the_environment_is_documented():
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    read = set(re.findall(r'env\.\w+\(\s*"([A-Z_]+)"', (root / "config/settings.py").read_text()))
    # Set in the example, or shown as an example to fill in ("# NAME=...").
    documented = set(re.findall(r"^(?:# )?([A-Z_]+)=", (root / ".env.example").read_text(), re.MULTILINE))
    assert read, "the settings read their values through django-environ"
    assert read - documented == set()


def test_the_example_environment_copied_as_it_is_gives_the_embedded_defaults(tmp_path):
    """A copy of .env.example as .env must work: no comment may become part of a value."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    env = {**keep, "VAR_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "config.settings"}
    # The example is read exactly as the settings read a .env file, before they load.
    probe = (
        "import environ; environ.Env.read_env('.env.example'); "
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.TIME_ZONE, s.SYNC_WRITERS, s.UPLOAD_MAX_REQUEST_BYTES, s.DATABASES['default']['ENGINE'], "
        "len(s.SECRET_KEY.strip()) >= 50, s.SECURE_SSL_REDIRECT, repr(s.MKP_API_KEY))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=root, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [
        "Europe/Amsterdam",
        "2",
        "110100480",
        "django.db.backends.sqlite3",
        "True",
        "True",
        "''",
    ]
