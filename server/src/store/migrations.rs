//! The schema, embedded in the binary (no migration files to ship, no sqlx macros to build).

use std::borrow::Cow;

use sqlx::SqlStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "chats", include_str!("../../migrations/0001_chats.sql")),
    (2, "vote assessments", include_str!("../../migrations/0002_vote_assessments.sql")),
    (3, "background responses", include_str!("../../migrations/0003_background_responses.sql")),
    (4, "answer response", include_str!("../../migrations/0004_answer_response.sql")),
    (5, "responses by user", include_str!("../../migrations/0005_responses_by_user.sql")),
];

pub fn migrator() -> Migrator {
    Migrator::with_migrations(
        MIGRATIONS
            .iter()
            .map(|(version, description, sql)| {
                Migration::new(
                    *version,
                    Cow::Borrowed(*description),
                    MigrationType::Simple,
                    SqlStr::from_static(sql),
                    false,
                )
            })
            .collect(),
    )
}
