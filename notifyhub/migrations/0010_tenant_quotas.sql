-- A tenant's own quota on accepted notifications per second (NULL: the deployment's
-- default, NOTIFYHUB_TENANT_NOTIFICATIONS_PER_SECOND).
ALTER TABLE tenants
    ADD COLUMN notifications_per_second integer CHECK (notifications_per_second > 0);
