use bookkeeper_core::NewEvent;
use serde_json::json;

/// Runs each listed async test function (taking `&TestDb`) once per backend.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(db) = bookkeeper_core::testing::TestDb::new(
                        bookkeeper_core::testing::Backend::Postgres).await else { return };
                    super::$name(&db).await;
                    db.cleanup().await;
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(db) = bookkeeper_core::testing::TestDb::new(
                        bookkeeper_core::testing::Backend::Sqlite).await else { return };
                    super::$name(&db).await;
                    db.cleanup().await;
                }
            )*
        }
    };
}

pub fn proposal(correlation: &str) -> NewEvent {
    NewEvent::new("ReceiptAttachmentProposed", "book-e", "PROPOSED", correlation)
        .with_payload(json!({"amount": {"minor": 49900, "currency": "NOK"}}))
}

pub fn decision(correlation: &str, kind: &str, actor: &str, status: &str) -> NewEvent {
    NewEvent::new(format!("ReceiptAttachment{kind}"), actor, status, correlation)
        .with_payload(json!({"reason": format!("{kind} by test")}))
}

/// How long a one-shot read may wait for events held back by an open transaction
/// elsewhere on the server (other tests run concurrently on the same cluster).
pub const PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);
