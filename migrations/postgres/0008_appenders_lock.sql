-- Readers must never pass over an event whose transaction is still running, so
-- they read only below a horizon. Until now the horizon was the oldest
-- transaction running anywhere on the server (pg_snapshot_xmin): an operator's
-- forgotten BEGIN, or any other application's long transaction in another
-- database, held every reader back for as long as it stayed open.
--
-- Now every transaction that appends holds the "appenders" advisory lock
-- (shared; appenders never wait for each other), taken before the transaction
-- has a transaction id. Readers can then bound the horizon by the transactions
-- that hold it (pg_locks), so only transactions that really write the log hold
-- them back. The bound is safe only if the lock was taken before the id, so:
--   * a transaction whose first write is to `events` takes it in this trigger;
--   * a transaction that appends in several statements, or around savepoints,
--     calls bookkeeper_begin_appending() first (before it writes anything);
--   * a transaction that wrote something else first and did neither is refused:
--     it could otherwise commit events below a horizon readers have passed.
-- Rolling back to a savepoint releases a lock taken inside it, and with it the
-- transaction-local marker, so the two stay in step.
CREATE FUNCTION bookkeeper_begin_appending() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('bookkeeper.appending', true) = 'on' THEN
        RETURN;
    END IF;
    IF pg_current_xact_id_if_assigned() IS NOT NULL THEN
        RAISE EXCEPTION 'bookkeeper_begin_appending() must come before the transaction writes anything'
            USING ERRCODE = '55000';
    END IF;
    PERFORM pg_advisory_xact_lock_shared(73640, 1);
    PERFORM set_config('bookkeeper.appending', 'on', true);
END;
$$;

CREATE FUNCTION events_take_appenders_lock() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('bookkeeper.appending', true) = 'on' THEN
        RETURN NULL;
    END IF;
    IF pg_current_xact_id_if_assigned() IS NOT NULL THEN
        RAISE EXCEPTION 'events must be the first thing a transaction writes'
            USING ERRCODE = '55000',
                  HINT = 'append in a transaction of its own, or call SELECT bookkeeper_begin_appending() before writing anything in it';
    END IF;
    PERFORM bookkeeper_begin_appending();
    RETURN NULL;
END;
$$;

CREATE TRIGGER events_appenders_lock
    BEFORE INSERT ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_take_appenders_lock();

GRANT EXECUTE ON FUNCTION bookkeeper_begin_appending() TO PUBLIC;
