-- Compiled policy components, cached by component digest and engine, so a restart
-- or a new Review-E replica loads a large policy in milliseconds instead of
-- compiling it again. A compiled artifact is native code Review-E maps and runs
-- without re-checking it: only Review-E's role may read or write this table (no
-- grant to any other service role; row security keeps even a future grant to
-- the rows its writer owns). The component itself stays in `blobs`, checked by
-- its digest; a row here can always be thrown away and compiled again.
CREATE TABLE compiled_policies (
    owner name NOT NULL DEFAULT current_user,
    digest text NOT NULL,
    engine text NOT NULL,
    artifact bytea NOT NULL,
    saved_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (owner, digest, engine)
);

ALTER TABLE compiled_policies ENABLE ROW LEVEL SECURITY;
CREATE POLICY compiled_policies_own ON compiled_policies
    USING (owner = current_user)
    WITH CHECK (owner = current_user);

REVOKE ALL ON compiled_policies FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE, DELETE ON compiled_policies TO review_e;
