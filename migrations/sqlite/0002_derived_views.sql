-- State derived from the log (embedded backend): same views, same columns as on
-- PostgreSQL, written in SQLite's dialect.

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
    WHERE e.type LIKE '%Approved' OR e.type LIKE '%Rejected'
),
proposals AS (
    SELECT e.*,
           row_number() OVER (PARTITION BY correlation_id ORDER BY transaction_id, position) AS oldest
    FROM events e
    WHERE e.type LIKE '%Proposed'
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
         WHERE e.correlation_id = p.correlation_id AND e.type LIKE '%Escalated') IS NOT NULL AS escalated,
       (SELECT max(e.created_at) FROM events e
         WHERE e.correlation_id = p.correlation_id AND e.type LIKE '%Escalated') AS escalated_at
FROM events p
WHERE p.type LIKE '%Proposed'
  AND NOT EXISTS (
      SELECT 1 FROM events d
      WHERE d.correlation_id = p.correlation_id
        AND (d.type LIKE '%Approved' OR d.type LIKE '%Rejected'));

CREATE VIEW actor_activity AS
SELECT actor,
       date(created_at)               AS day,
       count(*)                       AS events,
       count(DISTINCT correlation_id) AS correlations,
       min(created_at)                AS first_at,
       max(created_at)                AS last_at
FROM events
GROUP BY actor, date(created_at);

CREATE VIEW approval_rate AS
WITH latest_decision AS (
    SELECT type, status
    FROM (SELECT type, status,
                 row_number() OVER (PARTITION BY correlation_id ORDER BY transaction_id DESC, position DESC) AS newest
          FROM events
          WHERE type LIKE '%Approved' OR type LIKE '%Rejected')
    WHERE newest = 1
)
SELECT count(*) FILTER (WHERE type LIKE '%Approved')         AS approved,
       count(*) FILTER (WHERE status = 'AUTO_APPROVED')       AS auto_approved,
       count(*) FILTER (WHERE type LIKE '%Rejected')         AS rejected,
       (SELECT count(*) FROM pending_reviews)                 AS pending,
       (SELECT count(*) FROM pending_reviews WHERE escalated) AS escalated_pending,
       CASE WHEN count(*) = 0 THEN NULL
            ELSE CAST(count(*) FILTER (WHERE type LIKE '%Approved') AS REAL) / count(*)
       END                                                    AS approval_rate
FROM latest_decision;
