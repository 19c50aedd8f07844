-- Readers must never pass over an event whose transaction is still running, so
-- they read only below a horizon. Until now the horizon was the oldest
-- transaction running anywhere on the server (pg_snapshot_xmin): an operator's
-- forgotten BEGIN, or any other application's long transaction in another
-- database, held every reader back for as long as it stayed open.
--
-- Now every transaction that appends holds the "appenders" advisory lock
-- (shared; appenders never wait for each other), taken by this trigger before
-- the transaction's first row is written. Readers bound the horizon by the
-- transactions that hold it (pg_locks), so only transactions that really write
-- the log can hold them back. For that bound to be safe a transaction must hold
-- the lock before it has a transaction id, which is true when the events are
-- the first thing it writes (the store always does so). A transaction that wrote
-- something else first is refused: it could otherwise commit events below a
-- horizon readers have passed. (So is one that appends again after rolling an
-- append back to a savepoint, which releases the lock: such a transaction takes
-- the lock itself at its top, `SELECT pg_advisory_xact_lock_shared(73640, 1)`.)
CREATE FUNCTION events_take_appenders_lock() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF pg_current_xact_id_if_assigned() IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM pg_locks
        WHERE pid = pg_backend_pid() AND locktype = 'advisory' AND granted
          AND classid = 73640 AND objid = 1 AND objsubid = 2
    ) THEN
        RAISE EXCEPTION 'events must be the first thing a transaction writes (or take pg_advisory_xact_lock_shared(73640, 1) first)'
            USING ERRCODE = '55000',
                  HINT = 'append in a transaction of its own, or append before writing anything else in it';
    END IF;
    PERFORM pg_advisory_xact_lock_shared(73640, 1);
    RETURN NULL;
END;
$$;

CREATE TRIGGER events_appenders_lock
    BEFORE INSERT ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_take_appenders_lock();
