//! Going-live checks (`bookkeeper connect fiken|folio|discord`): read-only
//! calls a new user runs with real credentials before anything else, each
//! saying what it found or what to do.

use std::fmt;

/// How one check went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It holds; what was found.
    Passed(String),
    /// It does not: what is wrong, and what to do about it.
    Failed {
        /// What is wrong.
        problem: String,
        /// What to do.
        fix: String,
    },
    /// Not run: an earlier check it needs failed.
    Skipped,
}

/// One check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// What is checked, in a few words.
    pub name: &'static str,
    /// How it went.
    pub outcome: Outcome,
}

/// Every check of one system, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// `Fiken`, `Folio`, `Discord`.
    pub system: &'static str,
    /// The checks, in the order they ran.
    pub checks: Vec<Check>,
}

impl Report {
    /// A report with no checks yet.
    pub fn new(system: &'static str) -> Report {
        Report { system, checks: Vec::new() }
    }

    /// Whether every check passed.
    pub fn passed(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|c| matches!(c.outcome, Outcome::Passed(_)))
    }

    /// Whether any check failed (later ones are then skipped).
    pub fn failed(&self) -> bool {
        self.checks.iter().any(|c| matches!(c.outcome, Outcome::Failed { .. }))
    }

    /// Records a passed check.
    pub fn pass(&mut self, name: &'static str, found: impl Into<String>) {
        self.checks.push(Check { name, outcome: Outcome::Passed(found.into()) });
    }

    /// Records a failed check.
    pub fn fail(&mut self, name: &'static str, problem: impl Into<String>, fix: impl Into<String>) {
        self.checks.push(Check { name, outcome: Outcome::Failed { problem: problem.into(), fix: fix.into() } });
    }

    /// Records checks not run because an earlier one failed.
    pub fn skip(&mut self, names: &[&'static str]) {
        for name in names {
            self.checks.push(Check { name, outcome: Outcome::Skipped });
        }
    }

    /// The first failure, if any: (problem, fix).
    pub fn first_failure(&self) -> Option<(&str, &str)> {
        self.checks.iter().find_map(|c| match &c.outcome {
            Outcome::Failed { problem, fix } => Some((problem.as_str(), fix.as_str())),
            _ => None,
        })
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in &self.checks {
            match &c.outcome {
                Outcome::Passed(found) => writeln!(f, "ok    {}: {found}", c.name)?,
                Outcome::Failed { problem, fix } => {
                    writeln!(f, "FAIL  {}: {problem}", c.name)?;
                    writeln!(f, "      what to do: {fix}")?;
                }
                Outcome::Skipped => writeln!(f, "skip  {} (needs the checks above)", c.name)?,
            }
        }
        if self.passed() {
            write!(f, "{}: ready.", self.system)
        } else {
            write!(f, "{}: not ready; fix the first FAIL and run this again.", self.system)
        }
    }
}
