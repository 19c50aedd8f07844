-- The facts Review-E gives policies, kept as read models (see the PostgreSQL
-- migration 10 for what each table holds; one process, no roles here).
CREATE TABLE facts_progress (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    -- (0, 0): nothing folded yet (before the first event).
    last_transaction_id INTEGER NOT NULL,
    last_position INTEGER NOT NULL,
    reset_at TEXT
);
INSERT INTO facts_progress (id, last_transaction_id, last_position) VALUES (1, 0, 0);

-- Every proposal, with what its facts are keyed by (vendor keys are
-- `org:<number>` and `name:<lower-case name>`).
CREATE TABLE facts_proposals (
    event_id TEXT PRIMARY KEY,
    correlation_id TEXT NOT NULL,
    day TEXT NOT NULL,
    amount_minor INTEGER,
    vendor_by_name TEXT,
    vendor_by_org TEXT,
    account TEXT,
    invoice_number TEXT
);
CREATE INDEX facts_proposals_by_action ON facts_proposals (correlation_id);

-- Whether an action was executed or rejected (by the events folded so far).
CREATE TABLE facts_actions (
    correlation_id TEXT PRIMARY KEY,
    executed INTEGER NOT NULL,
    rejected INTEGER NOT NULL
);

-- Executed proposals per vendor key.
CREATE TABLE facts_vendors (
    vendor TEXT PRIMARY KEY,
    payments INTEGER NOT NULL,
    total_minor INTEGER NOT NULL,
    largest_minor INTEGER,
    last_paid TEXT
);

-- Executed spending per account and month.
CREATE TABLE facts_account_months (
    account TEXT NOT NULL,
    month TEXT NOT NULL,
    total_minor INTEGER NOT NULL,
    PRIMARY KEY (account, month)
);

-- Per vendor key and invoice number: proposals executed, and proposals neither
-- executed nor rejected.
CREATE TABLE facts_invoices (
    vendor TEXT NOT NULL,
    invoice_number TEXT NOT NULL,
    registered INTEGER NOT NULL,
    open INTEGER NOT NULL,
    PRIMARY KEY (vendor, invoice_number)
);

-- Proposals per requester and day.
CREATE TABLE facts_requester_days (
    requested_by TEXT NOT NULL,
    day TEXT NOT NULL,
    proposals INTEGER NOT NULL,
    PRIMARY KEY (requested_by, day)
);
