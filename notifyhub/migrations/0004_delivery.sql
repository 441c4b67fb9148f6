-- Delivery reliability: the retrying state, dead letters tied to their notification,
-- and the in-app inbox the in-app provider writes.

-- "retrying" (waiting for the next attempt after a temporary failure) shares
-- "processing"'s rank: a notification moves between the two until a final status.
CREATE OR REPLACE FUNCTION notification_status_rank(status text) RETURNS int
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE status
        WHEN 'pending' THEN 0
        WHEN 'queued' THEN 1
        WHEN 'scheduled' THEN 2
        WHEN 'deferred' THEN 2
        WHEN 'processing' THEN 3
        WHEN 'retrying' THEN 3
        WHEN 'delivered' THEN 4
        WHEN 'failed' THEN 4
        WHEN 'dropped' THEN 4
        WHEN 'cancelled' THEN 4
        ELSE -1
    END
$$;

-- When an admin replays a failed send's dead letter, the notification is reopened; the
-- status events from before that moment (its old "failed" among them, which the events
-- writer may apply late) must not close it again.
ALTER TABLE notifications ADD COLUMN reopened_at timestamptz;

-- A dead letter from a send names its notification, so a replay can reopen it;
-- attempts says how many sends were tried before giving up.
ALTER TABLE dead_letters ADD COLUMN notification_id uuid;
ALTER TABLE dead_letters ADD COLUMN attempts int;
CREATE INDEX dead_letters_channel_idx ON dead_letters (tenant_id, channel, created_at DESC);

-- The in-app inbox: one message per in-app notification (the unique key makes a
-- redelivered send write nothing twice: the provider's own idempotency).
CREATE TABLE inbox_messages (
    id              uuid PRIMARY KEY,
    tenant_id       uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    notification_id uuid NOT NULL,
    recipient_id    text NOT NULL,
    title           text,
    body            text NOT NULL,
    payload         jsonb NOT NULL DEFAULT '{}'::jsonb,
    read_at         timestamptz,
    seen_at         timestamptz,
    archived_at     timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, notification_id)
);
-- Newest first per recipient, with (created_at, id) as the keyset cursor.
CREATE INDEX inbox_messages_recipient_idx
    ON inbox_messages (tenant_id, recipient_id, created_at DESC, id DESC);
