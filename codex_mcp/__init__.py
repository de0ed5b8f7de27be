"""codex-mcp: several coding agents on one repository, coordinated through MCP tools."""

__version__ = "0.1.0"
