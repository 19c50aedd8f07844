-- One proposal per action (embedded backend). SQLite has one writer at a time, so
-- a trigger is enough: a second proposal for a correlation id is refused. History
-- written before may hold pairs; the lifecycle fold says which one counts. A retry
-- of the same event (same event id) is left to the insert's duplicate handling.
CREATE TRIGGER events_one_proposal BEFORE INSERT ON events
WHEN NEW.type IN ('ReceiptAttachmentProposed', 'InvoiceRegistrationProposed')
 AND EXISTS (SELECT 1 FROM events
             WHERE correlation_id = NEW.correlation_id AND event_id <> NEW.event_id
               AND type IN ('ReceiptAttachmentProposed', 'InvoiceRegistrationProposed'))
BEGIN
    SELECT RAISE(ABORT, 'one proposal per action: this correlation id already has a proposal');
END;

-- The derived views name exact types: a `ComplianceCheckApproved` in a proposal's
-- story is no decision. Same names and columns as before.
DROP VIEW approval_rate;
DROP VIEW pending_reviews;
DROP VIEW proposal_states;

CREATE VIEW proposal_states AS
WITH ranked AS (
    SELECT e.*,
           row_number() OVER (PARTITION BY correlation_id ORDER BY transaction_id DESC, position DESC) AS newest
    FROM events e
),
decisions AS (
    SELECT e.*,
           row_number() OVER (PARTITION BY correlation_id ORDER BY transaction_id DESC, position DESC) AS newest
    FROM events e
    WHERE e.type IN ('ReceiptAttachmentApproved', 'InvoiceRegistrationApproved',
                     'ReceiptAttachmentRejected', 'InvoiceRegistrationRejected')
),
proposals AS (
    SELECT e.*,
           row_number() OVER (PARTITION BY correlation_id ORDER BY transaction_id, position) AS oldest
    FROM events e
    WHERE e.type IN ('ReceiptAttachmentProposed', 'InvoiceRegistrationProposed')
)
SELECT p.correlation_id,
       p.type       AS proposal_type,
       p.event_id   AS proposal_event_id,
       p.position   AS proposed_position,
       p.actor      AS proposed_by,
       p.created_at AS proposed_at,
       l.type       AS last_event_type,
       l.actor      AS last_actor,
       l.status     AS state,
       l.created_at AS updated_at,
       d.type       AS decision_type,
       d.actor      AS decided_by,
       d.status     AS decision_status,
       d.created_at AS decided_at
FROM proposals p
JOIN ranked l ON l.correlation_id = p.correlation_id AND l.newest = 1
LEFT JOIN decisions d ON d.correlation_id = p.correlation_id AND d.newest = 1
WHERE p.oldest = 1;

CREATE VIEW pending_reviews AS
SELECT p.correlation_id,
       p.type       AS proposal_type,
       p.event_id   AS proposal_event_id,
       p.position   AS proposed_position,
       p.actor      AS proposed_by,
       p.created_at AS proposed_at,
       p.payload,
       (SELECT max(e.created_at) FROM events e
         WHERE e.correlation_id = p.correlation_id
           AND e.type IN ('ReceiptAttachmentEscalated', 'InvoiceRegistrationEscalated')) IS NOT NULL AS escalated,
       (SELECT max(e.created_at) FROM events e
         WHERE e.correlation_id = p.correlation_id
           AND e.type IN ('ReceiptAttachmentEscalated', 'InvoiceRegistrationEscalated')) AS escalated_at
FROM events p
WHERE p.type IN ('ReceiptAttachmentProposed', 'InvoiceRegistrationProposed')
  AND NOT EXISTS (
      SELECT 1 FROM events q
      WHERE q.correlation_id = p.correlation_id AND q.position < p.position
        AND q.type IN ('ReceiptAttachmentProposed', 'InvoiceRegistrationProposed'))
  AND NOT EXISTS (
      -- A decision counts only if it names this proposal, as the lifecycle fold
      -- reads it: in its payload, else its metadata, else its causation id.
      SELECT 1 FROM events d
      WHERE d.correlation_id = p.correlation_id
        AND d.type IN ('ReceiptAttachmentApproved', 'InvoiceRegistrationApproved',
                       'ReceiptAttachmentRejected', 'InvoiceRegistrationRejected')
        AND coalesce(json_extract(d.payload, '$.proposal_event_id'), json_extract(d.metadata, '$.proposal_event_id'),
                     d.causation_id) = p.event_id);

CREATE VIEW approval_rate AS
WITH latest_decision AS (
    SELECT type, status
    -- The latest decision that names the action's proposal.
    FROM (SELECT d.type, d.status,
                 row_number() OVER (PARTITION BY d.correlation_id ORDER BY d.transaction_id DESC, d.position DESC) AS newest
          FROM events d
          JOIN proposal_states p ON p.correlation_id = d.correlation_id
          WHERE d.type IN ('ReceiptAttachmentApproved', 'InvoiceRegistrationApproved',
                           'ReceiptAttachmentRejected', 'InvoiceRegistrationRejected')
            AND coalesce(json_extract(d.payload, '$.proposal_event_id'), json_extract(d.metadata, '$.proposal_event_id'),
                         d.causation_id) = p.proposal_event_id)
    WHERE newest = 1
)
SELECT count(*) FILTER (WHERE type IN ('ReceiptAttachmentApproved', 'InvoiceRegistrationApproved')) AS approved,
       count(*) FILTER (WHERE status = 'AUTO_APPROVED')       AS auto_approved,
       count(*) FILTER (WHERE type IN ('ReceiptAttachmentRejected', 'InvoiceRegistrationRejected')) AS rejected,
       (SELECT count(*) FROM pending_reviews)                 AS pending,
       (SELECT count(*) FROM pending_reviews WHERE escalated) AS escalated_pending,
       CASE WHEN count(*) = 0 THEN NULL
            ELSE CAST(count(*) FILTER (WHERE type IN ('ReceiptAttachmentApproved', 'InvoiceRegistrationApproved')) AS REAL) / count(*)
       END                                                    AS approval_rate
FROM latest_decision;
