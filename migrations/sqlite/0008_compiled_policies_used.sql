-- When each compiled policy was last needed (see the PostgreSQL migration 14).
-- SQLite cannot add a column with a non-constant default: rows already there
-- take their save time, and every write sets it from here on.
ALTER TABLE compiled_policies ADD COLUMN used_at TEXT NOT NULL DEFAULT '';
UPDATE compiled_policies SET used_at = saved_at;
