-- Migration 7: what the agent is doing, as its own hooks report it (`codex-mcp hook EVENT`).
-- activity: working (in a turn), waiting (needs a person: a permission dialog, a question), idle (its turn
--   ended); NULL: unknown (an agent CLI without hooks, or nothing reported yet).
-- activity_at: when activity last changed, UTC text like every other timestamp.
-- activity_detail: what goes with it (the notification's message, "permission: Bash", "session ended: ...").
-- activity_order: when the reporting hook started (Unix seconds, fractional). Hooks run asynchronously
--   and may finish out of order; a report older than the one recorded is dropped.
ALTER TABLE instances ADD COLUMN activity TEXT CHECK (activity IN ('working', 'waiting', 'idle'));
ALTER TABLE instances ADD COLUMN activity_at DATETIME;
ALTER TABLE instances ADD COLUMN activity_detail TEXT;
ALTER TABLE instances ADD COLUMN activity_order REAL;
