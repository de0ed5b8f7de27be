-- Migration 4: GitHub pull requests and the incremental issue sync.
-- pr_url / pr_state: the pull request opened for an instance's branch, as last seen
--   (pr_state: open, closed or merged; refreshed by an issue sync).
ALTER TABLE instances ADD COLUMN pr_url TEXT;
ALTER TABLE instances ADD COLUMN pr_state TEXT;

-- One row per page of the issue listing last fetched: its ETag (for If-None-Match, so an unchanged
-- repository costs only 304s) and the next page GitHub pointed to (a 304 carries no items).
CREATE TABLE github_sync_pages (
    request TEXT PRIMARY KEY,              -- "owner/name issues?<query>" (never a token)
    etag TEXT NOT NULL,
    next_request TEXT,                     -- the rel="next" page's query, NULL on the last page
    fetched_at DATETIME DEFAULT CURRENT_TIMESTAMP
);
