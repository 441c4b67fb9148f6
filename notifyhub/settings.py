"""The one typed settings object, read from the environment.

Every variable is documented, with its default, in the README's Configuration
section; keep the two in step.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from notifyhub.channels import Channel

# NotifyHub's worker pool sizes per channel.
DEFAULT_SEND_CONCURRENCY = {Channel.EMAIL: 5, Channel.PUSH: 3, Channel.SMS: 2, Channel.INAPP: 5}


class Settings(BaseSettings):
    """NotifyHub's configuration. Unprefixed names follow the services' conventions."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    database_url: SecretStr = SecretStr("postgresql://notifyhub:notifyhub@127.0.0.1:5433/notifyhub")
    redis_url: str = "redis://127.0.0.1:6380/0"

    admin_token: SecretStr = Field(
        default=SecretStr("dev-admin-token"), validation_alias="NOTIFYHUB_ADMIN_TOKEN"
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
    web_host: str = Field(default="127.0.0.1", validation_alias="NOTIFYHUB_WEB_HOST")
    web_port: int = Field(default=8080, ge=1, le=65535, validation_alias="NOTIFYHUB_WEB_PORT")
    data_dir: Path = Field(default=Path(".data/worker"), validation_alias="NOTIFYHUB_DATA_DIR")
    log_level: str = Field(default="info", validation_alias="NOTIFYHUB_LOG_LEVEL")
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

    # Notifications at or above this priority take each stage's priority lane.
    priority_threshold: int = Field(
        default=8, ge=1, le=10, validation_alias="NOTIFYHUB_PRIORITY_THRESHOLD"
    )
    # How long an idempotency key is remembered (HTTP and Kafka alike).
    idempotency_retention_hours: float = Field(
        default=24.0, gt=0, validation_alias="NOTIFYHUB_IDEMPOTENCY_RETENTION_HOURS"
    )
    # Testing hook: a file holding seconds to add to the wall clock (quiet hours, schedules).
    clock_offset_file: Path | None = Field(default=None, validation_alias="NOTIFYHUB_CLOCK_OFFSET_FILE")
    # Per API key, sliding window (NotifyHub's default: 100 requests a minute).
    api_rate_limit: int = Field(default=100, ge=1, validation_alias="NOTIFYHUB_API_RATE_LIMIT")
    api_rate_window_seconds: float = Field(
        default=60.0, gt=0, validation_alias="NOTIFYHUB_API_RATE_WINDOW_SECONDS"
    )
    # When Redis cannot answer: let requests through (true) or refuse them with 503 (false).
    rate_limit_fail_open: bool = Field(default=True, validation_alias="NOTIFYHUB_RATE_LIMIT_FAIL_OPEN")

    # Sends in flight per channel and worker (NotifyHub's worker pools); one recipient's
    # notifications are still sent one at a time, in order.
    send_concurrency: Annotated[dict[Channel, int], NoDecode] = Field(
        default=DEFAULT_SEND_CONCURRENCY, validation_alias="NOTIFYHUB_SEND_CONCURRENCY"
    )

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

    @field_validator("sink_channels", mode="before")
    @classmethod
    def _split_channels(cls, value: object) -> object:
        if isinstance(value, str):
            if value.strip().lower() in ("all", "*"):
                return frozenset(Channel)
            return frozenset(part.strip() for part in value.split(",") if part.strip())
        return value

    def topic(self, name: str) -> str:
        """The full Kafka topic name for one of NotifyHub's topics."""
        return f"{self.topic_prefix}.{name}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once."""
    return Settings()
