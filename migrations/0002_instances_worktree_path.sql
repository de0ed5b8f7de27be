-- Migration 2: a server resolves its caller by the worktree its working directory lies in
-- (and `start` checks a path is free) on every start; without this index that is a full scan.
CREATE INDEX idx_instances_worktree_path ON instances(worktree_path);
