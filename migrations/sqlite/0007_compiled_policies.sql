-- Compiled policy components, cached by component digest and engine (see the
-- PostgreSQL migration 12; one process, no roles here).
CREATE TABLE compiled_policies (
    digest TEXT NOT NULL,
    engine TEXT NOT NULL,
    artifact BLOB NOT NULL,
    saved_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (digest, engine)
);
