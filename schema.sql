-- codex-mcp schema, version 1: the founding schema (shared/seed/database-schema.md), verbatim.
-- migrations/ is what the migration runner applies; tests/test_migrations.py proves that applying
-- every migration yields this schema plus the later migrations.

CREATE TABLE instances (
    id TEXT PRIMARY KEY,                    -- "work-123-a1", "review-123-a1", etc.
    type TEXT NOT NULL,                     -- "work", "review", "adhoc"
    status TEXT NOT NULL,                   -- "running", "terminated"

    -- Git/Worktree Info
    worktree_path TEXT NOT NULL,
    branch_name TEXT NOT NULL,
    base_branch TEXT,

    -- Session Info
    tmux_session TEXT NOT NULL,
    claude_pid INTEGER,

    -- GitHub Integration
    issue_number INTEGER,
    pr_number INTEGER,

    -- Timestamps
    created_at DATETIME DEFAULT CURRENT_TIMESTAMP,
    terminated_at DATETIME,

    -- Metadata
    prompt TEXT,
    agent_number INTEGER DEFAULT 1,

    CHECK (status IN ('running', 'terminated'))
);

CREATE TABLE instance_relationships (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    parent_instance TEXT NOT NULL,
    child_instance TEXT NOT NULL,
    relationship_type TEXT NOT NULL,        -- "spawned_review", "created_fork"
    created_at DATETIME DEFAULT CURRENT_TIMESTAMP,

    FOREIGN KEY (parent_instance) REFERENCES instances(id),
    FOREIGN KEY (child_instance) REFERENCES instances(id),

    CHECK (relationship_type IN ('spawned_review', 'created_fork'))
);

CREATE TABLE mcp_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    instance_id TEXT NOT NULL,
    tool_name TEXT NOT NULL,               -- "spawn_review_instance", "create_pull_request"
    success BOOLEAN NOT NULL,
    error_message TEXT,
    metadata TEXT,                         -- JSON with tool-specific data
    timestamp DATETIME DEFAULT CURRENT_TIMESTAMP,

    FOREIGN KEY (instance_id) REFERENCES instances(id)
);

CREATE TABLE github_issues (
    number INTEGER PRIMARY KEY,
    title TEXT NOT NULL,
    body TEXT,
    state TEXT NOT NULL,
    assignee TEXT,
    labels TEXT,                           -- JSON array
    created_at DATETIME,
    updated_at DATETIME,
    synced_at DATETIME DEFAULT CURRENT_TIMESTAMP,

    repo_owner TEXT NOT NULL,
    repo_name TEXT NOT NULL
);

CREATE TABLE user_config (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,                   -- Encrypted for sensitive values
    is_encrypted BOOLEAN DEFAULT FALSE,
    updated_at DATETIME DEFAULT CURRENT_TIMESTAMP
);

-- Instance lookups
CREATE INDEX idx_instances_type_status ON instances(type, status);
CREATE INDEX idx_instances_issue ON instances(issue_number);
CREATE INDEX idx_instances_created ON instances(created_at);

-- Relationships
CREATE INDEX idx_relationships_parent ON instance_relationships(parent_instance);
CREATE INDEX idx_relationships_child ON instance_relationships(child_instance);

-- MCP Events
CREATE INDEX idx_mcp_events_instance ON mcp_events(instance_id);
CREATE INDEX idx_mcp_events_timestamp ON mcp_events(timestamp);

-- GitHub integration
CREATE INDEX idx_github_issues_state ON github_issues(state);
CREATE INDEX idx_github_issues_updated ON github_issues(updated_at);

-- Schema version tracking
CREATE TABLE schema_migrations (
    version INTEGER PRIMARY KEY,
    applied_at DATETIME DEFAULT CURRENT_TIMESTAMP
);

INSERT INTO schema_migrations (version) VALUES (1);
