-- Trust: exact roles, one proposal per action, subscriptions that cannot be
-- squatted, stored documents checked by the database, and timeouts so a lock
-- held elsewhere cannot hang a service for good.
--
-- The lists below are the closed set of event types in core
-- (`bookkeeper_core::roles`); a test checks the two agree, by appending as each
-- role.

-- 1. Each service role may append an exact list of (type, actor, status); no
--    pattern on a type. A person is `user:<id>` with a non-empty id of visible
--    characters.
CREATE FUNCTION bookkeeper_is_person(actor text) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog
    AS $$ SELECT actor ~ '^user:[[:graph:]]+$' $$;

DROP POLICY book_e_proposes ON events;
DROP POLICY review_e_decides ON events;
DROP POLICY accounting_api_executes ON events;
DROP POLICY cron_reports_checks ON events;
DROP POLICY cost_api_reports_costs ON events;

CREATE POLICY book_e_proposes ON events FOR INSERT TO book_e
    WITH CHECK (
        (type IN ('ReceiptAttachmentProposed', 'InvoiceRegistrationProposed')
            AND actor = 'book-e' AND status = 'PROPOSED')
        OR (type = 'SubscriptionEventParked' AND actor = 'book-e' AND status = 'PARKED'));

CREATE POLICY review_e_decides ON events FOR INSERT TO review_e
    WITH CHECK (
        (type IN ('ReceiptAttachmentApproved', 'InvoiceRegistrationApproved')
            AND ((actor = 'system:auto' AND status = 'AUTO_APPROVED')
                 OR (bookkeeper_is_person(actor) AND status = 'APPROVED')))
        OR (type IN ('ReceiptAttachmentRejected', 'InvoiceRegistrationRejected')
            AND (actor = 'system:auto' OR bookkeeper_is_person(actor)) AND status = 'REJECTED')
        OR (type IN ('ReceiptAttachmentEscalated', 'InvoiceRegistrationEscalated')
            AND actor IN ('system:auto', 'review-e') AND status = 'ESCALATED')
        OR (type = 'PolicyPublished' AND (actor = 'review-e' OR bookkeeper_is_person(actor)) AND status = 'PUBLISHED')
        OR (type = 'PolicyRetired' AND (actor = 'review-e' OR bookkeeper_is_person(actor)) AND status = 'RETIRED')
        OR (type = 'SubscriptionEventParked' AND actor = 'review-e' AND status = 'PARKED'));

CREATE POLICY accounting_api_executes ON events FOR INSERT TO accounting_api
    WITH CHECK (
        (type IN ('ReceiptAttachmentExecutionStarted', 'InvoiceRegistrationExecutionStarted')
            AND actor = 'system' AND status = 'EXECUTING')
        OR (type IN ('ReceiptAttachmentExecuted', 'InvoiceRegistrationExecuted')
            AND actor = 'system' AND status = 'EXECUTED')
        OR (type IN ('ReceiptAttachmentExecutionFailed', 'InvoiceRegistrationExecutionFailed')
            AND actor = 'system' AND status = 'FAILED')
        OR (type IN ('ReceiptAttachmentExecutionSkipped', 'InvoiceRegistrationExecutionSkipped')
            AND actor = 'system' AND status = 'SKIPPED')
        OR (type = 'SubscriptionEventParked' AND actor = 'accounting-api' AND status = 'PARKED'));

CREATE POLICY cron_reports_checks ON events FOR INSERT TO cron
    WITH CHECK (type = 'ComplianceCheckCompleted' AND actor = 'cron' AND status = 'COMPLETED');

CREATE POLICY cost_api_reports_costs ON events FOR INSERT TO cost_api
    WITH CHECK (type = 'MonthlyCostReport' AND actor = 'cost-api' AND status = 'REPORTED');

-- 2. One proposal per action. New proposals are unique per correlation id
--    (the index; it sees uncommitted rivals, whatever a writer's snapshot), and
--    none may join an older one (the trigger; history before this migration may
--    hold pairs, and nothing can be deleted: the lifecycle fold says which counts).
DO $$
DECLARE
    horizon bigint := coalesce((SELECT max(position) FROM events), 0);
BEGIN
    EXECUTE format(
        'CREATE UNIQUE INDEX events_one_proposal_per_action ON events (correlation_id) '
        'WHERE type IN (''ReceiptAttachmentProposed'', ''InvoiceRegistrationProposed'') AND position > %s',
        horizon);
    EXECUTE format(
        'CREATE FUNCTION events_refuse_second_proposal() RETURNS trigger LANGUAGE plpgsql '
        -- A fixed search path, temporary schema last: a role's TEMP table named
        -- `events` must not stand in for the log.
        'SET search_path = pg_catalog, public, pg_temp AS $f$ '
        'BEGIN '
        '  IF EXISTS (SELECT 1 FROM public.events WHERE correlation_id = NEW.correlation_id AND position <= %s '
        '             AND event_id <> NEW.event_id '
        '             AND type IN (''ReceiptAttachmentProposed'', ''InvoiceRegistrationProposed'')) THEN '
        '    RAISE EXCEPTION ''one proposal per action: %% already has a proposal'', NEW.correlation_id '
        '      USING ERRCODE = ''unique_violation'', CONSTRAINT = ''events_one_proposal_per_action''; '
        '  END IF; '
        '  RETURN NEW; '
        'END $f$',
        horizon);
END;
$$;

CREATE TRIGGER events_one_proposal BEFORE INSERT ON events
    FOR EACH ROW WHEN (NEW.type IN ('ReceiptAttachmentProposed', 'InvoiceRegistrationProposed'))
    EXECUTE FUNCTION events_refuse_second_proposal();

-- 3. A subscription named for a service belongs to that service's role: no other
--    role may create it first (and keep the service on standby for good) or take
--    it over. A name of no service (`test.*`, `bench.*`) is nobody's to squat.
CREATE FUNCTION bookkeeper_subscription_role(name text) RETURNS name
    LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog
    AS $$
        SELECT CASE split_part(name, '.', 1)
            WHEN 'book-e' THEN 'book_e'
            WHEN 'review-e' THEN 'review_e'
            WHEN 'accounting-api' THEN 'accounting_api'
            WHEN 'cron' THEN 'cron'
            WHEN 'cost-api' THEN 'cost_api'
        END::name
    $$;

-- Rows a service role squatted before this migration: bookkeeping, not events, and
-- never the rightful service's own progress, so they go.
DELETE FROM subscriptions
WHERE bookkeeper_subscription_role(name) IS NOT NULL
  AND owner_role IN ('book_e', 'review_e', 'accounting_api', 'cron', 'cost_api')
  AND owner_role <> bookkeeper_subscription_role(name);

DROP POLICY own_subscriptions ON subscriptions;
CREATE POLICY own_subscriptions ON subscriptions TO bookkeeper_service
    USING (owner_role = current_user)
    WITH CHECK (owner_role = current_user
                AND coalesce(bookkeeper_subscription_role(name) = current_user, true));

-- 4. A stored document is what its hash says (new rows; existing ones were
--    checked by the store when written).
ALTER TABLE blobs ADD CONSTRAINT blobs_hash_matches_bytes
    CHECK (sha256 = encode(sha256(bytes), 'hex')) NOT VALID;

-- 5. A lock held elsewhere (an operator's open transaction, a migration) fails a
--    service's statement after a while instead of hanging it for good; the store
--    treats both timeouts as "try again".
DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['book_e', 'review_e', 'accounting_api', 'cron', 'cost_api'] LOOP
        EXECUTE format('ALTER ROLE %I IN DATABASE %I SET lock_timeout = %L', r, current_database(), '10s');
        EXECUTE format('ALTER ROLE %I IN DATABASE %I SET statement_timeout = %L', r, current_database(), '60s');
        EXECUTE format('ALTER ROLE %I IN DATABASE %I SET idle_in_transaction_session_timeout = %L',
                       r, current_database(), '60s');
    END LOOP;
END;
$$;

-- 6. The derived views name exact types too: a `ComplianceCheckApproved` in a
--    proposal's story is no decision. Same names and columns as before.
CREATE OR REPLACE VIEW proposal_states AS
SELECT p.correlation_id,
       p.type          AS proposal_type,
       p.event_id      AS proposal_event_id,
       p.position      AS proposed_position,
       p.actor         AS proposed_by,
       p.created_at    AS proposed_at,
       l.type          AS last_event_type,
       l.actor         AS last_actor,
       l.status        AS state,
       l.created_at    AS updated_at,
       d.type          AS decision_type,
       d.actor         AS decided_by,
       d.status        AS decision_status,
       d.created_at    AS decided_at
FROM events p
CROSS JOIN LATERAL (
    SELECT e.type, e.actor, e.status, e.created_at
    FROM events e
    WHERE e.correlation_id = p.correlation_id
    ORDER BY e.transaction_id DESC, e.position DESC
    LIMIT 1
) l
LEFT JOIN LATERAL (
    SELECT e.type, e.actor, e.status, e.created_at
    FROM events e
    WHERE e.correlation_id = p.correlation_id
      AND e.type IN ('ReceiptAttachmentApproved', 'InvoiceRegistrationApproved',
                     'ReceiptAttachmentRejected', 'InvoiceRegistrationRejected')
    ORDER BY e.transaction_id DESC, e.position DESC
    LIMIT 1
) d ON true
WHERE p.type IN ('ReceiptAttachmentProposed', 'InvoiceRegistrationProposed')
  AND NOT EXISTS (
      SELECT 1 FROM events q
      WHERE q.correlation_id = p.correlation_id
        AND q.type IN ('ReceiptAttachmentProposed', 'InvoiceRegistrationProposed')
        AND (q.transaction_id, q.position) < (p.transaction_id, p.position));

CREATE OR REPLACE VIEW pending_reviews AS
SELECT p.correlation_id,
       p.type       AS proposal_type,
       p.event_id   AS proposal_event_id,
       p.position   AS proposed_position,
       p.actor      AS proposed_by,
       p.created_at AS proposed_at,
       p.payload,
       esc.escalated_at IS NOT NULL AS escalated,
       esc.escalated_at
FROM events p
LEFT JOIN LATERAL (
    SELECT max(e.created_at) AS escalated_at
    FROM events e
    WHERE e.correlation_id = p.correlation_id
      AND e.type IN ('ReceiptAttachmentEscalated', 'InvoiceRegistrationEscalated')
) esc ON true
WHERE p.type IN ('ReceiptAttachmentProposed', 'InvoiceRegistrationProposed')
  AND NOT EXISTS (
      SELECT 1 FROM events q
      WHERE q.correlation_id = p.correlation_id
        AND q.type IN ('ReceiptAttachmentProposed', 'InvoiceRegistrationProposed')
        AND (q.transaction_id, q.position) < (p.transaction_id, p.position))
  AND NOT EXISTS (
      -- A decision counts only if it names this proposal, as the lifecycle fold
      -- reads it: in its payload, else its metadata, else its causation id.
      SELECT 1 FROM events d
      WHERE d.correlation_id = p.correlation_id
        AND d.type IN ('ReceiptAttachmentApproved', 'InvoiceRegistrationApproved',
                       'ReceiptAttachmentRejected', 'InvoiceRegistrationRejected')
        AND coalesce(d.payload->>'proposal_event_id', d.metadata->>'proposal_event_id', d.causation_id::text)
            = p.event_id::text);

CREATE OR REPLACE VIEW approval_rate AS
WITH latest_decision AS (
    -- The latest decision that names the action's proposal.
    SELECT DISTINCT ON (d.correlation_id) d.correlation_id, d.type, d.status
    FROM events d
    JOIN proposal_states p ON p.correlation_id = d.correlation_id
    WHERE d.type IN ('ReceiptAttachmentApproved', 'InvoiceRegistrationApproved',
                     'ReceiptAttachmentRejected', 'InvoiceRegistrationRejected')
      AND coalesce(d.payload->>'proposal_event_id', d.metadata->>'proposal_event_id', d.causation_id::text)
          = p.proposal_event_id::text
    ORDER BY d.correlation_id, d.transaction_id DESC, d.position DESC
)
SELECT count(*) FILTER (WHERE type IN ('ReceiptAttachmentApproved', 'InvoiceRegistrationApproved')) AS approved,
       count(*) FILTER (WHERE status = 'AUTO_APPROVED')          AS auto_approved,
       count(*) FILTER (WHERE type IN ('ReceiptAttachmentRejected', 'InvoiceRegistrationRejected')) AS rejected,
       (SELECT count(*) FROM pending_reviews)                    AS pending,
       (SELECT count(*) FROM pending_reviews WHERE escalated)    AS escalated_pending,
       CASE WHEN count(*) = 0 THEN NULL
            ELSE (count(*) FILTER (WHERE type IN ('ReceiptAttachmentApproved', 'InvoiceRegistrationApproved')))::double precision / count(*)
       END                                                       AS approval_rate
FROM latest_decision;
