-- The one shared, append-only event log (embedded backend).
--
-- SQLite has one writer at a time and positions are taken inside the write lock,
-- so position order is commit order; transaction_id stays 0 and the read order
-- (transaction_id, position) is plain position order.

CREATE TABLE events (
    position       INTEGER PRIMARY KEY AUTOINCREMENT,
    transaction_id INTEGER NOT NULL DEFAULT 0,
    event_id       TEXT    NOT NULL UNIQUE CHECK (length(event_id) = 36),
    type           TEXT    NOT NULL CHECK (length(type) BETWEEN 1 AND 128),
    actor          TEXT    NOT NULL CHECK (length(actor) BETWEEN 1 AND 128),
    status         TEXT    NOT NULL CHECK (length(status) BETWEEN 1 AND 64),
    correlation_id TEXT    NOT NULL CHECK (length(correlation_id) BETWEEN 1 AND 200),
    causation_id   TEXT,
    payload        TEXT    NOT NULL DEFAULT '{}'
        CHECK (json_valid(payload) AND json_type(payload) = 'object' AND length(CAST(payload AS BLOB)) <= 1048576),
    metadata       TEXT    NOT NULL DEFAULT '{}'
        CHECK (json_valid(metadata) AND json_type(metadata) = 'object' AND length(CAST(metadata AS BLOB)) <= 65536),
    created_at     TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE INDEX events_by_correlation ON events (correlation_id, position);
CREATE INDEX events_by_actor ON events (actor, created_at);

-- Append-only. SQLite has no statement triggers and no TRUNCATE: `DELETE FROM
-- events` is its truncate, and the delete trigger below also disables SQLite's
-- truncate shortcut, so it fails too.
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'the event log is append-only: UPDATE on events is not allowed');
END;

CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN
    SELECT RAISE(ABORT, 'the event log is append-only: DELETE on events is not allowed');
END;

CREATE TABLE subscriptions (
    name                TEXT    PRIMARY KEY,
    owner_role          TEXT    NOT NULL DEFAULT 'embedded',
    last_transaction_id INTEGER NOT NULL DEFAULT 0,
    last_position       INTEGER NOT NULL DEFAULT 0,
    handled             INTEGER NOT NULL DEFAULT 0,
    lease_holder        TEXT,
    lease_expires_at    INTEGER, -- unix milliseconds
    last_error          TEXT,
    failing_since       TEXT,
    updated_at          TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
