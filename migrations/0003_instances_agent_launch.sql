-- Migration 3: what is needed to find and restart an instance's agent.
-- tmux_socket: the `tmux -L` socket its session lives on (NULL: the default server), so reconcile
--   looks on the right server whatever CODEX_MCP_TMUX_SOCKET says today.
-- agent_session_id: the agent's conversation id (Claude Code --session-id), for `codex-mcp resume`.
ALTER TABLE instances ADD COLUMN tmux_socket TEXT;
ALTER TABLE instances ADD COLUMN agent_session_id TEXT;
