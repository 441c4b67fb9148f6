-- Outbound webhooks: tenants' endpoints (secrets encrypted) and a log of every attempt.

CREATE TABLE webhook_endpoints (
    id                uuid PRIMARY KEY,
    tenant_id         uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    url               text NOT NULL,
    -- Fernet (AES-128-CBC + HMAC-SHA256) under NOTIFYHUB_WEBHOOK_SECRET_KEY; never plain text.
    secret_ciphertext bytea NOT NULL,
    events            text[] NOT NULL,
    is_active         boolean NOT NULL DEFAULT true,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_endpoints_tenant_idx ON webhook_endpoints (tenant_id, created_at DESC);

CREATE TABLE webhook_deliveries (
    id            bigserial PRIMARY KEY,
    delivery_id   uuid NOT NULL,
    endpoint_id   uuid NOT NULL,
    tenant_id     uuid NOT NULL,
    event         text NOT NULL,
    attempt       int NOT NULL,
    status_code   int,
    error         text,
    succeeded     boolean NOT NULL,
    duration_ms   double precision NOT NULL,
    attempted_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_deliveries_endpoint_idx ON webhook_deliveries (endpoint_id, attempted_at DESC);
