-- State derived from the log. These are views, never tables beside it.

-- One row per proposal: where it stands now, and its latest decision, if any.
CREATE VIEW proposal_states AS
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
      AND (e.type LIKE '%Approved' OR e.type LIKE '%Rejected')
    ORDER BY e.transaction_id DESC, e.position DESC
    LIMIT 1
) d ON true
WHERE p.type LIKE '%Proposed'
  AND NOT EXISTS (
      -- one proposal per correlation: the first *Proposed event is the proposal
      SELECT 1 FROM events q
      WHERE q.correlation_id = p.correlation_id AND q.type LIKE '%Proposed'
        AND (q.transaction_id, q.position) < (p.transaction_id, p.position));

-- Proposals still waiting for a decision. `status = 'PROPOSED'` alone would also
-- return proposals decided long ago: the log keeps every event, so "pending" is
-- the absence of an approval or rejection, not the presence of a proposal.
CREATE VIEW pending_reviews AS
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
    WHERE e.correlation_id = p.correlation_id AND e.type LIKE '%Escalated'
) esc ON true
WHERE p.type LIKE '%Proposed'
  AND NOT EXISTS (
      SELECT 1 FROM events d
      WHERE d.correlation_id = p.correlation_id
        AND (d.type LIKE '%Approved' OR d.type LIKE '%Rejected'));

-- What each actor did, per day.
CREATE VIEW actor_activity AS
SELECT actor,
       date_trunc('day', created_at) AS day,
       count(*)                      AS events,
       count(DISTINCT correlation_id) AS correlations,
       min(created_at)               AS first_at,
       max(created_at)               AS last_at
FROM events
GROUP BY actor, date_trunc('day', created_at);

-- Approval rate over decided proposals; the latest decision of each proposal counts
-- (an emergency reject after an approval makes it rejected).
CREATE VIEW approval_rate AS
WITH latest_decision AS (
    SELECT DISTINCT ON (correlation_id) correlation_id, type, status
    FROM events
    WHERE type LIKE '%Approved' OR type LIKE '%Rejected'
    ORDER BY correlation_id, transaction_id DESC, position DESC
)
SELECT count(*) FILTER (WHERE type LIKE '%Approved')            AS approved,
       count(*) FILTER (WHERE status = 'AUTO_APPROVED')          AS auto_approved,
       count(*) FILTER (WHERE type LIKE '%Rejected')            AS rejected,
       (SELECT count(*) FROM pending_reviews)                    AS pending,
       (SELECT count(*) FROM pending_reviews WHERE escalated)    AS escalated_pending,
       CASE WHEN count(*) = 0 THEN NULL
            ELSE (count(*) FILTER (WHERE type LIKE '%Approved'))::double precision / count(*)
       END                                                       AS approval_rate
FROM latest_decision;
