-- Separation of duties: one database role per service. Each may read the log and
-- append only the event types and actors it owns; none may update or delete
-- (the grants below give no UPDATE/DELETE/TRUNCATE on events, and the triggers in
-- 0001 stop even the owner).
--
-- Roles are cluster-wide, so creating them tolerates their existing already (a
-- second database on the same server, or two migrations racing).
DO $$
DECLARE
    r text;
BEGIN
    BEGIN
        CREATE ROLE bookkeeper_service NOLOGIN;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
    END;
    FOREACH r IN ARRAY ARRAY['book_e', 'review_e', 'accounting_api', 'cron', 'cost_api'] LOOP
        BEGIN
            EXECUTE format('CREATE ROLE %I LOGIN', r);
        EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
        END;
        IF NOT pg_has_role(r, 'bookkeeper_service', 'MEMBER') THEN
            BEGIN
                EXECUTE format('GRANT bookkeeper_service TO %I', r);
            EXCEPTION WHEN unique_violation THEN NULL; -- granted concurrently
            END;
        END IF;
    END LOOP;
END;
$$;

GRANT SELECT ON events, proposal_states, pending_reviews, actor_activity, approval_rate
    TO bookkeeper_service;
-- Column-level INSERT: position, transaction_id and created_at always come from the
-- database, so no writer can place an event behind a reader's checkpoint.
GRANT INSERT (event_id, type, actor, status, correlation_id, causation_id, payload, metadata)
    ON events TO bookkeeper_service;
GRANT SELECT, INSERT, UPDATE ON subscriptions TO bookkeeper_service;
GRANT SELECT ON _sqlx_migrations TO bookkeeper_service;

ALTER TABLE events ENABLE ROW LEVEL SECURITY;

CREATE POLICY services_read_everything ON events FOR SELECT TO bookkeeper_service USING (true);

CREATE POLICY book_e_proposes ON events FOR INSERT TO book_e
    WITH CHECK (type LIKE '%Proposed' AND actor = 'book-e' AND status = 'PROPOSED');

CREATE POLICY review_e_decides ON events FOR INSERT TO review_e
    WITH CHECK (
        ((type LIKE '%Approved' OR type LIKE '%Rejected' OR type LIKE '%Escalated')
            AND (actor IN ('review-e', 'system:auto') OR actor LIKE 'user:_%'))
        OR (type LIKE 'Policy%' AND (actor = 'review-e' OR actor LIKE 'user:_%')));

CREATE POLICY accounting_api_executes ON events FOR INSERT TO accounting_api
    WITH CHECK (
        (type LIKE '%Executed' OR type LIKE '%ExecutionFailed' OR type LIKE '%ExecutionSkipped')
        AND actor IN ('system', 'accounting-api'));

CREATE POLICY cron_reports_checks ON events FOR INSERT TO cron
    WITH CHECK (type LIKE 'ComplianceCheck%' AND actor IN ('cron', 'system:cron'));

CREATE POLICY cost_api_reports_costs ON events FOR INSERT TO cost_api
    WITH CHECK (type = 'MonthlyCostReport' AND actor = 'cost-api');

-- Each service sees and moves only its own subscriptions.
ALTER TABLE subscriptions ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_subscriptions ON subscriptions TO bookkeeper_service
    USING (owner_role = current_user) WITH CHECK (owner_role = current_user);
