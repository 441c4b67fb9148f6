"""The one typed settings object, read from the environment.

Every variable is documented, with its default, in ``docs/configuration.md``; keep the
two in step.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from notifyhub.model.channels import Channel

# NotifyHub's worker pool sizes per channel.
DEFAULT_SEND_CONCURRENCY = {Channel.EMAIL: 5, Channel.PUSH: 3, Channel.SMS: 2, Channel.INAPP: 5}

# Outside development a secret must be at least this long: 32 characters (openssl rand
# -hex 16 and up) cannot be guessed, and placeholders such as "CHANGE-ME" are shorter.
MIN_SECRET_LENGTH = 32
# The settings holding secrets the worker refuses to start with when they are shipped
# defaults or short; the previous ones (rotation) only when they are set.
SECRET_SETTINGS = (
    "admin_token",
    "admin_token_previous",
    "ws_token_secret",
    "ws_token_previous_secret",
    "webhook_secret_key",
    "webhook_secret_previous_key",
)


class InsecureSecret(ValueError):
    """A secret setting is a shipped default or shorter than MIN_SECRET_LENGTH.

    Set it to a random value (``openssl rand -hex 32``), the same on every worker; or, on
    a developer's machine only, start with ``NOTIFYHUB_DEVELOPMENT=true``.
    """


class Settings(BaseSettings):
    """NotifyHub's configuration. Unprefixed names follow the services' conventions."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    database_url: SecretStr = SecretStr("postgresql://notifyhub:notifyhub@127.0.0.1:5433/notifyhub")
    redis_url: str = "redis://127.0.0.1:6380/0"

    # Development mode: the worker starts even with the shipped default secrets, or short
    # ones. For a developer's machine only: the defaults are in this public file.
    development: bool = Field(default=False, validation_alias="NOTIFYHUB_DEVELOPMENT")

    admin_token: SecretStr = Field(
        default=SecretStr("dev-admin-token"), validation_alias="NOTIFYHUB_ADMIN_TOKEN"
    )
    # Rotation: the token before NOTIFYHUB_ADMIN_TOKEN, still accepted while operators and
    # their scripts move to the new one. Unset it once they have.
    admin_token_previous: SecretStr | None = Field(
        default=None, validation_alias="NOTIFYHUB_ADMIN_TOKEN_PREVIOUS"
    )
    # The Faust app id names the consumer group and prefixes every changelog topic;
    # two deployments on one cluster need different ids.
    app_id: str = Field(default="notifyhub", validation_alias="NOTIFYHUB_APP_ID")
    topic_prefix: str = Field(default="notifyhub", validation_alias="NOTIFYHUB_TOPIC_PREFIX")
    # Partitions cap how many workers share the load; 8 lets up to 8 workers work.
    topic_partitions: int = Field(default=8, ge=1, validation_alias="NOTIFYHUB_TOPIC_PARTITIONS")
    topic_replication_factor: int = Field(
        default=1, ge=1, validation_alias="NOTIFYHUB_TOPIC_REPLICATION_FACTOR"
    )
    # The address other workers reach this one at (table inspection is forwarded to the
    # partition's owner), and by default the address the server binds.
    web_host: str = Field(default="127.0.0.1", validation_alias="NOTIFYHUB_WEB_HOST")
    # Where the server listens when that differs (0.0.0.0 in a container, whose advertised
    # address is its pod IP or service name).
    web_bind: str | None = Field(default=None, validation_alias="NOTIFYHUB_WEB_BIND")
    web_port: int = Field(default=8080, ge=1, le=65535, validation_alias="NOTIFYHUB_WEB_PORT")
    data_dir: Path = Field(default=Path(".data/worker"), validation_alias="NOTIFYHUB_DATA_DIR")
    log_level: str = Field(default="info", validation_alias="NOTIFYHUB_LOG_LEVEL")
    # json: one JSON object per line, with trace id, tenant, notification and stage (for a
    # log pipeline); text: the same fields on one readable line (for a terminal).
    log_format: Literal["json", "text"] = Field(default="json", validation_alias="NOTIFYHUB_LOG_FORMAT")
    # Where spans go: none keeps them in the worker (trace ids still reach the logs and
    # Kafka headers), otlp sends them to OTEL_EXPORTER_OTLP_ENDPOINT (OTLP over HTTP),
    # console prints them. OTEL_SDK_DISABLED=true turns tracing off altogether.
    trace_exporter: Literal["none", "otlp", "console"] = Field(
        default="none", validation_alias="NOTIFYHUB_TRACE_EXPORTER"
    )
    # How often each worker measures its consumer lag (notifyhub_consumer_lag_messages).
    lag_interval_seconds: float = Field(
        default=10.0, gt=0, validation_alias="NOTIFYHUB_LAG_INTERVAL_SECONDS"
    )
    # Channels whose sends go to the recording sink instead of a real provider.
    # The sink is never used silently: a channel is sunk only when named here.
    sink_channels: Annotated[frozenset[Channel], NoDecode] = Field(
        default=frozenset(), validation_alias="NOTIFYHUB_SINK_CHANNELS"
    )
    # Session timeout decides how fast a dead worker's partitions move; Kafka's
    # group.min.session.timeout.ms (6 s) is the floor.
    broker_session_timeout: float = Field(
        default=30.0, ge=6.0, validation_alias="NOTIFYHUB_BROKER_SESSION_TIMEOUT"
    )
    table_standby_replicas: int = Field(
        default=1, ge=0, validation_alias="NOTIFYHUB_TABLE_STANDBY_REPLICAS"
    )

    # Notifications at or below this priority (1 is the most urgent, 10 the least, as in
    # NotifyHub) take each stage's priority lane: by default 1 to 3.
    priority_threshold: int = Field(
        default=3, ge=1, le=10, validation_alias="NOTIFYHUB_PRIORITY_THRESHOLD"
    )
    # The sweep (agents/sweep.py): a notification no stage moved for this long is re-driven
    # once; one still stuck this long after its re-drive fails; how often a sweep runs.
    sweep_stuck_seconds: float = Field(
        default=600.0, gt=0, validation_alias="NOTIFYHUB_SWEEP_STUCK_SECONDS"
    )
    sweep_give_up_seconds: float = Field(
        default=600.0, gt=0, validation_alias="NOTIFYHUB_SWEEP_GIVE_UP_SECONDS"
    )
    sweep_interval_seconds: float = Field(
        default=60.0, gt=0, validation_alias="NOTIFYHUB_SWEEP_INTERVAL_SECONDS"
    )
    # How long an idempotency key is remembered (HTTP and Kafka alike).
    idempotency_retention_hours: float = Field(
        default=24.0, gt=0, validation_alias="NOTIFYHUB_IDEMPOTENCY_RETENTION_HOURS"
    )
    # Per API key, sliding window (NotifyHub's default: 100 requests a minute).
    api_rate_limit: int = Field(default=100, ge=1, validation_alias="NOTIFYHUB_API_RATE_LIMIT")
    api_rate_window_seconds: float = Field(
        default=60.0, gt=0, validation_alias="NOTIFYHUB_API_RATE_WINDOW_SECONDS"
    )
    # Each tenant's accepted notifications per second over the HTTP API, unless the admin
    # API gives it its own (services/quotas.py): one tenant cannot fill the pipeline for all.
    tenant_notifications_per_second: int = Field(
        default=2000, ge=1, validation_alias="NOTIFYHUB_TENANT_NOTIFICATIONS_PER_SECOND"
    )
    # Requests per inbox token (a browser's), sliding window like the API key's.
    inbox_token_rate_limit: int = Field(
        default=120, ge=1, validation_alias="NOTIFYHUB_INBOX_TOKEN_RATE_LIMIT"
    )
    # When Redis cannot answer: let requests through (true) or refuse them with 503 (false).
    rate_limit_fail_open: bool = Field(default=True, validation_alias="NOTIFYHUB_RATE_LIMIT_FAIL_OPEN")

    # Sends in flight per channel and worker (NotifyHub's worker pools); one recipient's
    # notifications are still sent one at a time, in order.
    send_concurrency: Annotated[dict[Channel, int], NoDecode] = Field(
        default=DEFAULT_SEND_CONCURRENCY, validation_alias="NOTIFYHUB_SEND_CONCURRENCY"
    )

    # In-app inbox WebSocket: tokens from POST /api/v1/ws-token are HS256 JWTs signed with
    # this secret (every worker of a deployment needs the same one) and live this long.
    ws_token_secret: SecretStr = Field(
        default=SecretStr("dev-ws-token-secret-change-me"), validation_alias="NOTIFYHUB_WS_TOKEN_SECRET"
    )
    # Rotation: the secret before NOTIFYHUB_WS_TOKEN_SECRET. Tokens it signed are still
    # accepted (new ones are signed with the current secret), so nobody's inbox is closed by
    # a rotation; unset it one NOTIFYHUB_WS_TOKEN_TTL_SECONDS after every worker has the new one.
    ws_token_previous_secret: SecretStr | None = Field(
        default=None, validation_alias="NOTIFYHUB_WS_TOKEN_PREVIOUS_SECRET"
    )
    ws_token_ttl_seconds: int = Field(
        default=900, ge=10, le=86400, validation_alias="NOTIFYHUB_WS_TOKEN_TTL_SECONDS"
    )
    # NotifyHub's keep-alive: a {"type":"ping"} frame this often on every inbox socket.
    ws_ping_seconds: float = Field(default=25.0, gt=0, validation_alias="NOTIFYHUB_WS_PING_SECONDS")

    # Outbound webhooks. Endpoint secrets are encrypted with a key derived from this
    # (the same on every worker; changing it makes stored secrets unreadable).
    webhook_secret_key: SecretStr = Field(
        default=SecretStr("dev-webhook-secret-key-change-me"),
        validation_alias="NOTIFYHUB_WEBHOOK_SECRET_KEY",
    )
    # The key before the last rotation: endpoint secrets it encrypted are still read
    # (``notifyhub rotate-webhook-secrets`` is not needed; new ones use the current key).
    webhook_secret_previous_key: SecretStr | None = Field(
        default=None, validation_alias="NOTIFYHUB_WEBHOOK_SECRET_PREVIOUS_KEY"
    )
    webhook_timeout_seconds: float = Field(
        default=10.0, gt=0, validation_alias="NOTIFYHUB_WEBHOOK_TIMEOUT_SECONDS"
    )
    webhook_max_attempts: int = Field(
        default=5, ge=1, le=100, validation_alias="NOTIFYHUB_WEBHOOK_MAX_ATTEMPTS"
    )
    webhook_retry_base_seconds: float = Field(
        default=2.0, gt=0, validation_alias="NOTIFYHUB_WEBHOOK_RETRY_BASE_SECONDS"
    )
    webhook_retry_max_seconds: float = Field(
        default=3600.0, gt=0, validation_alias="NOTIFYHUB_WEBHOOK_RETRY_MAX_SECONDS"
    )
    # Deliveries in flight per worker (one endpoint's deliveries go one at a time, in order).
    webhook_concurrency: int = Field(default=20, ge=1, validation_alias="NOTIFYHUB_WEBHOOK_CONCURRENCY")
    # Webhook URLs may not reach private, loopback or link-local addresses (SSRF), except
    # the hosts and networks named here ("127.0.0.1,10.0.0.0/8,hooks.internal").
    webhook_allowed_hosts: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(), validation_alias="NOTIFYHUB_WEBHOOK_ALLOWED_HOSTS"
    )

    # Channel providers, in failover order (comma-separated names from
    # notifyhub.providers.PROVIDERS). A channel named in NOTIFYHUB_SINK_CHANNELS uses the
    # sink instead, and naming providers for it too is a start-up error.
    email_providers: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(), validation_alias="NOTIFYHUB_EMAIL_PROVIDERS"
    )
    sms_providers: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(), validation_alias="NOTIFYHUB_SMS_PROVIDERS"
    )
    push_providers: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(), validation_alias="NOTIFYHUB_PUSH_PROVIDERS"
    )
    inapp_providers: Annotated[tuple[str, ...], NoDecode] = Field(
        default=("inapp",), validation_alias="NOTIFYHUB_INAPP_PROVIDERS"
    )
    # Every provider call is bounded; a call that takes longer is a temporary failure.
    provider_timeout_seconds: float = Field(
        default=10.0, gt=0, validation_alias="NOTIFYHUB_PROVIDER_TIMEOUT_SECONDS"
    )
    # Requests per second per provider, shared by every worker ("ses=14,twilio=100");
    # a provider not named is not limited.
    provider_rate_limits: Annotated[dict[str, float], NoDecode] = Field(
        default_factory=dict, validation_alias="NOTIFYHUB_PROVIDER_RATE_LIMITS"
    )
    # Attempts per notification (NotifyHub: 3); temporary failures are retried after
    # base * 2**(attempt - 1) seconds (capped, with jitter), then dead-lettered.
    send_max_attempts: int = Field(
        default=3, ge=1, le=100, validation_alias="NOTIFYHUB_SEND_MAX_ATTEMPTS"
    )
    retry_base_seconds: float = Field(default=1.0, gt=0, validation_alias="NOTIFYHUB_RETRY_BASE_SECONDS")
    retry_max_seconds: float = Field(default=600.0, gt=0, validation_alias="NOTIFYHUB_RETRY_MAX_SECONDS")
    # Circuit breakers: this many temporary failures in a row open a provider's breaker;
    # after the reset time one probe is let through (half-open).
    breaker_failure_threshold: int = Field(
        default=5, ge=1, validation_alias="NOTIFYHUB_BREAKER_FAILURE_THRESHOLD"
    )
    breaker_reset_seconds: float = Field(
        default=30.0, gt=0, validation_alias="NOTIFYHUB_BREAKER_RESET_SECONDS"
    )

    # Email (SES and SMTP): the From address.
    email_from: str | None = Field(default=None, validation_alias="NOTIFYHUB_EMAIL_FROM")
    # SES v2 through aioboto3; credentials come from the standard AWS chain
    # (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, profiles, instance roles).
    ses_region: str | None = Field(default=None, validation_alias="NOTIFYHUB_SES_REGION")
    ses_endpoint_url: str | None = Field(default=None, validation_alias="NOTIFYHUB_SES_ENDPOINT_URL")
    ses_configuration_set: str | None = Field(
        default=None, validation_alias="NOTIFYHUB_SES_CONFIGURATION_SET"
    )
    # SMTP, for self-hosters. security: "starttls", "tls" (implicit) or "none".
    smtp_host: str | None = Field(default=None, validation_alias="NOTIFYHUB_SMTP_HOST")
    smtp_port: int = Field(default=587, ge=1, le=65535, validation_alias="NOTIFYHUB_SMTP_PORT")
    smtp_username: str | None = Field(default=None, validation_alias="NOTIFYHUB_SMTP_USERNAME")
    smtp_password: SecretStr | None = Field(default=None, validation_alias="NOTIFYHUB_SMTP_PASSWORD")
    smtp_security: Literal["starttls", "tls", "none"] = Field(
        default="starttls", validation_alias="NOTIFYHUB_SMTP_SECURITY"
    )
    # Where providers and recipients reach this deployment's HTTP API from outside
    # (https://notify.example.com): Twilio's status callbacks go there, their signatures
    # are checked against it, and e-mail unsubscribe links point there. Unset: no status
    # callbacks are asked of Twilio and e-mail carries no List-Unsubscribe.
    public_url: str | None = Field(default=None, validation_alias="NOTIFYHUB_PUBLIC_URL")
    # Days an unsubscribe link works (RFC 8058 asks senders to honour it for a while).
    unsubscribe_link_days: int = Field(
        default=60, ge=1, le=366, validation_alias="NOTIFYHUB_UNSUBSCRIBE_LINK_DAYS"
    )
    # SES events through SNS: the topics ours are published to (comma-separated ARNs). A
    # signature only proves that SNS sent a message, not whose topic it came from, so the
    # receiver takes nothing until this names them.
    ses_sns_topic_arns: Annotated[frozenset[str], NoDecode] = Field(
        default=frozenset(), validation_alias="NOTIFYHUB_SES_SNS_TOPIC_ARNS"
    )
    # Where SNS signing certificates are fetched from instead of the URL's own https host
    # (which is still checked to be SNS's); for tests and local servers only.
    sns_certificate_base_url: str | None = Field(
        default=None, validation_alias="NOTIFYHUB_SNS_CERTIFICATE_BASE_URL"
    )
    # Twilio Messages API; the unprefixed names are Twilio's own conventions.
    twilio_account_sid: str | None = Field(default=None, validation_alias="TWILIO_ACCOUNT_SID")
    twilio_auth_token: SecretStr | None = Field(default=None, validation_alias="TWILIO_AUTH_TOKEN")
    twilio_from: str | None = Field(default=None, validation_alias="NOTIFYHUB_TWILIO_FROM")
    twilio_messaging_service_sid: str | None = Field(
        default=None, validation_alias="NOTIFYHUB_TWILIO_MESSAGING_SERVICE_SID"
    )
    twilio_api_url: str = Field(
        default="https://api.twilio.com", validation_alias="NOTIFYHUB_TWILIO_API_URL"
    )
    # FCM HTTP v1 through firebase-admin: a service account JSON file.
    fcm_credentials_file: Path | None = Field(
        default=None, validation_alias="NOTIFYHUB_FCM_CREDENTIALS_FILE"
    )
    fcm_project_id: str | None = Field(default=None, validation_alias="NOTIFYHUB_FCM_PROJECT_ID")
    fcm_api_url: str = Field(
        default="https://fcm.googleapis.com", validation_alias="NOTIFYHUB_FCM_API_URL"
    )

    @field_validator(
        "email_providers",
        "sms_providers",
        "push_providers",
        "inapp_providers",
        "webhook_allowed_hosts",
        mode="before",
    )
    @classmethod
    def _split_names(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip().lower() for part in value.split(",") if part.strip())
        return value

    @field_validator("provider_rate_limits", mode="before")
    @classmethod
    def _parse_rates(cls, value: object) -> object:
        """``ses=14,twilio=100``: requests per second per provider."""
        if not isinstance(value, str):
            return value
        rates: dict[str, float] = {}
        for part in filter(None, (p.strip() for p in value.split(","))):
            name, _, rate = part.partition("=")
            rates[name.strip().lower()] = float(rate)
        if any(rate <= 0 for rate in rates.values()):
            raise ValueError("a rate must be above 0")
        return rates

    def providers_for(self, channel: Channel) -> tuple[str, ...]:
        """The channel's provider names in failover order ("sink" when the sink was asked for)."""
        if channel in self.sink_channels:
            return ("sink",)
        providers: tuple[str, ...] = getattr(self, f"{channel.value}_providers")
        return providers

    @model_validator(mode="after")
    def _sink_or_providers(self) -> Settings:
        for channel in self.sink_channels:
            field = f"{channel.value}_providers"
            if field in self.model_fields_set and getattr(self, field):
                raise ValueError(
                    f"the {channel} channel is in NOTIFYHUB_SINK_CHANNELS and has providers "
                    f"in NOTIFYHUB_{channel.value.upper()}_PROVIDERS: choose one"
                )
        return self

    @field_validator("send_concurrency", mode="before")
    @classmethod
    def _parse_concurrency(cls, value: object) -> object:
        """``email=5,sms=2``: the channels named are changed, the others keep the default."""
        if not isinstance(value, str):
            return value
        merged = dict(DEFAULT_SEND_CONCURRENCY)
        for part in filter(None, (p.strip() for p in value.split(","))):
            name, _, number = part.partition("=")
            merged[Channel(name.strip())] = int(number)
        if any(n < 1 for n in merged.values()):
            raise ValueError("concurrency must be at least 1")
        return merged

    @field_validator("ses_sns_topic_arns", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return frozenset(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("sink_channels", mode="before")
    @classmethod
    def _split_channels(cls, value: object) -> object:
        if isinstance(value, str):
            if value.strip().lower() in ("all", "*"):
                return frozenset(Channel)
            return frozenset(part.strip() for part in value.split(",") if part.strip())
        return value

    @property
    def idempotency_retention_seconds(self) -> float:
        return self.idempotency_retention_hours * 3600

    def refuse_insecure_secrets(self) -> None:
        """Raise InsecureSecret, naming the setting, when a secret is a shipped default or
        shorter than MIN_SECRET_LENGTH; development mode allows both."""
        if self.development:
            return
        for name in SECRET_SETTINGS:
            value: SecretStr | None = getattr(self, name)
            if value is None:
                continue
            field = type(self).model_fields[name]
            if isinstance(field.default, SecretStr) and value == field.default:
                problem = "is the shipped development default"
            elif len(value.get_secret_value()) < MIN_SECRET_LENGTH:
                problem = f"is shorter than {MIN_SECRET_LENGTH} characters"
            else:
                continue
            raise InsecureSecret(
                f"{field.validation_alias} {problem}: set it to a random value "
                "(openssl rand -hex 32), or NOTIFYHUB_DEVELOPMENT=true on a developer's machine"
            )

    def ws_token_secrets(self) -> tuple[str, ...]:
        """The inbox-token secrets a token may be signed with: the current one first."""
        previous = self.ws_token_previous_secret
        current = self.ws_token_secret.get_secret_value()
        return (current,) if previous is None else (current, previous.get_secret_value())

    def webhook_secret_keys(self) -> tuple[str, ...]:
        """The keys endpoint secrets may be encrypted with: the current one first."""
        previous = self.webhook_secret_previous_key
        current = self.webhook_secret_key.get_secret_value()
        return (current,) if previous is None else (current, previous.get_secret_value())

    def topic(self, name: str) -> str:
        """The full Kafka topic name for one of NotifyHub's topics."""
        return f"{self.topic_prefix}.{name}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once."""
    return Settings()
