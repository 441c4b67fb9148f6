-- Receipts a receiver verified while Kafka would not take them. Twilio never sends a
-- status callback twice, so the receiver keeps the record here and answers the provider;
-- the sweep puts it on the receipts topic once Kafka is back (agents/sweep.py).
-- Each row names its topic, so a deployment publishes only what its own receivers kept.
CREATE TABLE receipt_outbox (
    id          bigserial PRIMARY KEY,
    topic       text NOT NULL,
    message_key bytea,
    message     bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX receipt_outbox_topic_idx ON receipt_outbox (topic, id);
