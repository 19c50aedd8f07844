-- When each compiled policy was last needed, so Review-E can throw away the ones
-- no policy in force has needed for a while (a Python or JavaScript policy's
-- compilation is tens of megabytes per engine). Rows already there count as used
-- now: none is thrown away sooner than the retention after an upgrade.
ALTER TABLE compiled_policies ADD COLUMN used_at timestamptz NOT NULL DEFAULT now();
