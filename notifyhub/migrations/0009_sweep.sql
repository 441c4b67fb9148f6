-- Every accepted notification reaches a final state: the sweep (agents/sweep.py) re-drives
-- a notification stuck in pending, queued or processing once, and fails it when it is still
-- stuck a while later. redriven_at is when it was re-driven; a replay from the dead-letter
-- queue clears it, with the reopening.
ALTER TABLE notifications ADD COLUMN redriven_at timestamptz;

-- The unfinished notifications only (those in flight: few), oldest update first, so the
-- sweep finds the stuck ones without reading the others. The predicate is the sweep's own
-- (db/notifications.py), spelled the same so the planner can use the index.
CREATE INDEX notifications_unfinished_idx ON notifications (updated_at)
    WHERE status IN ('pending', 'queued', 'processing');
