"""Settings for the portal: one module, everything that varies comes from the environment.

With no environment variables it runs for development: DEBUG on, SQLite in var/, a Celery broker
on the filesystem under var/, e-mail printed to the console. Production sets DEBUG=0, SECRET_KEY,
ALLOWED_HOSTS, DATABASE_URL, REDIS_URL and EMAIL_URL (see README).
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from celery.schedules import crontab
from django.utils.csp import CSP

from portal.lib.env import (
    ConfigError,
    database_from_url,
    env_bool,
    env_int,
    env_list,
    env_str,
    mailer_from_url,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("PORTAL_VAR_DIR") or BASE_DIR / "var")
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env_bool("DEBUG", True)

SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ConfigError("SECRET_KEY must be set when DEBUG is off (production mode).")
    SECRET_KEY = "dev-only-insecure-key-never-use-in-production-" + "x" * 20

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
SITE_NAME = env_str("PORTAL_SITE_NAME", "Nimbus Cloud")
# Links in e-mail sent by background tasks (which have no request to take the address from).
# By default the development server's address, on $PORT as `make run` serves it (devrun passes
# the address it serves to its web, worker and beat processes).
_PORT = env_str("PORT", "8000")
PORTAL_BASE_URL = env_str(
    "PORTAL_BASE_URL", f"http://127.0.0.1:{_PORT if _PORT.isdigit() else 8000}"
).rstrip("/")

INSTALLED_APPS = [
    "portal.core.apps.PortalAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "allauth.usersessions",
    "portal.core",
    "portal.accounts",
    "portal.audit",
    "portal.tenancy",
    "portal.catalog",
    "portal.residency",
    "portal.compute",
    "portal.ipam",
    "portal.metering",
    "portal.statements",
    "portal.budgets",
    "portal.api",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "portal.accounts.middleware.ThrottledUserSessionsMiddleware",  # allauth's, writing once a minute
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"
# The portal is served under ASGI (uvicorn): HTTP by Django, websockets (the serial console) by
# Channels. portal.wsgi stays for tools that want WSGI; it serves no websocket.
ASGI_APPLICATION = "portal.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.csp",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "portal.core.context_processors.portal",
            ],
        },
    },
]

# --- Data --------------------------------------------------------------------------------------
DATABASES = {"default": database_from_url(env_str("DATABASE_URL"), sqlite_default=VAR_DIR / "portal.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"

REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    # Shared by every process on the machine (runserver, worker), so rate limits and used TOTP
    # codes are counted once, unlike the per-process local-memory cache.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": VAR_DIR / "cache",
        }
    }

# Websocket consumers talk to each other (a terminated server closes its console sessions) through
# the channel layer: Redis across processes and machines, or in memory inside one process (the
# single web process of `make run`).
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [REDIS_URL]}}
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# --- Celery ------------------------------------------------------------------------------------
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS: dict = {}
else:
    _queue = VAR_DIR / "celery" / "queue"
    _processed = VAR_DIR / "celery" / "processed"
    _queue.mkdir(parents=True, exist_ok=True)
    _processed.mkdir(parents=True, exist_ok=True)
    _control = VAR_DIR / "celery" / "control"
    _control.mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_queue),
        "data_folder_out": str(_queue),
        "processed_folder": str(_processed),
        "store_processed": False,
        "control_folder": str(_control),
    }
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 300
CELERY_TASK_SOFT_TIME_LIMIT = 240
if REDIS_URL:
    # A message a worker took and did not acknowledge (the worker died) is delivered again after
    # this. Longer than any task may run (the monthly close and the weekly digest: 1800 s) plus the
    # longest countdown a task is sent with (an operation's backoff, at most 60 s), with a minute to
    # spare: shorter, and a task still running or waiting for its countdown would be delivered a
    # second time. Operations do not wait for it: the reconciler takes over a killed step once its
    # lease (COMPUTE_STEP_LEASE_SECONDS) runs out; e-mail waits in the outbox.
    CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"] = 1800 + 60 + 60
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
# How often beat runs the reconciler, and how long it leaves an operation that no step has claimed
# yet (its first message may still be on its way).
COMPUTE_RECONCILE_SECONDS = float(env_str("COMPUTE_RECONCILE_SECONDS", "45"))
COMPUTE_RECONCILE_GRACE_SECONDS = float(env_str("COMPUTE_RECONCILE_GRACE_SECONDS", "30"))
CELERY_BEAT_SCHEDULE = {
    "compute-reconcile": {"task": "portal.compute.tasks.reconcile", "schedule": COMPUTE_RECONCILE_SECONDS},
    "metering-rollup": {"task": "portal.metering.tasks.rollup", "schedule": 300.0},
    "sessions-clear-expired": {"task": "portal.core.tasks.sessions_clear_expired", "schedule": 86400.0},
    "budgets-check": {"task": "portal.budgets.tasks.check_budgets", "schedule": 600.0},
    "budgets-enforce-leases": {"task": "portal.budgets.tasks.enforce_leases", "schedule": 900.0},
    # Monday morning; a digest is sent at most once per project and ISO week whenever it runs.
    "budgets-nudge-forgotten": {
        "task": "portal.budgets.tasks.nudge_forgotten",
        "schedule": crontab(minute=0, hour=7, day_of_week="mon"),
    },
    # Daily, just after midnight UTC: closes the month that just ended (idempotent, catches up).
    "statements-close-months": {
        "task": "portal.statements.tasks.close_months",
        "schedule": crontab(minute=20, hour=0),
    },
    "api-purge-idempotency-keys": {"task": "portal.api.tasks.purge_idempotency_keys", "schedule": 3600.0},
    "core-outbox-send-due": {"task": "portal.core.tasks.outbox_send_due", "schedule": 60.0},
    "compute-console-tickets-purge": {"task": "portal.compute.tasks.console_tickets_purge", "schedule": 3600.0},
    # Takes the backups that are due; a schedule is claimed by one run only (see compute/backups.py).
    "compute-backups-run-due": {"task": "portal.compute.tasks.backups_run_due", "schedule": 300.0},
}
CELERY_TIMEZONE = "UTC"

# --- Accounts (django-allauth) -----------------------------------------------------------------
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
ACCOUNT_ADAPTER = "portal.accounts.adapter.AccountAdapter"
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
# Verification is required before anything can be created (portal.tenancy.access enforces it);
# allauth lets the unverified user sign in and look around meanwhile.
ACCOUNT_EMAIL_VERIFICATION = "optional"
ACCOUNT_CONFIRM_EMAIL_ON_GET = False
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_CHANGE_EMAIL = True
ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE = False
ACCOUNT_PRESERVE_USERNAME_CASING = False
ACCOUNT_SESSION_REMEMBER = None
ACCOUNT_EMAIL_SUBJECT_PREFIX = f"[{SITE_NAME}] "
ACCOUNT_RATE_LIMITS = {
    "login_failed": "10/m/ip,5/5m/key",
    "signup": "20/m/ip",
    "reset_password": "20/m/ip,5/m/key",
    "confirm_email": "1/3m/key",
}
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_TOTP_ISSUER = SITE_NAME
USERSESSIONS_TRACK_ACTIVITY = True
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "home"
ACCOUNT_LOGOUT_REDIRECT_URL = "account_login"
# Staff need a second factor before Django admin opens, except in development.
PORTAL_ADMIN_REQUIRE_MFA = env_bool("PORTAL_ADMIN_REQUIRE_MFA", not DEBUG)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Tenancy -----------------------------------------------------------------------------------
PORTAL_DEFAULT_QUOTAS = {
    "instances": env_int("PORTAL_QUOTA_INSTANCES", 10),
    "vcpus": env_int("PORTAL_QUOTA_VCPUS", 32),
    "ram_gib": env_int("PORTAL_QUOTA_RAM_GIB", 128),
    "volume_gib": env_int("PORTAL_QUOTA_VOLUME_GIB", 1000),
}
PORTAL_INVITATION_DAYS = env_int("PORTAL_INVITATION_DAYS", 7)
PORTAL_INVITATIONS_PER_HOUR = env_int("PORTAL_INVITATIONS_PER_HOUR", 30)
PORTAL_MAX_PENDING_INVITATIONS = env_int("PORTAL_MAX_PENDING_INVITATIONS", 100)
PORTAL_CURRENCY = env_str("PORTAL_CURRENCY", "EUR")
# Servers' root disks and volumes, per GiB and hour while they exist (0.000137 * 730 h = 0.10 a month).
PORTAL_DISK_PRICE_GIB_HOUR = Decimal(env_str("PORTAL_DISK_PRICE_GIB_HOUR", "0.000137"))
PORTAL_VOLUME_PRICE_GIB_HOUR = Decimal(env_str("PORTAL_VOLUME_PRICE_GIB_HOUR", "0.000137"))
# Snapshots, backups and the custom images they are, per GiB and hour while they exist in the
# cloud (0.000068 * 730 h = 0.05 a month; segments keep six decimals).
PORTAL_SNAPSHOT_PRICE_GIB_HOUR = Decimal(env_str("PORTAL_SNAPSHOT_PRICE_GIB_HOUR", "0.000068"))
# Forgotten-server nudges: running longer than this many days with an average CPU below this percent.
PORTAL_NUDGE_DAYS = env_int("PORTAL_NUDGE_DAYS", 14)
PORTAL_NUDGE_CPU_PERCENT = env_int("PORTAL_NUDGE_CPU_PERCENT", 5)

# --- Compute ----------------------------------------------------------------------------------
# Each zone names the backend that serves it (Zone.backend); these are the backends there are.
# A zone names one of these (Zone.backend in admin) and may add its own settings there
# (Zone.backend_settings); see docs/backends/. Secrets only ever come from the environment or files.
COMPUTE_BACKENDS = {
    "simulated": {"CLASS": "portal.compute.backends.simulated.SimulatedBackend", "OPTIONS": {}},
    # KVM hosts through libvirt; zones list their hosts (docs/backends/libvirt.md). Without KVM,
    # LIBVIRT_DOMAIN_TYPE=qemu (software emulation).
    "libvirt": {
        "CLASS": "portal.compute.backends.libvirt.LibvirtBackend",
        "OPTIONS": {
            "domain_type": env_str("LIBVIRT_DOMAIN_TYPE", "kvm"),
            "image_store": env_str("LIBVIRT_IMAGE_STORE", "/var/lib/portal/images"),
            "embed_user": env_str("LIBVIRT_EMBED_USER", ""),
            "stop_timeout_seconds": env_int("LIBVIRT_STOP_TIMEOUT_SECONDS", 60),
            "images": {},  # portal image name -> file in image_store, e.g. {"Debian 13": "debian-13.qcow2"}
        },
    },
    "openstack": {
        "CLASS": "portal.compute.backends.openstack.OpenStackBackend",
        "OPTIONS": {
            "clouds_yaml": env_str("OPENSTACK_CLOUDS_YAML", ""),  # "" = openstacksdk's search path
            "auth": {
                "auth_url": env_str("OPENSTACK_AUTH_URL", ""),
                "username": env_str("OPENSTACK_USERNAME", ""),
                "project_name": env_str("OPENSTACK_PROJECT_NAME", ""),
                "user_domain_name": env_str("OPENSTACK_USER_DOMAIN_NAME", "Default"),
                "project_domain_name": env_str("OPENSTACK_PROJECT_DOMAIN_NAME", "Default"),
            },
            "password_env": "OPENSTACK_PASSWORD",
            "timeout": 30,
            "images": {},  # portal image name -> Glance image name, e.g. {"Debian 12": "debian-12-generic"}
            "flavors": {},  # portal flavor code -> Nova flavor name
        },
    },
}
# Defaults for the simulated cloud; operators change them live in admin (Simulated backend settings).
SIMULATED_BACKEND = {
    "boot_seconds": float(env_str("SIMULATED_BOOT_SECONDS", "4")),
    "action_seconds": float(env_str("SIMULATED_ACTION_SECONDS", "2")),
    "transient_error_rate": float(env_str("SIMULATED_TRANSIENT_ERROR_RATE", "0")),
    "slow_call_seconds": float(env_str("SIMULATED_SLOW_CALL_SECONDS", "0")),
    "fail_marker": env_str("SIMULATED_FAIL_MARKER", "fail"),
}
COMPUTE_POLL_SECONDS = float(env_str("COMPUTE_POLL_SECONDS", "1.5"))
COMPUTE_MAX_TRANSIENT_RETRIES = env_int("COMPUTE_MAX_TRANSIENT_RETRIES", 6)
COMPUTE_OPERATION_TIMEOUT_SECONDS = env_int("COMPUTE_OPERATION_TIMEOUT_SECONDS", 900)
# How long a worker holds an operation's step; past it (the worker died) the reconciler takes over.
# Longer than the step task's time limit.
COMPUTE_STEP_LEASE_SECONDS = env_int("COMPUTE_STEP_LEASE_SECONDS", 150)
# Fault tests only: see portal/compute/crashpoints.py. Unset in production.
COMPUTE_CRASH_FILE = env_str("COMPUTE_CRASH_FILE", "")
COMPUTE_MAX_LAUNCH_COUNT = env_int("COMPUTE_MAX_LAUNCH_COUNT", 20)
# Data volumes one server takes (virtio disks vdb…vdi); the simulated cloud has the same limit.
COMPUTE_VOLUMES_PER_SERVER = env_int("COMPUTE_VOLUMES_PER_SERVER", 8)
COMPUTE_USER_DATA_MAX_BYTES = env_int("COMPUTE_USER_DATA_MAX_BYTES", 16 * 1024)
# Serial console: a ticket opens one websocket session within this many seconds of being issued;
# an open session re-checks the server and the user's role this often (docs/console.md).
CONSOLE_TICKET_SECONDS = env_int("CONSOLE_TICKET_SECONDS", 60)
CONSOLE_RECHECK_SECONDS = float(env_str("CONSOLE_RECHECK_SECONDS", "10"))
# A ticket never used is deleted this many hours after it expired (sessions opened are kept: they
# are the console's audit trail).
CONSOLE_TICKET_KEEP_HOURS = env_int("CONSOLE_TICKET_KEEP_HOURS", 24)

# --- Public API --------------------------------------------------------------------------------
# Requests per token and minute (fixed window in the shared cache); over it: 429 with Retry-After.
PORTAL_API_RATE_LIMIT_PER_MINUTE = env_int("PORTAL_API_RATE_LIMIT_PER_MINUTE", 120)
# The longest a personal access token may live; the token page offers 7, 30 and 90 days up to it.
PORTAL_API_TOKEN_MAX_DAYS = env_int("PORTAL_API_TOKEN_MAX_DAYS", 90)
# How long an Idempotency-Key is remembered (hours).
PORTAL_API_IDEMPOTENCY_HOURS = env_int("PORTAL_API_IDEMPOTENCY_HOURS", 24)

# --- E-mail ------------------------------------------------------------------------------------
MAILERS = {"default": mailer_from_url(env_str("EMAIL_URL"))}
if DEBUG and MAILERS["default"]["BACKEND"] == "django.core.mail.backends.console.EmailBackend":
    # The text part as written, links clickable (Django's prints quoted-printable MIME). Only in
    # development: in production Django's deploy check still refuses a console backend (mail.E001).
    MAILERS["default"]["BACKEND"] = "portal.core.mail_console.EmailBackend"
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", f"{SITE_NAME} <no-reply@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# --- Static files ------------------------------------------------------------------------------
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

LANGUAGE_CODE = "en"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Security ----------------------------------------------------------------------------------
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.NONCE],
    # The nonce: the serial console's terminal (xterm.js) measures and colours itself with <style>
    # elements it creates; static/js/console.js gives them the page's nonce (no 'unsafe-inline').
    "style-src": [CSP.SELF, CSP.NONCE],
    "img-src": [CSP.SELF, "data:"],
    "font-src": [CSP.SELF],
    "connect-src": [CSP.SELF],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.NONE],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
}
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
# Read on every request, so from the cache first; written through to the database, which stays
# the record (a cache flush signs no one out; "Active sessions" still lists and ends them).
SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
if not DEBUG:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    if env_bool("USE_X_FORWARDED_PROTO", False):
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- Logging -----------------------------------------------------------------------------------
LOG_FORMAT = env_str("LOG_FORMAT", "text" if DEBUG else "json")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {"()": "portal.lib.logs.JsonFormatter"},
        "text": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
    },
    "filters": {"client_error_without_traceback": {"()": "portal.lib.logs.ClientErrorWithoutTraceback"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["client_error_without_traceback"],
        }
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        # Django's default config gives the "django" logger a console handler of its own (in
        # DEBUG) that also propagates to ours: every request error was printed twice. Only ours.
        "django": {"handlers": [], "level": "INFO", "propagate": True},
        "django.db.backends": {"level": "WARNING"},
        # At DEBUG it prints each request's body, a password reset's new password with it.
        "keystoneauth.session": {"level": "INFO"},
    },
}
