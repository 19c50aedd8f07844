//! The SQL migrations of both backends, embedded in the binary so `bookkeeper
//! migrate` needs nothing but a database URL.

use std::borrow::Cow;

use sqlx::migrate::{Migration, MigrationType, Migrator};

macro_rules! migration {
    ($version:literal, $description:literal, $path:literal) => {
        Migration::new(
            $version,
            Cow::Borrowed($description),
            MigrationType::Simple,
            Cow::Borrowed(include_str!($path)),
            false,
        )
    };
}

/// Migrations for PostgreSQL, in order.
pub fn postgres() -> Migrator {
    migrator(vec![
        migration!(1, "event log", "../../migrations/postgres/0001_event_log.sql"),
        migration!(2, "derived views", "../../migrations/postgres/0002_derived_views.sql"),
        migration!(3, "service roles", "../../migrations/postgres/0003_service_roles.sql"),
        migration!(4, "blobs", "../../migrations/postgres/0004_blobs.sql"),
        migration!(5, "proposal fact indexes", "../../migrations/postgres/0005_proposal_fact_indexes.sql"),
        migration!(6, "execution claims", "../../migrations/postgres/0006_execution_claims.sql"),
        migration!(7, "exact roles", "../../migrations/postgres/0007_exact_roles.sql"),
        migration!(8, "appenders lock", "../../migrations/postgres/0008_appenders_lock.sql"),
        migration!(9, "read models", "../../migrations/postgres/0009_read_models.sql"),
        migration!(10, "proposal facts", "../../migrations/postgres/0010_proposal_facts.sql"),
        migration!(11, "desk sessions", "../../migrations/postgres/0011_desk_sessions.sql"),
        migration!(12, "compiled policies", "../../migrations/postgres/0012_compiled_policies.sql"),
        migration!(13, "document readings", "../../migrations/postgres/0013_document_readings.sql"),
        migration!(14, "compiled policies used", "../../migrations/postgres/0014_compiled_policies_used.sql"),
    ])
}

/// Migrations for SQLite, in order.
pub fn sqlite() -> Migrator {
    migrator(vec![
        migration!(1, "event log", "../../migrations/sqlite/0001_event_log.sql"),
        migration!(2, "derived views", "../../migrations/sqlite/0002_derived_views.sql"),
        migration!(3, "blobs", "../../migrations/sqlite/0003_blobs.sql"),
        migration!(4, "one proposal per action", "../../migrations/sqlite/0004_one_proposal_per_action.sql"),
        migration!(5, "read models", "../../migrations/sqlite/0005_read_models.sql"),
        migration!(6, "proposal facts", "../../migrations/sqlite/0006_proposal_facts.sql"),
        migration!(7, "compiled policies", "../../migrations/sqlite/0007_compiled_policies.sql"),
        migration!(8, "compiled policies used", "../../migrations/sqlite/0008_compiled_policies_used.sql"),
    ])
}

/// The last migration of the previous release, per backend: an upgrade test
/// builds a log with the schema and formats that release wrote.
pub const PREVIOUS_RELEASE: (i64, i64) = (6, 3);

/// The migrations up to and including `version` (the schema of an earlier release).
pub fn up_to(migrator: Migrator, version: i64) -> Migrator {
    let kept: Vec<Migration> = migrator.migrations.iter().filter(|m| m.version <= version).cloned().collect();
    self::migrator(kept)
}

fn migrator(migrations: Vec<Migration>) -> Migrator {
    Migrator { migrations: Cow::Owned(migrations), ignore_missing: false, locking: true, no_tx: false }
}
