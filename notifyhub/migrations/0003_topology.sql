-- Held states (scheduled, deferred), and idempotency keys that expire.

CREATE OR REPLACE FUNCTION notification_status_rank(status text) RETURNS int
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE status
        WHEN 'pending' THEN 0
        WHEN 'queued' THEN 1
        WHEN 'scheduled' THEN 2
        WHEN 'deferred' THEN 2
        WHEN 'processing' THEN 3
        WHEN 'delivered' THEN 4
        WHEN 'failed' THEN 4
        WHEN 'dropped' THEN 4
        WHEN 'cancelled' THEN 4
        ELSE -1
    END
$$;

-- An idempotency key holds its notification for a retention window (24 h by default),
-- after which the same key makes a new notification. The unique index on notifications
-- held keys forever; this table decides instead.
CREATE TABLE idempotency_keys (
    tenant_id        uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    idempotency_key  text NOT NULL,
    notification_id  uuid NOT NULL,
    expires_at       timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, idempotency_key)
);
CREATE INDEX idempotency_keys_expiry_idx ON idempotency_keys (expires_at);

DROP INDEX notifications_idempotency_idx;
CREATE INDEX notifications_idempotency_idx
    ON notifications (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
