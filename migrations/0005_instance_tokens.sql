-- Migration 5: per-agent bearer tokens for the shared HTTP server.
-- Only the SHA-256 of a token is stored; the token itself lives in the agent's 0600 MCP config.
ALTER TABLE instances ADD COLUMN token_hash TEXT;
CREATE UNIQUE INDEX idx_instances_token_hash ON instances(token_hash);
