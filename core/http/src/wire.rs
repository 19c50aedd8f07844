//! What crosses the wire between a server and its clients, declared once: the
//! server serializes these types and its clients deserialize the same ones.
//! Field names are a contract (see ARCHITECTURE.md): add fields with
//! `#[serde(default)]` so a client keeps reading an older server, never rename.

/// The Accounting API's read-only answers.
pub mod accounting {
    use chrono::NaiveDate;
    use serde::{Deserialize, Serialize};

    /// Which way money moved, as seen from the account.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "lowercase")]
    pub enum Direction {
        /// Out of the account: a purchase, a payment.
        Out,
        /// Into the account.
        In,
        /// Folio named neither party's account and the amount has no sign (also
        /// what a client reads of a direction it does not know).
        #[serde(other)]
        Unknown,
    }

    /// A booked bank transaction.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Transaction {
        /// Folio's transaction id.
        pub id: String,
        /// The Folio event receipts attach to.
        pub event_id: String,
        /// The account it was booked on.
        #[serde(default)]
        pub account_number: String,
        /// Booking date.
        pub booking_date: NaiveDate,
        /// Bank text.
        pub description: String,
        /// Signed as seen from the account, minor units: negative is money out.
        pub amount_minor: i64,
        /// `amount_minor` for people (`-499.00`).
        #[serde(default)]
        pub amount: String,
        /// Which way it went (absent from Accounting APIs before 0.1).
        #[serde(default)]
        pub direction: Option<Direction>,
        /// Currency.
        pub currency: String,
        /// Who was paid.
        #[serde(default)]
        pub creditor: Option<String>,
        /// Receipts already attached.
        pub receipts: usize,
    }

    impl Transaction {
        /// Whether this could be the payment of `amount` (minor units, positive):
        /// money out of that size, or of that size with its direction unknown.
        pub fn could_be_paying(&self, amount: i64) -> bool {
            match self.direction {
                Some(Direction::Unknown) => self.amount_minor.abs() == amount,
                _ => self.amount_minor == -amount,
            }
        }
    }

    /// `GET /folio/transactions`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Transactions {
        /// True when the Accounting API runs against the sandbox.
        #[serde(default)]
        pub sandbox: bool,
        /// The period, inclusive.
        pub from: NaiveDate,
        /// The period, inclusive.
        pub to: NaiveDate,
        /// Ordered by booking date, then id.
        pub transactions: Vec<Transaction>,
    }

    /// One account's balance.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct AccountBalance {
        /// BBAN.
        pub account_number: String,
        /// Name.
        pub name: String,
        /// Folio's kind of account.
        #[serde(default)]
        pub kind: String,
        /// Minor units.
        pub balance_minor: i64,
        /// `balance_minor` for people.
        #[serde(default)]
        pub balance: String,
    }

    /// `GET /folio/balance`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Balance {
        /// True when the Accounting API runs against the sandbox.
        #[serde(default)]
        pub sandbox: bool,
        /// The day the balance is at the end of.
        #[serde(default)]
        pub date: Option<NaiveDate>,
        /// Currency.
        pub currency: String,
        /// Sum, minor units.
        pub total_minor: i64,
        /// `total_minor` for people.
        #[serde(default)]
        pub total: String,
        /// Per account.
        pub accounts: Vec<AccountBalance>,
    }

    /// A purchase registered in Fiken.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Purchase {
        /// Fiken's id.
        pub id: i64,
        /// The supplier's invoice number.
        pub identifier: Option<String>,
        /// Invoice date.
        pub date: Option<NaiveDate>,
        /// Due date.
        pub due_date: Option<NaiveDate>,
        /// Supplier's name.
        pub supplier: Option<String>,
        /// Minor units.
        pub total_minor: i64,
        /// `total_minor` for people.
        pub total: String,
        /// False when Fiken left a line's amounts out (`total_minor` is then a lower bound).
        pub total_known: bool,
        /// Paid.
        pub paid: bool,
        /// Attached documents.
        pub attachments: usize,
    }

    /// `GET /fiken/purchases`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Purchases {
        /// True when the Accounting API runs against the sandbox.
        #[serde(default)]
        pub sandbox: bool,
        /// The period, inclusive.
        pub from: NaiveDate,
        /// The period, inclusive.
        pub to: NaiveDate,
        /// The purchases.
        pub purchases: Vec<Purchase>,
    }

    /// `GET /checks/missing-receipts`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct MissingReceipts {
        /// True when the Accounting API runs against the sandbox.
        #[serde(default)]
        pub sandbox: bool,
        /// Only transactions at least this old.
        pub older_than_days: u64,
        /// And at most this old.
        pub lookback_days: u64,
        /// How many.
        pub count: usize,
        /// Money out (or of unknown direction) with no receipt.
        pub transactions: Vec<Transaction>,
    }

    /// `POST /documents`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct StoredDocument {
        /// Lower-case hex SHA-256: how events refer to it.
        pub sha256: String,
        /// The MIME type found in its content.
        pub content_type: String,
        /// Size in bytes.
        #[serde(default)]
        pub size: usize,
    }
}

/// Review-E's answers that clients read (`bookkeeper policy push|list`).
pub mod review {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Serialize};

    /// One policy of `GET /policies`: in force, or published but not loadable by
    /// this replica (`loaded: false`, with `why`).
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct ListedPolicy {
        /// Its name.
        pub name: String,
        /// Its version.
        pub version: String,
        /// SHA-256 of the component.
        pub digest: String,
        /// `enforcing` or `shadow`.
        pub mode: String,
        /// The proposal types it judges.
        #[serde(default)]
        pub applies_to: Vec<String>,
        /// What it does (loaded policies).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub description: Option<String>,
        /// `upload` or `folder:<file>` (loaded policies).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub source: Option<String>,
        /// Who published it.
        pub published_by: String,
        /// When (loaded policies).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub published_at: Option<DateTime<Utc>>,
        /// Whether this replica could load it.
        pub loaded: bool,
        /// Why it could not (unloaded ones).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub why: Option<String>,
        /// The limits it runs under (absent from a Review-E before per-policy limits).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub limits: Option<ListedLimits>,
        /// The contract version it was built against (`0.1.0`, ...), when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub contract: Option<String>,
    }

    /// The limits one policy runs under, in exact units.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub struct ListedLimits {
        /// Time limit of one evaluation, milliseconds.
        pub deadline_ms: u64,
        /// Memory cap, bytes.
        pub memory_bytes: u64,
        /// Largest component, bytes.
        pub component_bytes: u64,
        /// Most core instances.
        pub core_instances: u32,
    }

    /// `GET /policies`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct PolicyList {
        /// The set, loaded ones first.
        pub policies: Vec<ListedPolicy>,
    }
}

/// Book-E's answers that clients read (`bookkeeper chat`, the demo).
pub mod book_e {
    use serde::{Deserialize, Serialize};

    /// An option Book-E offers when it asks.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Choice {
        /// What the person sees.
        pub label: String,
        /// The command that picks it.
        pub command: String,
    }

    /// `POST /chat`.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    pub struct ChatAnswer {
        /// What Book-E says.
        pub text: String,
        /// The correlation id of the proposal made, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub correlation_id: Option<String>,
        /// The same id under its earlier name. Deprecated: read `correlation_id`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub proposal: Option<String>,
        /// Options to pick from, when asking.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub choices: Vec<Choice>,
    }

    impl ChatAnswer {
        /// The proposal's correlation id, from this release or an earlier one.
        pub fn correlation_id(&self) -> Option<&str> {
            self.correlation_id.as_deref().or(self.proposal.as_deref())
        }
    }

    /// One item of `GET /chat/notifications`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Notification {
        /// Its log position.
        pub position: i64,
        /// The action it is about.
        #[serde(default)]
        pub correlation_id: String,
        /// The same id under its earlier name. Deprecated: read `correlation_id`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub proposal: Option<String>,
        /// What happened, in words.
        pub text: String,
    }

    /// `GET /chat/notifications?after=N`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Notifications {
        /// What happened to the caller's proposals after `N`.
        pub notifications: Vec<Notification>,
        /// The position to ask after next time.
        pub next: i64,
    }
}
