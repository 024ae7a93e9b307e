"""The settings of the test run: the project's own, served over plain HTTP.

pytest-django imports this module (pyproject.toml) before any conftest, so the variable is set
before ``config.settings`` reads it, and subprocesses the tests start (Celery workers) inherit it.
"""

import os

os.environ.setdefault("DJANGO_HTTPS", "false")

from config.settings import *  # noqa: F403
