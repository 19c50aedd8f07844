//! Configuration: one table of every setting ([`SETTINGS`]), one loader
//! ([`Settings::load`]: an optional file, then the environment), the same names
//! whether everything runs in one process or each service in its own pod. Each
//! service builds its typed configuration from the [`Settings`] `main` loaded once.

use std::fmt;

use secrecy::ExposeSecret;

use crate::store::DEFAULT_DATABASE_URL;

/// A database URL that never prints its password.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    /// Wraps a URL.
    pub fn new(url: impl Into<String>) -> Self {
        DatabaseUrl(url.into())
    }

    /// The full URL, for connecting. Do not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with any password replaced by `***`, for logs and errors.
    /// Whatever the URL's shape (a user name with `@` in it, a `password=` query
    /// parameter), the password is hidden; a URL that does not parse shows only its
    /// scheme.
    pub fn redacted(&self) -> String {
        let Ok(mut url) = url::Url::parse(&self.0) else {
            let scheme = self.0.split("://").next().filter(|s| s.len() < self.0.len()).unwrap_or("?");
            return format!("{scheme}://(unreadable URL, not shown)");
        };
        if url.password().is_some() {
            let _ = url.set_password(Some("***"));
        }
        if url.query_pairs().any(|(k, _)| k.eq_ignore_ascii_case("password")) {
            let pairs: Vec<(String, String)> = url
                .query_pairs()
                .map(|(k, v)| {
                    let v = if k.eq_ignore_ascii_case("password") { "***".to_string() } else { v.into_owned() };
                    (k.into_owned(), v)
                })
                .collect();
            url.query_pairs_mut().clear().extend_pairs(pairs);
        }
        url.to_string().replace("%2A%2A%2A", "***")
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// One setting: its name (an environment variable, and the same name in the
/// configuration file), what it does, its default and who reads it. [`SETTINGS`]
/// lists every one; docs/configuration.md is rendered from it
/// (`bookkeeper config --markdown`) and a test keeps the two equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    /// The name: a contract, never renamed (a new name is added as an alias).
    pub name: &'static str,
    /// Who reads it: a service, `all`, or `cli`.
    pub read_by: &'static str,
    /// A secret: never printed, only whether it is set.
    pub secret: bool,
    /// The default, in words.
    pub default: &'static str,
    /// What it does.
    pub doc: &'static str,
}

const fn setting(name: &'static str, read_by: &'static str, default: &'static str, doc: &'static str) -> Setting {
    Setting { name, read_by, secret: false, default, doc }
}

const fn secret(name: &'static str, read_by: &'static str, doc: &'static str) -> Setting {
    Setting { name, read_by, secret: true, default: "none", doc }
}

/// Every setting Bookkeeper reads, in the order of docs/configuration.md.
pub const SETTINGS: &[Setting] = &[
    setting("BOOKKEEPER_CONFIG", "all", "none", "A file of `NAME=value` lines with any of these settings; the environment wins over it. A name the file does not know is an error, so a typo is caught at start."),
    Setting { name: "DATABASE_URL", read_by: "all", secret: true, default: "`sqlite://bookkeeper.db`", doc: "`postgres://user[:password]@host/db` or `sqlite://FILE` (`--database-url`). Only the password is secret: `bookkeeper config` prints the rest." },
    setting("BOOKKEEPER_LOG", "all", "`warn`", "Log filter (`info`, `bookkeeper_core=debug`, ...), on stderr."),
    setting("BOOKKEEPER_LOG_FORMAT", "all", "`text`", "`text` or `json` (`--log-format`)."),
    setting("BOOKKEEPER_LEASE_TTL_SECS", "all", "`15`", "How long a dead replica's subscriptions stay claimed before another replica (or its restart) takes over."),
    setting("BOOKKEEPER_PEOPLE", "review-e, book-e", "none", "The people directory: who may review, publish and propose, their token hashes per door and their Discord ids."),
    setting("REVIEW_E_ADDR", "review-e", "`127.0.0.1:8081`", "Where Review-E's HTTP API listens."),
    setting("REVIEW_E_POLICY_DIR", "review-e", "none", "Watched folder: dropping, replacing or removing a `.wasm` publishes, replaces or retires that policy; `*.shadow.wasm` is published in shadow mode."),
    secret("REVIEW_E_REVIEWER_TOKENS", "review-e", "Deprecated (mapped onto the people directory with a warning): `token:name,...` of reviewers."),
    secret("REVIEW_E_AUTHOR_TOKENS", "review-e", "Deprecated (mapped onto the people directory with a warning): `token:name,...` of policy authors."),
    setting("DISCORD_PUBLIC_KEY", "review-e, book-e", "none", "The Discord application's public key (hex): Review-E verifies every review press, Book-E serves the interactions endpoint."),
    setting("DISCORD_GUILD_ID", "review-e, book-e", "required with Discord", "The one Discord server Bookkeeper serves; presses from elsewhere are refused."),
    setting("DISCORD_REVIEWER_ROLE_ID", "review-e, book-e", "required with Discord", "Only members with this role may press Approve/Reject."),
    setting("DISCORD_APPLICATION_ID", "review-e, book-e", "required with `DISCORD_TOKEN`", "The Discord application; a press must be on one of its messages."),
    setting("REVIEW_E_PRESS_WINDOW_SECS", "review-e", "`300`", "How old a signed press may be."),
    secret("REVIEW_E_ASSERTED_PRESS_TOKEN", "review-e", "The token Book-E presents for presses it saw over the gateway (no proof from Discord); unset: refused."),
    setting("REVIEW_E_ALLOW_ASSERTED_PRESSES", "review-e", "`1`", "`0` refuses asserted presses even with the token (the Kubernetes default)."),
    setting("REVIEW_E_POLICY_DEADLINE_MS", "review-e", "`10`", "Time limit of one policy evaluation, for a policy whose author asks for no other (README: \"The limits a policy runs under\"). Set without `REVIEW_E_POLICY_MAX_DEADLINE_MS`, it is also the maximum, as before per-policy limits."),
    setting("REVIEW_E_POLICY_MEMORY_MB", "review-e", "`16`", "Memory cap of one policy evaluation, for a policy whose author asks for no other. Set without `REVIEW_E_POLICY_MAX_MEMORY_MB`, it is also the maximum."),
    setting("REVIEW_E_MAX_POLICY_BYTES", "review-e", "`8388608`", "Largest policy component, for a policy whose author asks for no other. Set without `REVIEW_E_POLICY_MAX_COMPONENT_BYTES`, it is also the maximum (and the largest upload)."),
    setting("REVIEW_E_POLICY_CORE_INSTANCES", "review-e", "`8`", "Core WebAssembly instances one policy may create, for a policy whose author asks for no other."),
    setting("BOOKKEEPER_POLICY_COMPILE_CACHE", "cli", "`~/.cache/bookkeeper/compiled`", "Where `policy build`/`policy test` keep components they compiled, by digest, so a Python or JavaScript policy is compiled once rather than on every run; a folder only you can write (made `0700`). `off`: compile every time."),
    setting("BOOKKEEPER_POLICY_TOOLCHAINS", "cli", "`~/.cache/bookkeeper/toolchains`", "Where `policy build`/`policy test` install componentize-py and componentize-js for Python and JavaScript policies, on first use."),
    setting("BOOKKEEPER_PYTHON", "cli", "`python3`", "The Python that `policy build`/`policy test` make the Python policy toolchain's virtual environment with."),
    setting("REVIEW_E_POLICY_MAX_DEADLINE_MS", "review-e", "`100`", "The most time limit any policy may ask for."),
    setting("REVIEW_E_POLICY_MAX_MEMORY_MB", "review-e", "`64`", "The most memory any policy may ask for (every sandbox slot reserves this much address space)."),
    setting("REVIEW_E_POLICY_MAX_COMPONENT_BYTES", "review-e", "`26214400`", "The largest component any policy may ask for (at most 25 MiB, the largest blob), and the largest upload."),
    setting("REVIEW_E_POLICY_MAX_CORE_INSTANCES", "review-e", "`64`", "The most core instances any policy may ask for (a Python policy needs about 40)."),
    secret("REVIEW_E_DESK_SESSION_KEY", "review-e, cli", "32+ characters that sign the review desk's session cookies and sign-in links; the same on every replica (a Kubernetes Secret). Unset: the desk is off (its pages say how to turn it on); `up` makes one."),
    setting("REVIEW_E_COMPILE_CACHE_KEEP_DAYS", "review-e", "`30`", "Days a compiled policy that no policy in force needs (retired, replaced, another release's engine) stays in the compile cache; checked at start and daily. Thrown away, it is compiled again if ever needed."),
    setting("REVIEW_E_DESK_SESSION_SECS", "review-e", "`28800`", "How long a desk session lasts after sign-in (8 hours)."),
    setting("REVIEW_E_DESK_URL", "review-e, cli", "Review-E's address + `/desk`", "The desk's public address, e.g. `https://books.example.com/desk`: sign-in links point at it, and an `https` address makes session cookies `Secure`."),
    setting("REVIEW_E_DESK_PDFTOPPM", "review-e", "`pdftoppm`", "poppler's PDF renderer: the desk shows PDF pages as PNG images it makes with it; missing, a PDF is offered as a download."),
    setting("ACCOUNTING_API_ADDR", "accounting-api", "`127.0.0.1:8082`", "Where the Accounting API listens."),
    secret("ACCOUNTING_API_TOKEN", "accounting-api, book-e, cron", "16+ characters: every Accounting API route but the health probes and `/openapi.json` needs it as a bearer token; Book-E and the CronJob present it. Required outside the sandbox."),
    setting("ACCOUNTING_API_SANDBOX", "accounting-api", "unset", "`1`: a connector without credentials is its local fake (chosen explicitly, so a missing credential never executes real approvals against a fake). `up` sets it."),
    setting("ACCOUNTING_API_SANDBOX_MIXED", "accounting-api", "unset", "`1`: allow one connector live and the other the sandbox."),
    secret("FIKEN_TOKEN", "accounting-api", "Fiken API token (personal or OAuth access token). Without it and with `ACCOUNTING_API_SANDBOX=1`, Fiken is the sandbox."),
    setting("FIKEN_COMPANY", "accounting-api", "required with `FIKEN_TOKEN`", "The company slug (from `GET /companies`)."),
    setting("FIKEN_BASE_URL", "accounting-api", "`https://api.fiken.no/api/v2`", "Fiken's API."),
    setting("FIKEN_SPACING_MS", "accounting-api", "`250`", "Least time between two Fiken requests (Fiken allows 4 a second, one at a time)."),
    secret("FOLIO_API_KEY", "accounting-api", "Folio API key. Without it and with `ACCOUNTING_API_SANDBOX=1`, Folio is the sandbox."),
    setting("FOLIO_BASE_URL", "accounting-api", "`https://api.folio.no/v2`", "Folio's API."),
    setting("FIKEN_SANDBOX_ADDR", "accounting-api", "a free port", "Where the sandbox Fiken listens, when used."),
    setting("FOLIO_SANDBOX_ADDR", "accounting-api", "a free port", "Where the sandbox Folio listens, when used."),
    setting("ACCOUNTING_API_MAX_ATTEMPTS", "accounting-api", "`5`", "Attempts per action before a retryable failure is final."),
    setting("ACCOUNTING_API_RETRY_BASE_MS", "accounting-api", "`1000`", "First backoff between attempts (full jitter, doubling)."),
    setting("ACCOUNTING_API_RETRY_CAP_MS", "accounting-api", "`60000`", "Longest backoff between attempts."),
    setting("ACCOUNTING_API_HTTP_TIMEOUT_MS", "accounting-api", "`15000`", "Timeout of one call to Fiken or Folio."),
    setting("ACCOUNTING_API_MAX_DOCUMENT_BYTES", "accounting-api", "`20971520` (20 MiB)", "Largest document accepted."),
    setting("ACCOUNTING_API_URL", "book-e, cron", "`http://127.0.0.1:8082`", "The Accounting API, for documents and bank reads."),
    setting("BOOK_E_ADDR", "book-e", "`127.0.0.1:8083`", "Where Book-E's HTTP door listens."),
    secret("BOOK_E_USER_TOKENS", "book-e", "Deprecated (mapped onto the people directory with a warning): `token:user,...`."),
    setting("BOOK_E_MATCH_DAYS", "book-e", "`5`", "Days either side of a receipt's date to look for its transaction."),
    setting("BOOK_E_DEFAULT_ACCOUNT", "book-e", "`6800`", "Expense account of invoices that name none."),
    setting("BOOK_E_READ_DOCUMENTS", "book-e", "`true`", "Read receipts and invoices sent without their fields (poppler-utils, tesseract-ocr and tesseract-ocr-nor on PATH) and ask the sender to confirm; `false` asks for the fields instead."),
    setting("BOOK_E_READING_BUDGET_MS", "book-e", "`1900`", "How long reading one photo or scan may take, in milliseconds, before Book-E answers with what it has and asks for the rest: later opinions are cut short (`0`: the first reading only; at most `60000`)."),
    secret("DISCORD_TOKEN", "book-e", "The bot token. Without it Book-E runs without Discord and says so."),
    setting("DISCORD_FINANCE_CHANNEL_ID", "book-e", "required with Discord", "Where receipts are dropped."),
    setting("DISCORD_REVIEWERS_CHANNEL_ID", "book-e", "required with Discord", "Where escalations go."),
    setting("DISCORD_REPORTS_CHANNEL_ID", "book-e", "the finance channel", "Where compliance summaries go."),
    secret("BOOK_E_ASSERTED_PRESS_TOKEN", "book-e", "Where Discord cannot reach an endpoint, presses come over the gateway and Book-E asserts who pressed with this token (Review-E's `REVIEW_E_ASSERTED_PRESS_TOKEN`)."),
    secret("BOOK_E_REVIEWER_TOKENS", "book-e", "Deprecated: `discord_user_id:review_e_token,...`, Book-E deciding with reviewers' own tokens. Use the interactions endpoint."),
    setting("REVIEW_E_URL", "book-e, cli", "`http://127.0.0.1:8081`", "Review-E's API, for the buttons and `bookkeeper policy push/list`."),
    setting("BOOK_E_DISCORD_API_URL", "book-e", "Discord's", "Discord's REST API base (a local fake in tests)."),
    setting("BOOK_E_WATCH_FINANCE_CHANNEL", "book-e", "`true`", "Read dropped receipts in the finance channel (needs MESSAGE_CONTENT)."),
    setting("BOOK_E_REPORT_ALL_CLEAR", "book-e", "`false`", "Post the compliance summary even when nothing needs attention."),
    setting("CRON_SCHEDULE", "cron", "`0 0 6 * * *`", "Cron expression with seconds (`sec min hour day month weekday`)."),
    setting("CRON_TIMEZONE", "cron", "`Europe/Oslo`", "The schedule's time zone."),
    setting("CRON_RECEIPT_DAYS", "cron", "`7`", "A bank transaction without a receipt is flagged after this many days."),
    setting("CRON_REVIEW_HOURS", "cron", "`24`", "A proposal waiting for a person is flagged after this many hours."),
    setting("CRON_FAILED_DAYS", "cron", "`30`", "Failed executions of the last this many days are listed."),
    setting("CRON_MIN_BALANCE_MINOR", "cron", "`0`", "Flag the bank balance under this (minor units)."),
    setting("CRON_ADDR", "cron", "`127.0.0.1:8085`", "Where `serve cron` answers `/healthz`, `/readyz` and `/metrics`."),
    setting("COST_API_ADDR", "cost-api", "`127.0.0.1:8084`", "Where the Cost API listens."),
    secret("COST_API_TOKEN", "cost-api", "Required (16+ characters): `POST /costs/monthly/report` needs it as a bearer token. `up` makes one."),
    setting("COST_API_CLOSE_CHECK_SECS", "cost-api", "`60`", "How often the Cost API looks for closed months."),
    setting("BOOK_E_URL", "cli", "`http://127.0.0.1:8083`", "Book-E, for `bookkeeper chat` (`--url`)."),
    secret("BOOKKEEPER_TOKEN", "cli", "The caller's token for `bookkeeper chat` and `bookkeeper policy push/list` (`--token`)."),
];

/// The registered setting called `name`.
pub fn find(name: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.name == name)
}

/// A setting whose value cannot be used, or a configuration file that cannot be
/// read. Names the setting, never its value (it may be a secret).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A value of the wrong form.
    #[error("{var} {expected}")]
    Invalid {
        /// The setting.
        var: String,
        /// What it should be.
        expected: &'static str,
    },
    /// The configuration file could not be read.
    #[error("the configuration file {path} could not be read: {why}")]
    File {
        /// The file.
        path: String,
        /// Why.
        why: String,
    },
    /// A line of the configuration file that is not `NAME=value` of a known setting.
    #[error("{path}, line {line}: {why}")]
    FileLine {
        /// The file.
        path: String,
        /// The line, from 1.
        line: usize,
        /// What is wrong with it.
        why: String,
    },
}

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The process environment.
    Environment,
    /// The configuration file (`BOOKKEEPER_CONFIG`).
    File,
    /// A command-line flag (`--database-url`).
    Flag,
    /// Given by the program (`bookkeeper up` makes local tokens).
    Program,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Origin::Environment => "environment",
            Origin::File => "file",
            Origin::Flag => "flag",
            Origin::Program => "program",
        })
    }
}

/// The configuration of this process, loaded once in `main`: the file that
/// `BOOKKEEPER_CONFIG` names (if any), then the environment over it. Services
/// build their typed configuration from it; nothing else reads the environment.
#[derive(Clone, Default)]
pub struct Settings {
    // Every value as a secret: zeroed on drop, never printed by `Debug`; only
    // `effective()` shows them, redacting those marked secret.
    values: std::collections::BTreeMap<&'static str, (secrecy::SecretString, Origin)>,
    file: Option<String>,
}

/// Settings read by the command line's own flags before the configuration is
/// loaded (`--log-format`, `bookkeeper chat --url/--token`, `--config` itself):
/// they come from the environment or the flag, and a file naming them is refused
/// rather than silently ignored.
const ENVIRONMENT_ONLY: [&str; 4] = ["BOOKKEEPER_CONFIG", "BOOKKEEPER_LOG_FORMAT", "BOOK_E_URL", "BOOKKEEPER_TOKEN"];

/// The largest configuration file read.
const MAX_FILE_BYTES: u64 = 1 << 20;

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for (name, value, origin) in self.effective() {
            map.entry(&name, &format!("{value} ({origin})"));
        }
        map.finish()
    }
}

impl Settings {
    /// The process's settings: the file `BOOKKEEPER_CONFIG` names, then the environment.
    pub fn load() -> Result<Settings, ConfigError> {
        Settings::load_from(None)
    }

    /// The process's settings: `file` (or else the one `BOOKKEEPER_CONFIG` names),
    /// then the environment over it.
    pub fn load_from(file: Option<&std::path::Path>) -> Result<Settings, ConfigError> {
        // An empty variable is as good as unset (`X=` in a manifest): it neither
        // overrides the file nor counts as set.
        let env: Vec<(String, String)> = SETTINGS
            .iter()
            .filter_map(|s| std::env::var(s.name).ok().map(|v| (s.name.to_string(), v)))
            .filter(|(_, v)| !v.trim().is_empty())
            .collect();
        let file = match file {
            Some(path) => Some(path.display().to_string()),
            None => env.iter().find(|(k, _)| k == "BOOKKEEPER_CONFIG").map(|(_, v)| v.trim().to_string()),
        };
        let mut settings = Settings::default();
        if let Some(path) = file.filter(|p| !p.is_empty()) {
            let unreadable = |why: String| ConfigError::File { path: path.clone(), why };
            let file = std::fs::File::open(&path).map_err(|e| unreadable(e.to_string()))?;
            let mut text = String::new();
            use std::io::Read;
            file.take(MAX_FILE_BYTES + 1).read_to_string(&mut text).map_err(|e| unreadable(e.to_string()))?;
            if text.len() as u64 > MAX_FILE_BYTES {
                return Err(unreadable(format!("it is larger than {MAX_FILE_BYTES} bytes")));
            }
            settings = Settings::parse_file(&path, &text)?;
        }
        for (name, value) in env {
            settings.set(&name, value, Origin::Environment);
        }
        Ok(settings)
    }

    /// Settings from `NAME=value` lines (`#` starts a comment line; a value may be
    /// quoted). Every name must be a registered setting.
    pub fn parse_file(path: &str, text: &str) -> Result<Settings, ConfigError> {
        let mut settings = Settings { file: Some(path.to_string()), ..Settings::default() };
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |why: String| ConfigError::FileLine { path: path.to_string(), line: i + 1, why };
            let line = line.strip_prefix("export ").unwrap_or(line);
            let Some((name, value)) = line.split_once('=') else {
                return Err(bad("expected NAME=value".into()));
            };
            let name = name.trim();
            // Named only when it looks like a name: a line like `TOKEN: abc=` must
            // not print the secret it holds.
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_') {
                return Err(bad("expected NAME=value, with NAME in capitals (see docs/configuration.md)".into()));
            }
            if find(name).is_none() {
                return Err(bad(format!("`{name}` is not a Bookkeeper setting (see docs/configuration.md)")));
            }
            if ENVIRONMENT_ONLY.contains(&name) {
                return Err(bad(format!("`{name}` is read from the environment or its flag only, not from a file")));
            }
            if settings.values.contains_key(name) {
                return Err(bad(format!("`{name}` is set twice")));
            }
            let value = value.trim();
            let value = ['"', '\'']
                .iter()
                .find_map(|q| value.strip_prefix(*q).and_then(|v| v.strip_suffix(*q)))
                .unwrap_or(value);
            settings.set(name, value.to_string(), Origin::File);
        }
        Ok(settings)
    }

    /// Settings from pairs, as if from the environment (tests, embedded use).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Settings {
        let mut settings = Settings::default();
        for (name, value) in pairs {
            settings.set(name, value.to_string(), Origin::Environment);
        }
        settings
    }

    /// Sets `name` (a registered setting; others are ignored) from `origin`.
    pub fn set(&mut self, name: &str, value: String, origin: Origin) {
        match find(name) {
            Some(s) => {
                self.values.insert(s.name, (secrecy::SecretString::new(value), origin));
            }
            None => debug_assert!(false, "`{name}` is not in config::SETTINGS"),
        }
    }

    /// Sets `name` unless it is set already: a value the program chooses
    /// (`bookkeeper up`'s local tokens), which configuration overrides.
    pub fn or_set(&mut self, name: &str, value: impl Into<String>) {
        if self.text(name).is_none() {
            self.set(name, value.into(), Origin::Program);
        }
    }

    fn raw(&self, name: &str) -> Option<&str> {
        debug_assert!(find(name).is_some(), "`{name}` is not in config::SETTINGS");
        self.values.get(name).map(|(v, _)| v.expose_secret().trim()).filter(|v| !v.is_empty())
    }

    /// A non-empty text setting.
    pub fn text(&self, name: &str) -> Option<String> {
        self.raw(name).map(String::from)
    }

    /// A secret setting. Its value reaches only the code that uses it.
    pub fn secret(&self, name: &str) -> Option<secrecy::SecretString> {
        self.raw(name).map(|v| secrecy::SecretString::new(v.to_string()))
    }

    /// A whole number.
    pub fn number(&self, name: &str) -> Result<Option<u64>, ConfigError> {
        self.parsed(name, "must be a whole number")
    }

    /// A yes/no: `1`, `true`, `yes`, `on` or `0`, `false`, `no`, `off`.
    pub fn flag(&self, name: &str) -> Result<Option<bool>, ConfigError> {
        match self.raw(name).map(str::to_ascii_lowercase).as_deref() {
            None => Ok(None),
            Some("1" | "true" | "yes" | "on") => Ok(Some(true)),
            Some("0" | "false" | "no" | "off") => Ok(Some(false)),
            Some(_) => Err(ConfigError::Invalid { var: name.into(), expected: "must be 1/true/yes or 0/false/no" }),
        }
    }

    /// A value parsed by its type (an address, a time zone, a signed number).
    pub fn parsed<T: std::str::FromStr>(&self, name: &str, expected: &'static str) -> Result<Option<T>, ConfigError> {
        self.raw(name).map(|v| v.parse().map_err(|_| ConfigError::Invalid { var: name.into(), expected })).transpose()
    }

    /// `token:name,...` pairs (empty when unset); see [`parse_tokens`].
    pub fn tokens(&self, name: &str) -> Result<std::collections::HashMap<String, String>, TokenError> {
        parse_tokens(name, self.raw(name).unwrap_or_default())
    }

    /// The database to use: `DATABASE_URL`, or the embedded default.
    pub fn database_url(&self) -> DatabaseUrl {
        match self.raw("DATABASE_URL") {
            Some(url) => DatabaseUrl::new(url),
            None => DatabaseUrl::new(DEFAULT_DATABASE_URL),
        }
    }

    /// The file these settings were read from, if any.
    pub fn file(&self) -> Option<&str> {
        self.file.as_deref()
    }

    /// Every registered setting with its effective value, redacted: a secret
    /// shows only that it is set (the database URL shows all but its password).
    pub fn effective(&self) -> Vec<(&'static str, String, String)> {
        SETTINGS
            .iter()
            .map(|s| match (self.raw(s.name), self.values.get(s.name)) {
                (Some(_), Some((_, origin))) if s.name == "DATABASE_URL" => {
                    (s.name, self.database_url().redacted(), origin.to_string())
                }
                (Some(_), Some((_, origin))) if s.secret => (s.name, "(set, redacted)".to_string(), origin.to_string()),
                (Some(value), Some((_, origin))) => (s.name, value.to_string(), origin.to_string()),
                _ => (s.name, format!("(default: {})", s.default.trim_matches('`')), "default".to_string()),
            })
            .collect()
    }

    /// docs/configuration.md's table of every setting.
    pub fn markdown_table() -> String {
        let mut out = String::from("| Setting | Read by | Secret | Default | What |\n|---|---|---|---|---|\n");
        for s in SETTINGS {
            let secret = if s.secret { "yes" } else { "" };
            out.push_str(&format!("| `{}` | {} | {} | {} | {} |\n", s.name, s.read_by, secret, s.default, s.doc));
        }
        out
    }
}

/// The lease of every subscription of the process (`BOOKKEEPER_LEASE_TTL_SECS`,
/// at least a second; default 15 s).
pub fn lease_ttl(settings: &Settings) -> Result<std::time::Duration, ConfigError> {
    Ok(settings
        .number("BOOKKEEPER_LEASE_TTL_SECS")?
        .map(|s| std::time::Duration::from_secs(s.max(1)))
        .unwrap_or(std::time::Duration::from_secs(15)))
}

/// Bearer tokens mapped to who they stand for, from `token:name,token:name`.
/// Tokens shorter than 16 characters are refused; errors never contain a token.
pub fn parse_tokens(var: &str, text: &str) -> Result<std::collections::HashMap<String, String>, TokenError> {
    text.split(',')
        .filter(|pair| !pair.trim().is_empty())
        .enumerate()
        .map(|(i, pair)| match pair.trim().split_once(':') {
            Some((token, who)) if token.len() >= 16 && !who.is_empty() => Ok((token.to_string(), who.to_string())),
            _ => Err(TokenError { var: var.to_string(), entry: i + 1 }),
        })
        .collect()
}

/// A malformed `token:name` list entry.
#[derive(Debug, thiserror::Error)]
#[error("{var}: entry {entry} must be `token:name` with a token of at least 16 characters")]
pub struct TokenError {
    /// The variable.
    pub var: String,
    /// Which entry, from 1.
    pub entry: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_print() {
        let url = DatabaseUrl::new("postgres://book_e:hunter2@db:5432/bookkeeper");
        assert_eq!(url.to_string(), "postgres://book_e:***@db:5432/bookkeeper");
        assert!(!format!("{url:?}").contains("hunter2"));
        assert_eq!(DatabaseUrl::new("sqlite://x.db").to_string(), "sqlite://x.db");
        // A user name with `@` in it (Azure), an `@` in the password, a query parameter.
        for (raw, secret) in [
            ("postgres://svc%40tenant:hunter2@host/db", "hunter2"),
            ("postgres://svc@tenant:hunter2@host/db", "hunter2"),
            ("postgres://u:p@ss@host/db", "ss"),
            ("postgres://u@host/db?sslmode=require&password=hunter2", "hunter2"),
            ("not a url :hunter2", "hunter2"),
        ] {
            let shown = DatabaseUrl::new(raw).to_string();
            assert!(!shown.contains(secret), "{raw} printed as {shown}");
        }
    }
}

#[cfg(test)]
mod settings_tests {
    use super::*;

    #[test]
    fn the_file_is_read_and_the_environment_wins_over_it() {
        let text = "# local\nCRON_RECEIPT_DAYS=9\nexport COST_API_ADDR=\"127.0.0.1:9999\"\n\nFIKEN_TOKEN='abc'\n";
        let mut s = Settings::parse_file("bk.env", text).unwrap();
        assert_eq!(s.number("CRON_RECEIPT_DAYS").unwrap(), Some(9));
        assert_eq!(s.text("COST_API_ADDR").as_deref(), Some("127.0.0.1:9999"));
        s.set("CRON_RECEIPT_DAYS", "3".into(), Origin::Environment);
        assert_eq!(s.number("CRON_RECEIPT_DAYS").unwrap(), Some(3));
        let shown = s.effective();
        let fiken = shown.iter().find(|(n, _, _)| *n == "FIKEN_TOKEN").unwrap();
        assert_eq!((fiken.1.as_str(), fiken.2.as_str()), ("(set, redacted)", "file"));
        assert!(!format!("{s:?}").contains("abc"), "Debug never shows a secret");
    }

    #[test]
    fn a_typo_in_the_file_is_an_error_that_names_the_line() {
        let e = Settings::parse_file("bk.env", "CRON_RECIEPT_DAYS=9").unwrap_err().to_string();
        assert!(e.contains("line 1") && e.contains("CRON_RECIEPT_DAYS"), "{e}");
        let e = Settings::parse_file("bk.env", "just words").unwrap_err().to_string();
        assert!(e.contains("NAME=value"), "{e}");
        // A line that is not NAME=value is refused without repeating what it holds.
        let e = Settings::parse_file("bk.env", "FIKEN_TOKEN: s3cret==").unwrap_err().to_string();
        assert!(e.contains("line 1") && !e.contains("s3cret"), "{e}");
        let e = Settings::parse_file("bk.env", "CRON_FAILED_DAYS=1\nCRON_FAILED_DAYS=2").unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("set twice"), "{e}");
        let e = Settings::parse_file("bk.env", "BOOKKEEPER_TOKEN=abc").unwrap_err().to_string();
        assert!(e.contains("environment or its flag only") && !e.contains("abc"), "{e}");
        // A byte-order mark and CRLF line ends, as an editor on Windows writes.
        let s = Settings::parse_file("bk.env", "\u{feff}CRON_FAILED_DAYS=4\r\nCRON_REVIEW_HOURS=5\r\n").unwrap();
        assert_eq!((s.number("CRON_FAILED_DAYS").unwrap(), s.number("CRON_REVIEW_HOURS").unwrap()), (Some(4), Some(5)));
    }

    #[test]
    fn bad_values_name_the_setting_and_never_the_value() {
        let s = Settings::from_pairs([("CRON_RECEIPT_DAYS", "seven"), ("ACCOUNTING_API_SANDBOX", "perhaps")]);
        assert_eq!(s.number("CRON_RECEIPT_DAYS").unwrap_err().to_string(), "CRON_RECEIPT_DAYS must be a whole number");
        let e = s.flag("ACCOUNTING_API_SANDBOX").unwrap_err().to_string();
        assert!(e.starts_with("ACCOUNTING_API_SANDBOX") && !e.contains("perhaps"), "{e}");
    }

    #[test]
    fn every_setting_is_listed_once() {
        let mut names: Vec<_> = SETTINGS.iter().map(|s| s.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), SETTINGS.len());
    }
}
