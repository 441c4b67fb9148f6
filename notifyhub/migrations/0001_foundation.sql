-- Tenants, their API keys, notifications, the delivery log and dead letters.

CREATE TABLE tenants (
    id          uuid PRIMARY KEY,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 255),
    is_active   boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Only the SHA-256 of a key is stored; the raw key is shown once, at creation.
CREATE TABLE api_keys (
    id          uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name        text NOT NULL,
    key_hash    text NOT NULL UNIQUE,
    is_active   boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz
);
CREATE INDEX api_keys_tenant_idx ON api_keys (tenant_id);

CREATE TABLE notifications (
    id                uuid PRIMARY KEY,
    tenant_id         uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    idempotency_key   text,
    type              text,
    channel           text NOT NULL,
    recipient_id      text NOT NULL,
    recipient_address text,
    template_id       text,
    payload           jsonb NOT NULL DEFAULT '{}'::jsonb,
    priority          smallint NOT NULL DEFAULT 5 CHECK (priority BETWEEN 1 AND 10),
    status            text NOT NULL,
    status_reason     text,
    scheduled_at      timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
-- Idempotency keys are scoped by tenant: the same key in two tenants is two notifications.
CREATE UNIQUE INDEX notifications_idempotency_idx
    ON notifications (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX notifications_tenant_created_idx ON notifications (tenant_id, created_at DESC, id);

-- Status events may be applied late or twice (at-least-once delivery); a status only
-- ever moves forward along the lifecycle, and a final status never changes.
CREATE FUNCTION notification_status_rank(status text) RETURNS int
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE status
        WHEN 'pending' THEN 0
        WHEN 'queued' THEN 1
        WHEN 'processing' THEN 2
        WHEN 'delivered' THEN 3
        WHEN 'failed' THEN 3
        WHEN 'dropped' THEN 3
        WHEN 'cancelled' THEN 3
        ELSE -1
    END
$$;

CREATE TABLE delivery_log (
    id                  bigserial PRIMARY KEY,
    event_id            uuid NOT NULL UNIQUE,
    notification_id     uuid NOT NULL,
    tenant_id           uuid NOT NULL,
    status              text NOT NULL,
    provider            text,
    provider_message_id text,
    reason              text,
    attempt             int NOT NULL DEFAULT 1,
    occurred_at         timestamptz NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX delivery_log_notification_idx ON delivery_log (notification_id, occurred_at);

-- Messages the pipeline could not process, with the reason, for the admin DLQ API.
CREATE TABLE dead_letters (
    id          uuid PRIMARY KEY,
    tenant_id   uuid,
    source_topic text NOT NULL,
    channel     text,
    reason      text NOT NULL,
    message_key bytea,
    message     bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    replayed_at timestamptz
);
CREATE INDEX dead_letters_tenant_idx ON dead_letters (tenant_id, created_at DESC);
