-- Delivery truth (issue 18): what happened after the provider accepted a message.

-- "sent": the provider accepted it (its status for good when the provider never reports
-- more, as FCM). Receipts move it on: "delivered", "undelivered", "bounced", "failed";
-- a complaint comes after the delivery it complains of, so it ranks above them.
CREATE OR REPLACE FUNCTION notification_status_rank(status text) RETURNS int
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE status
        WHEN 'pending' THEN 0
        WHEN 'queued' THEN 1
        WHEN 'scheduled' THEN 2
        WHEN 'deferred' THEN 2
        WHEN 'processing' THEN 3
        WHEN 'retrying' THEN 3
        WHEN 'sent' THEN 4
        WHEN 'delivered' THEN 5
        WHEN 'undelivered' THEN 5
        WHEN 'bounced' THEN 5
        WHEN 'failed' THEN 5
        WHEN 'dropped' THEN 5
        WHEN 'cancelled' THEN 5
        WHEN 'digested' THEN 5
        WHEN 'complained' THEN 6
        ELSE -1
    END
$$;

-- Receipts name the provider's message id: find the notification it belongs to.
CREATE INDEX delivery_log_provider_message_idx ON delivery_log (provider, provider_message_id)
    WHERE provider_message_id IS NOT NULL;

-- Addresses not to send to: a tenant's (hard bounces, complaints, added by hand), or every
-- tenant's (tenant_id NULL: an SMS STOP to the deployment's shared Twilio sender).
CREATE TABLE suppressions (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id   uuid REFERENCES tenants (id) ON DELETE CASCADE,
    channel     text NOT NULL,
    address     text NOT NULL,
    reason      text NOT NULL,
    source      text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX suppressions_address_idx
    ON suppressions (coalesce(tenant_id, '00000000-0000-0000-0000-000000000000'::uuid), channel, address);
CREATE INDEX suppressions_tenant_idx ON suppressions (tenant_id, created_at, id);

-- What a notification is about, for per-category preferences and unsubscribe links.
ALTER TABLE notifications ADD COLUMN category text;

-- A preference may be for one category of a channel ('' is the channel's own).
ALTER TABLE preferences ADD COLUMN category text NOT NULL DEFAULT '';
ALTER TABLE preferences DROP CONSTRAINT preferences_tenant_id_user_id_channel_key;
ALTER TABLE preferences ADD CONSTRAINT preferences_tenant_id_user_id_channel_category_key
    UNIQUE (tenant_id, user_id, channel, category);
