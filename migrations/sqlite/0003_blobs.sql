-- Content-addressed binary objects (receipts, invoices, policy components).
CREATE TABLE blobs (
    sha256       TEXT    PRIMARY KEY CHECK (length(sha256) = 64),
    content_type TEXT    NOT NULL CHECK (length(content_type) BETWEEN 1 AND 200),
    size         INTEGER NOT NULL CHECK (size >= 0),
    bytes        BLOB    NOT NULL CHECK (length(bytes) = size),
    created_at   TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE TRIGGER blobs_no_update BEFORE UPDATE ON blobs
BEGIN
    SELECT RAISE(ABORT, 'blobs are append-only: UPDATE on blobs is not allowed');
END;

CREATE TRIGGER blobs_no_delete BEFORE DELETE ON blobs
BEGIN
    SELECT RAISE(ABORT, 'blobs are append-only: DELETE on blobs is not allowed');
END;
