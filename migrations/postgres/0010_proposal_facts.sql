-- The facts Review-E gives policies, kept as read models instead of scanned from
-- the log for every proposal (a long history made each decision cost more).
-- Review-E folds every proposal, execution and rejection into these tables in
-- the same transaction that moves its subscription's checkpoint past the event,
-- so the tables always describe the log exactly up to that checkpoint: the facts
-- of the next proposal are the facts as of that proposal. `facts_progress` says
-- how far the tables are folded; when it differs from the checkpoint (this
-- migration, `bookkeeper facts rebuild`), Review-E folds the difference first.
-- Dates and months are ISO text (`YYYY-MM-DD`, `YYYY-MM`), compared as text.
-- Only Review-E's role writes them; the log stays the truth.
CREATE TABLE facts_progress (
    id smallint PRIMARY KEY CHECK (id = 1),
    -- (0, 0): nothing folded yet (before the first event).
    last_transaction_id bigint NOT NULL,
    last_position bigint NOT NULL,
    reset_at timestamptz
);
INSERT INTO facts_progress (id, last_transaction_id, last_position) VALUES (1, 0, 0);

-- Every proposal, with what its facts are keyed by (vendor keys are
-- `org:<number>` and `name:<lower-case name>`).
CREATE TABLE facts_proposals (
    event_id text PRIMARY KEY,
    correlation_id text NOT NULL,
    day text NOT NULL,
    amount_minor bigint,
    vendor_by_name text,
    vendor_by_org text,
    account text,
    invoice_number text
);
CREATE INDEX facts_proposals_by_action ON facts_proposals (correlation_id);

-- Whether an action was executed or rejected (by the events folded so far).
CREATE TABLE facts_actions (
    correlation_id text PRIMARY KEY,
    executed boolean NOT NULL,
    rejected boolean NOT NULL
);

-- Executed proposals per vendor key.
CREATE TABLE facts_vendors (
    vendor text PRIMARY KEY,
    payments bigint NOT NULL,
    total_minor bigint NOT NULL,
    largest_minor bigint,
    last_paid text
);

-- Executed spending per account and month.
CREATE TABLE facts_account_months (
    account text NOT NULL,
    month text NOT NULL,
    total_minor bigint NOT NULL,
    PRIMARY KEY (account, month)
);

-- Per vendor key and invoice number: proposals executed, and proposals neither
-- executed nor rejected.
CREATE TABLE facts_invoices (
    vendor text NOT NULL,
    invoice_number text NOT NULL,
    registered bigint NOT NULL,
    open bigint NOT NULL,
    PRIMARY KEY (vendor, invoice_number)
);

-- Proposals per requester and day.
CREATE TABLE facts_requester_days (
    requested_by text NOT NULL,
    day text NOT NULL,
    proposals bigint NOT NULL,
    PRIMARY KEY (requested_by, day)
);

GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE
    ON facts_progress, facts_proposals, facts_actions, facts_vendors, facts_account_months,
       facts_invoices, facts_requester_days
    TO review_e;
