-- Read models a service keeps beside the log (the Cost API's ledger, ...), each
-- saved with the cursor it is complete up to, so a restart resumes instead of
-- reading the whole log again. A row belongs to the role that wrote it: a service
-- reads and replaces only its own, and no role can squat another's name (the key
-- includes the owner). The log stays the truth: a read model can always be thrown
-- away and rebuilt from it.
CREATE TABLE read_models (
    owner name NOT NULL DEFAULT current_user,
    name text NOT NULL,
    last_transaction_id bigint NOT NULL,
    last_position bigint NOT NULL,
    state jsonb NOT NULL,
    saved_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (owner, name)
);

ALTER TABLE read_models ENABLE ROW LEVEL SECURITY;
CREATE POLICY read_models_own ON read_models
    USING (owner = current_user)
    WITH CHECK (owner = current_user);

GRANT SELECT, INSERT, UPDATE ON read_models TO book_e, review_e, accounting_api, cron, cost_api;
