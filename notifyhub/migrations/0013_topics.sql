-- Topics: a tenant's named lists of recipients, and the sends fanned out to them.
CREATE TABLE topics (
    id               uuid PRIMARY KEY,
    tenant_id        uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    key              text NOT NULL,
    name             text NOT NULL,
    -- Kept with each subscribe and unsubscribe (under the topic's row lock), so the cap
    -- and the count a send answers with need no count over a million rows.
    subscriber_count integer NOT NULL DEFAULT 0 CHECK (subscriber_count >= 0),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, key)
);
CREATE INDEX topics_tenant_created_idx ON topics (tenant_id, created_at, id);

-- The primary key is the fan-out's keyset order: (topic, recipient) walked by recipient id.
CREATE TABLE topic_subscribers (
    topic_id      uuid NOT NULL REFERENCES topics (id) ON DELETE CASCADE,
    recipient_id  text NOT NULL,
    subscribed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic_id, recipient_id)
);

-- One send to a topic and how far its fan-out has walked the subscribers. ``step`` counts
-- the chunks done; the fan-out record for step N is acted on only while the row is at N,
-- so a record read twice never starts a second walk.
CREATE TABLE topic_sends (
    id                uuid PRIMARY KEY,
    tenant_id         uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    topic_id          uuid NOT NULL REFERENCES topics (id) ON DELETE CASCADE,
    type              text,
    channel           text NOT NULL,
    template_id       uuid,
    payload           jsonb NOT NULL DEFAULT '{}'::jsonb,
    priority          smallint NOT NULL CHECK (priority BETWEEN 1 AND 10),
    locale            text,
    subscriber_count  integer NOT NULL,
    status            text NOT NULL DEFAULT 'fanning_out' CHECK (status IN ('fanning_out', 'done')),
    step              integer NOT NULL DEFAULT 0,
    last_recipient_id text,
    stored            integer NOT NULL DEFAULT 0,
    skipped           integer NOT NULL DEFAULT 0,
    created_at        timestamptz NOT NULL DEFAULT now(),
    finished_at       timestamptz
);
CREATE INDEX topic_sends_topic_idx ON topic_sends (topic_id);
