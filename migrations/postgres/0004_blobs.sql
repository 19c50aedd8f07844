-- Big binary things (receipts, invoice PDFs, policy components) are stored once,
-- content-addressed by SHA-256; events refer to them by hash. Append-only like
-- the log: a hash names its bytes forever.
CREATE TABLE blobs (
    sha256       text        PRIMARY KEY CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    content_type text        NOT NULL CHECK (char_length(content_type) BETWEEN 1 AND 200),
    size         bigint      NOT NULL CHECK (size >= 0),
    bytes        bytea       NOT NULL CHECK (octet_length(bytes) = size),
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION blobs_reject_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'blobs are append-only: % on blobs is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER blobs_no_update BEFORE UPDATE ON blobs FOR EACH STATEMENT EXECUTE FUNCTION blobs_reject_change();
CREATE TRIGGER blobs_no_delete BEFORE DELETE ON blobs FOR EACH STATEMENT EXECUTE FUNCTION blobs_reject_change();
CREATE TRIGGER blobs_no_truncate BEFORE TRUNCATE ON blobs FOR EACH STATEMENT EXECUTE FUNCTION blobs_reject_change();

GRANT SELECT, INSERT ON blobs TO bookkeeper_service;
