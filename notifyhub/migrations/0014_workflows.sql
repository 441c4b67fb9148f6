-- Digests and escalations (issue 17).

-- "digested" is final: the notification was collected into a digest (its reason names
-- the digest), which is sent as a notification of its own.
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
        WHEN 'digested' THEN 4
        ELSE -1
    END
$$;

-- What a notification asked of the pipeline beyond one send ({"digest": ..., "escalate":
-- [...]}), and the locale it asked for: kept so that a notification sent again from its
-- row (the sweep, a replay) is the one that was accepted.
ALTER TABLE notifications ADD COLUMN workflow jsonb;
ALTER TABLE notifications ADD COLUMN locale text;

-- A log row that is not a status change (an escalation step sent, an escalation stopped);
-- its status is the notification's when it happened.
ALTER TABLE delivery_log ADD COLUMN event text;

-- An in-app message whose being seen or read stops an escalation: marking it tells the
-- held stage (only these, so an ordinary read costs nothing more).
ALTER TABLE inbox_messages ADD COLUMN escalates boolean NOT NULL DEFAULT false;
