-- Facts about a proposal look at earlier proposals of the same vendor, account or
-- requester. These partial indexes (proposals only) keep that work proportional
-- to the relevant history instead of the whole log.
CREATE INDEX events_proposal_vendor_name ON events (lower(payload->'vendor'->>'name')) WHERE type LIKE '%Proposed';
CREATE INDEX events_proposal_vendor_org ON events ((payload->'vendor'->>'organization_number')) WHERE type LIKE '%Proposed';
CREATE INDEX events_proposal_account ON events ((payload->>'account')) WHERE type LIKE '%Proposed';
CREATE INDEX events_proposal_requester ON events ((payload->>'requested_by')) WHERE type LIKE '%Proposed';
