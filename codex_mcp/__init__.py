"""codex-mcp: several coding agents on one repository, coordinated through MCP tools."""

__version__ = "0.1.0"

# The name every MCP config we write gives our server: Claude Code shows tools as mcp__codex__<tool>.
SERVER_NAME = "codex"
