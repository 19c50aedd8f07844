-- The one shared, append-only event log and what is derived from it.
--
-- Read order: events are read in (transaction_id, position) order, and only
-- below the oldest transaction still running (see ARCHITECTURE.md, "Commit-ordered
-- reads"). transaction_id is the appending transaction's id, set by the database.

CREATE TABLE events (
    position       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    transaction_id bigint      NOT NULL DEFAULT (pg_current_xact_id()::text::bigint),
    event_id       uuid        NOT NULL,
    type           text        NOT NULL,
    actor          text        NOT NULL,
    status         text        NOT NULL,
    correlation_id text        NOT NULL,
    causation_id   uuid,
    payload        jsonb       NOT NULL DEFAULT '{}'::jsonb,
    metadata       jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT events_event_id_unique UNIQUE (event_id),
    CONSTRAINT events_type_valid CHECK (char_length(type) BETWEEN 1 AND 128),
    CONSTRAINT events_actor_valid CHECK (char_length(actor) BETWEEN 1 AND 128),
    CONSTRAINT events_status_valid CHECK (char_length(status) BETWEEN 1 AND 64),
    CONSTRAINT events_correlation_valid CHECK (char_length(correlation_id) BETWEEN 1 AND 200),
    CONSTRAINT events_payload_object CHECK (jsonb_typeof(payload) = 'object'),
    CONSTRAINT events_metadata_object CHECK (jsonb_typeof(metadata) = 'object'),
    -- The exact limits (1 MiB payload, 64 KiB metadata, as JSON text) are checked
    -- before insert; these bound the stored size for writers that bypass that,
    -- without re-serialising every row to text on the server.
    CONSTRAINT events_payload_size CHECK (pg_column_size(payload) <= 2097152),
    CONSTRAINT events_metadata_size CHECK (pg_column_size(metadata) <= 131072)
);

CREATE UNIQUE INDEX events_read_order ON events (transaction_id, position);
CREATE INDEX events_by_correlation ON events (correlation_id, transaction_id, position);

-- Append-only, enforced here rather than by good manners. Statement-level, so an
-- UPDATE or DELETE fails even when it matches no row; TRUNCATE needs its own
-- trigger because row triggers never fire for it.
CREATE FUNCTION events_reject_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the event log is append-only: % on events is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'append a new event that corrects the old one instead';
END;
$$;

CREATE TRIGGER events_no_update BEFORE UPDATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_reject_change();
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_reject_change();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_reject_change();

-- Durable, named subscriptions: where each consumer is, and who holds its lease.
-- This is consumer bookkeeping, not domain state, so it may change in place.
CREATE TABLE subscriptions (
    name                text        PRIMARY KEY,
    owner_role          name        NOT NULL DEFAULT current_user,
    last_transaction_id bigint      NOT NULL DEFAULT 0,
    last_position       bigint      NOT NULL DEFAULT 0,
    handled             bigint      NOT NULL DEFAULT 0,
    lease_holder        text,
    lease_expires_at    timestamptz,
    last_error          text,
    failing_since       timestamptz,
    updated_at          timestamptz NOT NULL DEFAULT now()
);
