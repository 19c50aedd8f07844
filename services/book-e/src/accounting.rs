//! Book-E's view of the Accounting API: its plain-HTTP reads and the documents
//! store, through the one client every service shares. Book-E never asks it to
//! change anything; changes are proposals.

pub use bookkeeper_http::accounting::{AccountingReads, ReadError};
pub use bookkeeper_http::wire::accounting::{AccountBalance, Balance, Direction, StoredDocument, Transaction};
