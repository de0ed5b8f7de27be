-- Migration 8: an instance's work landed by `codex-mcp merge` (or the dashboard's Merge).
-- merged_into: the branch it landed on; merged_at: when, UTC text like every other timestamp;
-- merged_commit: the commit that branch then pointed at. NULL: never merged by codex-mcp.
ALTER TABLE instances ADD COLUMN merged_into TEXT;
ALTER TABLE instances ADD COLUMN merged_at DATETIME;
ALTER TABLE instances ADD COLUMN merged_commit TEXT;
