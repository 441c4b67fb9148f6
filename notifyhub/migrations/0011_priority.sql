-- Priority now ranks urgency as NotifyHub does: 1 is the most urgent, 10 the least.
-- Stored notifications were written with the old meaning (10 the most urgent), so each
-- is turned around once. The runner applies this file once, in the same transaction as
-- its schema_migrations row: a crash leaves neither, and it never runs twice.
UPDATE notifications SET priority = 11 - priority;

COMMENT ON COLUMN notifications.priority IS
    '1 is the most urgent, 10 the least (NotifyHub''s meaning)';
