"""Settings. Every value that differs between machines comes from the environment (see .env.example).

The embedded defaults need no server: a SQLite file, Celery over kombu's filesystem transport, a
SQLite file for the shared rate limiter, and the provider clients pointed at nothing until their
credentials are set.
"""

import secrets
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env")
VAR_DIR = Path(env.str("VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def _secret_key() -> str:
    """DJANGO_SECRET_KEY, or a random key kept in var/ so sessions survive a restart."""
    if key := env.str("DJANGO_SECRET_KEY", default=""):
        return key
    path = VAR_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

# Security --------------------------------------------------------------------------------------
# Served over HTTPS unless said otherwise: with DEBUG off the secure defaults hold, and bin/run and
# the tests, which serve plain HTTP, set DJANGO_HTTPS=false. Each value can be overridden on its own.


def _switch(value: str, *, default: bool) -> bool:
    """A security switch: empty means its default; a value that is neither true nor false (a typo,
    a comment copied along from .env.example) stops the start instead of turning security off."""
    value = value.strip().lower()
    if not value:
        return default
    if value in ("true", "1", "yes", "on"):
        return True
    if value in ("false", "0", "no", "off"):
        return False
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(f"A security switch is set to {value!r}: use true or false.")


HTTPS = _switch(env.str("DJANGO_HTTPS", default=""), default=not DEBUG)
SECURE_SSL_REDIRECT = _switch(env.str("DJANGO_SECURE_SSL_REDIRECT", default=""), default=HTTPS)
SESSION_COOKIE_SECURE = _switch(env.str("DJANGO_SESSION_COOKIE_SECURE", default=""), default=HTTPS)
CSRF_COOKIE_SECURE = _switch(env.str("DJANGO_CSRF_COOKIE_SECURE", default=""), default=HTTPS)
SECURE_HSTS_SECONDS = int(
    env.str("DJANGO_SECURE_HSTS_SECONDS", default="").strip() or (31_536_000 if HTTPS else 0)
)
SECURE_HSTS_INCLUDE_SUBDOMAINS = _switch(
    env.str("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=""), default=HTTPS
)
SECURE_HSTS_PRELOAD = _switch(env.str("DJANGO_SECURE_HSTS_PRELOAD", default=""), default=False)
if _switch(env.str("DJANGO_BEHIND_TLS_PROXY", default=""), default=False):
    # Only behind a proxy that terminates TLS and sets X-Forwarded-Proto itself, whatever the
    # client sent: otherwise anyone could claim to be on HTTPS.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# Credentials never reach an error page or error mail, DEBUG on or off (config/error_reports.py).
DEFAULT_EXCEPTION_REPORTER_FILTER = "config.error_reports.SecretsFilter"
DEFAULT_EXCEPTION_REPORTER = "config.error_reports.SecretsExceptionReporter"

INSTALLED_APPS = [
    "config.apps.BackOfficeAdminConfig",  # django.contrib.admin with the dashboard on its index
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",  # operator classes in index expressions (the list's search indexes)
    "django_celery_beat",
    "invoices",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "config.middleware.RequestSizeLimitMiddleware",  # before anything reads the body
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "config.unavailable.DatabaseUnavailableMiddleware",  # the view's database errors: a plain 503
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several processes (web, worker, beat) share the file: wait for locks, write-ahead log.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# The covering indexes' included columns serve PostgreSQL; SQLite (development) builds the same
# indexes without them, which is all it needs.
SILENCED_SYSTEM_CHECKS = ["models.W040"]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-gb"
TIME_ZONE = env.str("TIME_ZONE", default="Europe/Amsterdam")
USE_I18N = True
USE_TZ = True
# Dates and times as the admin writes them everywhere ("7 Dec 2026 16:22"): config/formats/.
FORMAT_MODULE_PATH = ["config.formats"]

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
MEDIA_URL = "media/"
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(VAR_DIR / "media")))
DATA_UPLOAD_MAX_NUMBER_FIELDS = 10_000  # bulk actions post one field per selected invoice
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
# Uploads. The providers take at most 5 MB per PDF (fixed). The Qonto form refuses more than
# UPLOAD_MAX_FILES PDFs with a plain message; Django's own cap, a bare 400 page, is set above it and
# only stops what no form sends. A request over UPLOAD_MAX_REQUEST_BYTES is answered 413 before its
# body is parsed (config/middleware.py).
MAX_PDF_BYTES = 5 * 1024 * 1024
UPLOAD_MAX_FILES = env.int("UPLOAD_MAX_FILES", default=20)
DATA_UPLOAD_MAX_NUMBER_FILES = 2 * UPLOAD_MAX_FILES
UPLOAD_MAX_REQUEST_BYTES = env.int(
    "UPLOAD_MAX_REQUEST_BYTES", default=UPLOAD_MAX_FILES * MAX_PDF_BYTES + 5 * 1024 * 1024
)
# Where uploads over FILE_UPLOAD_MAX_MEMORY_SIZE are written while a request runs (default: the
# system's temporary folder); each file is deleted when its request ends.
FILE_UPLOAD_TEMP_DIR = env.str("FILE_UPLOAD_TEMP_DIR", default="") or None
if FILE_UPLOAD_TEMP_DIR:
    Path(FILE_UPLOAD_TEMP_DIR).mkdir(parents=True, exist_ok=True)

# Celery ------------------------------------------------------------------------------------------
BROKER_DIR = VAR_DIR / "broker"
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    for sub in ("out", "processed", "control"):
        (BROKER_DIR / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "out"),
        "data_folder_out": str(BROKER_DIR / "out"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
    }
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = TIME_ZONE
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

# Coordination shared by every process and machine -------------------------------------------------
# Request budgets per provider: redis://... in production, a SQLite file by default, "off" for benchmarks.
RATE_LIMIT_URL = env.str("RATE_LIMIT_URL", default=f"sqlite:///{VAR_DIR / 'ratelimit.sqlite3'}")
# The share of every provider limit left unused (0.05: 57 of 60 a minute, 950 of 1,000 per 10 s).
RATE_LIMIT_MARGIN = env.float("RATE_LIMIT_MARGIN", default=0.05)

# Providers -------------------------------------------------------------------------------------
MKP_API_KEY = env.str("MKP_API_KEY", default="")
MKP_BASE_URL = env.str("MKP_BASE_URL", default="https://api.mijnklantportaal.nl/v1")

QONTO_BASE_URL = env.str("QONTO_BASE_URL", default="https://thirdparty.qonto.com")
QONTO_LOGIN = env.str("QONTO_LOGIN", default="")
QONTO_SECRET_KEY = env.str("QONTO_SECRET_KEY", default="")
QONTO_ACCESS_TOKEN = env.str("QONTO_ACCESS_TOKEN", default="")
QONTO_REFRESH_TOKEN = env.str("QONTO_REFRESH_TOKEN", default="")
QONTO_CLIENT_ID = env.str("QONTO_CLIENT_ID", default="")
QONTO_CLIENT_SECRET = env.str("QONTO_CLIENT_SECRET", default="")
QONTO_TOKEN_URL = env.str("QONTO_TOKEN_URL", default="https://oauth.qonto.com/oauth2/token")
# Where "Connect Qonto" sends the staff member to consent (OAuth authorization code flow).
QONTO_AUTHORIZE_URL = env.str("QONTO_AUTHORIZE_URL", default="https://oauth.qonto.com/oauth2/auth")
QONTO_STAGING_TOKEN = env.str("QONTO_STAGING_TOKEN", default="")

# Sync and push behaviour -----------------------------------------------------------------------
PUSH_MAX_ATTEMPTS = env.int("PUSH_MAX_ATTEMPTS", default=8)
PUSH_BACKOFF_CAP_SECONDS = env.float("PUSH_BACKOFF_CAP_SECONDS", default=900.0)
SYNC_STALE_AFTER_MINUTES = env.int("SYNC_STALE_AFTER_MINUTES", default=60)
# The dashboard recomputes its figures itself when their snapshot is older than this.
DASHBOARD_SNAPSHOT_MAX_AGE_SECONDS = env.int("DASHBOARD_SNAPSHOT_MAX_AGE_SECONDS", default=600)
MKP_SYNC_PAGE_BUDGET = env.int("MKP_SYNC_PAGE_BUDGET", default=40)
MKP_LOOKUP_PAGES_PER_ATTEMPT = env.int("MKP_LOOKUP_PAGES_PER_ATTEMPT", default=20)
PROVIDER_CONNECT_TIMEOUT = env.float("PROVIDER_CONNECT_TIMEOUT", default=5.0)
PROVIDER_READ_TIMEOUT = env.float("PROVIDER_READ_TIMEOUT", default=30.0)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"urllib3": {"level": "WARNING"}},
}
SYNC_MAX_WAIT_SECONDS = env.float("SYNC_MAX_WAIT_SECONDS", default=5.0)
SYNC_WRITERS = env.int("SYNC_WRITERS", default=2)
# A running sync renews its lease every quarter of this: a stopped worker's lease frees after it.
SYNC_LEASE_TTL_SECONDS = env.float("SYNC_LEASE_TTL_SECONDS", default=60.0)
# A page that fails in a way that may pass is asked for this often in one run, after 1 s, 2 s, ...
# (from SYNC_PAGE_BACKOFF_SECONDS), or after the provider's Retry-After when that is this short.
SYNC_PAGE_ATTEMPTS = env.int("SYNC_PAGE_ATTEMPTS", default=4)
SYNC_PAGE_BACKOFF_SECONDS = env.float("SYNC_PAGE_BACKOFF_SECONDS", default=1.0)
SYNC_SHORT_RETRY_AFTER_SECONDS = env.float("SYNC_SHORT_RETRY_AFTER_SECONDS", default=30.0)
# A full run keeps the page it reached this often; a failed customer or full run is tried again
# this soon (and resumes where it stopped).
SYNC_CHECKPOINT_SECONDS = env.float("SYNC_CHECKPOINT_SECONDS", default=30.0)
SYNC_RETRY_FAILED_SECONDS = env.int("SYNC_RETRY_FAILED_SECONDS", default=60)

# Webhooks ----------------------------------------------------------------------------------------
# A delivery larger than this is answered 413 unread (the providers send small JSON events).
WEBHOOK_MAX_BODY_BYTES = env.int("WEBHOOK_MAX_BODY_BYTES", default=256 * 1024)
# This site's public https:// address as the providers reach it (https://backoffice.example.com):
# registering the webhooks without --url uses <this>/webhooks/mkp/ and <this>/webhooks/qonto/.
# Plain http:// only for this machine (127.0.0.1, localhost), as bin/run does.
WEBHOOK_BASE_URL = env.str("WEBHOOK_BASE_URL", default="")
# A MijnKlantportaal delivery without an event id is a repeat when the same body came this recently.
WEBHOOK_DEDUPE_WINDOW_SECONDS = env.int("WEBHOOK_DEDUPE_WINDOW_SECONDS", default=600)
# Processing that fails in a way that may pass (the provider down) is tried this often.
WEBHOOK_MAX_ATTEMPTS = env.int("WEBHOOK_MAX_ATTEMPTS", default=8)
# The admin warns when a provider with webhook subscriptions sent no verified delivery for this
# long while the syncs of that time still found changes.
WEBHOOK_SILENT_AFTER_MINUTES = env.int("WEBHOOK_SILENT_AFTER_MINUTES", default=60)
