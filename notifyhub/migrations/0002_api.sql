-- Templates (versioned, soft-deleted), preferences, device tokens and recipient profiles.

CREATE TABLE templates (
    id                uuid PRIMARY KEY,
    tenant_id         uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name              text NOT NULL CHECK (length(name) BETWEEN 1 AND 255),
    channel           text NOT NULL,
    subject_template  text,
    body_template     text NOT NULL,
    metadata          jsonb NOT NULL DEFAULT '{}'::jsonb,
    version           int NOT NULL DEFAULT 1,
    is_active         boolean NOT NULL DEFAULT true,
    deleted_at        timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
-- A name is unique within a tenant and channel among live templates, so a deleted
-- template's name can be reused and "default" can exist for push and for in-app.
CREATE UNIQUE INDEX templates_name_idx ON templates (tenant_id, channel, name) WHERE deleted_at IS NULL;

-- Every version a template has had, so a notification's rendering can be explained later.
CREATE TABLE template_versions (
    template_id       uuid NOT NULL REFERENCES templates (id) ON DELETE CASCADE,
    version           int NOT NULL,
    subject_template  text,
    body_template     text NOT NULL,
    metadata          jsonb NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (template_id, version)
);

ALTER TABLE notifications ALTER COLUMN template_id TYPE uuid USING template_id::uuid;

CREATE TABLE preferences (
    id                        uuid PRIMARY KEY,
    tenant_id                 uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id                   text NOT NULL,
    channel                   text NOT NULL,
    enabled                   boolean NOT NULL DEFAULT true,
    quiet_hours_start         text,
    quiet_hours_end           text,
    frequency_cap             int CHECK (frequency_cap >= 1),
    frequency_window_minutes  int NOT NULL DEFAULT 60 CHECK (frequency_window_minutes >= 1),
    timezone                  text NOT NULL DEFAULT 'UTC',
    created_at                timestamptz NOT NULL DEFAULT now(),
    updated_at                timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, user_id, channel)
);

CREATE TABLE device_tokens (
    id          uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id     text NOT NULL,
    token       text NOT NULL,
    platform    text NOT NULL,
    is_active   boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, token)
);
CREATE INDEX device_tokens_user_idx ON device_tokens (tenant_id, user_id) WHERE is_active;

CREATE TABLE recipient_profiles (
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id     text NOT NULL,
    email       text,
    phone       text,
    locale      text,
    timezone    text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, user_id)
);

CREATE INDEX notifications_tenant_status_idx ON notifications (tenant_id, status, created_at DESC);
CREATE INDEX notifications_tenant_recipient_idx ON notifications (tenant_id, recipient_id, created_at DESC);
