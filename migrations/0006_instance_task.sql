-- Migration 6: the task an instance was given (issue text and the person's prompt, a fork's
-- instructions, a reviewer's brief request), stored on its own rather than parsed back out of the
-- generated prompt. NULL for instances created before this migration.
ALTER TABLE instances ADD COLUMN task TEXT;
