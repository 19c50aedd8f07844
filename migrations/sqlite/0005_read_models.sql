-- Read models a service keeps beside the log, each with the cursor it is
-- complete up to (see the PostgreSQL migration 9; one process, no roles here).
CREATE TABLE read_models (
    name TEXT PRIMARY KEY,
    last_transaction_id INTEGER NOT NULL,
    last_position INTEGER NOT NULL,
    state TEXT NOT NULL,
    saved_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
