//! The labelled set (`core/reader/testdata/set`, made by the `labelled_set`
//! example) and the scoring of a reader on it, shared by the tests and
//! `bookkeeper bench receipts`.
//!
//! A field counts as right only when it is stated (sure) and equal to its label;
//! an unsure value, right or not, is a question to the person; a stated wrong
//! value is the error that matters.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bookkeeper_core::reading::{FieldName, Reading};
use chrono::NaiveDate;
use serde::Deserialize;

/// The set's folder in this repository.
pub fn default_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/set")
}

/// One labelled document.
#[derive(Debug, Clone, Deserialize)]
pub struct Labelled {
    /// `receipt-01`, `invoice-03`.
    pub id: String,
    /// `receipt` or `invoice`.
    pub kind: String,
    /// The PDF with a text layer.
    pub pdf: String,
    /// A photo of it.
    pub photo: String,
    /// A scan of it (an image-only PDF), for some.
    #[serde(default)]
    pub scan: Option<String>,
    /// What it says, by field name.
    pub expected: BTreeMap<String, serde_json::Value>,
}

/// The fields a document must have right to count as read: total, date and
/// organisation number.
pub const KEY_FIELDS: [FieldName; 3] = [FieldName::TotalMinor, FieldName::Date, FieldName::OrganizationNumber];

impl Labelled {
    /// What `reading` does not have right of the [`KEY_FIELDS`] (stated, and equal
    /// to the label); empty when all three are.
    pub fn key_fields_wrong(&self, reading: &Reading) -> Vec<String> {
        KEY_FIELDS
            .iter()
            .filter_map(|&field| {
                let Some(label) = self.expected.get(field.name()).map(label_text) else {
                    return Some(format!("{}: no label", field.name()));
                };
                match reading.get(field) {
                    Some((text, c))
                        if c >= bookkeeper_core::reading::SURE
                            && normalise(field, &text) == normalise(field, &label) =>
                    {
                        None
                    }
                    Some((text, c)) => Some(format!("{}: read {text} ({c:.2}), is {label}", field.name())),
                    None => Some(format!("{}: not read, is {label}", field.name())),
                }
            })
            .collect()
    }
}

/// The set.
#[derive(Debug, Clone, Deserialize)]
pub struct LabelledSet {
    /// The day it is read on (no date on it is later).
    pub read_on: NaiveDate,
    /// Its documents.
    pub documents: Vec<Labelled>,
    #[serde(skip)]
    dir: PathBuf,
}

/// Which copy of each document is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Medium {
    /// PDFs with a text layer.
    Pdf,
    /// Photos.
    Photo,
    /// Scans: PDFs that are only a picture.
    Scan,
}

impl Medium {
    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Medium::Pdf => "PDF (text layer)",
            Medium::Photo => "photo",
            Medium::Scan => "scan (image-only PDF)",
        }
    }
}

impl LabelledSet {
    /// Loads `labels.json` from `dir`.
    pub fn load(dir: &Path) -> Result<LabelledSet, String> {
        let path = dir.join("labels.json");
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut set: LabelledSet = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        set.dir = dir.to_path_buf();
        Ok(set)
    }

    /// The documents of a medium, with their bytes.
    pub fn files(&self, medium: Medium) -> Result<Vec<(&Labelled, Vec<u8>)>, String> {
        self.documents
            .iter()
            .filter_map(|d| match medium {
                Medium::Pdf => Some((d, &d.pdf)),
                Medium::Photo => Some((d, &d.photo)),
                Medium::Scan => d.scan.as_ref().map(|s| (d, s)),
            })
            .map(|(d, name)| {
                let path = self.dir.join(name);
                std::fs::read(&path).map(|b| (d, b)).map_err(|e| format!("{}: {e}", path.display()))
            })
            .collect()
    }
}

/// How one field fared over a medium's documents.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Documents whose label has the field.
    pub labelled: usize,
    /// Stated and right.
    pub right: usize,
    /// Read but unsure (asked), right or wrong.
    pub unsure: usize,
    /// Stated and wrong: the errors that matter.
    pub wrong_sure: usize,
    /// Not read at all.
    pub absent: usize,
}

/// A reader's score on one medium.
#[derive(Debug, Clone, Default)]
pub struct Score {
    /// Documents read.
    pub documents: usize,
    /// Per field.
    pub fields: BTreeMap<FieldName, Tally>,
    /// Documents with total, date and organisation number all stated and right.
    pub key_fields_right: usize,
    /// Documents that could not be read at all, with why.
    pub failures: Vec<(String, String)>,
    /// Time per document, in the set's order.
    pub times: Vec<Duration>,
    /// The documents' ids, in the same order as `times`.
    pub ids: Vec<String>,
    /// Per document, the fields stated wrongly (`field: read, label`).
    pub mistakes: Vec<(String, Vec<String>)>,
    /// Per document, the fields left unsure or not read.
    pub asked: Vec<(String, Vec<String>)>,
}

impl Score {
    /// Fields labelled over all documents.
    pub fn labelled_fields(&self) -> usize {
        self.fields.values().map(|t| t.labelled).sum()
    }

    /// Fields stated wrongly over all documents.
    pub fn wrong_sure(&self) -> usize {
        self.fields.values().map(|t| t.wrong_sure).sum()
    }

    /// The share of documents with the three key fields right.
    pub fn key_fields_share(&self) -> f64 {
        self.key_fields_right as f64 / self.documents.max(1) as f64
    }

    /// The share of labelled fields stated wrongly.
    pub fn wrong_sure_share(&self) -> f64 {
        self.wrong_sure() as f64 / self.labelled_fields().max(1) as f64
    }

    /// The `n` slowest documents, slowest first.
    pub fn slowest(&self, n: usize) -> Vec<(&str, Duration)> {
        let mut all: Vec<(&str, Duration)> =
            self.ids.iter().map(String::as_str).zip(self.times.iter().copied()).collect();
        all.sort_by_key(|d| std::cmp::Reverse(d.1));
        all.truncate(n);
        all
    }

    /// A percentile of the time per document.
    pub fn time_percentile(&self, p: f64) -> Duration {
        let mut t = self.times.clone();
        t.sort();
        if t.is_empty() {
            return Duration::ZERO;
        }
        t[((t.len() - 1) as f64 * p).round() as usize]
    }
}

fn normalise(field: FieldName, text: &str) -> String {
    match field {
        FieldName::Vendor => text.to_lowercase().chars().filter(|c| c.is_alphanumeric()).collect(),
        _ => text.trim().to_string(),
    }
}

fn label_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Reads every document of `medium` with `read` and scores the readings.
pub fn score(
    set: &LabelledSet,
    medium: Medium,
    mut read: impl FnMut(&[u8]) -> Result<Reading, String>,
) -> Result<Score, String> {
    let mut score = Score::default();
    for (doc, bytes) in set.files(medium)? {
        score.documents += 1;
        let started = Instant::now();
        let reading = read(&bytes);
        score.times.push(started.elapsed());
        score.ids.push(doc.id.clone());
        let reading = match reading {
            Ok(r) => r,
            Err(why) => {
                score.failures.push((doc.id.clone(), why));
                Reading::default()
            }
        };
        if doc.key_fields_wrong(&reading).is_empty() {
            score.key_fields_right += 1;
        }
        let mut mistakes = Vec::new();
        let mut asked = Vec::new();
        for (name, value) in &doc.expected {
            let Some(field) = FieldName::parse(name) else { continue };
            let tally = score.fields.entry(field).or_default();
            tally.labelled += 1;
            let expected = normalise(field, &label_text(value));
            match reading.get(field) {
                None => {
                    tally.absent += 1;
                    asked.push(format!("{name}: not read"));
                }
                Some((text, c)) if c < bookkeeper_core::reading::SURE => {
                    tally.unsure += 1;
                    asked.push(format!("{name}: unsure {text} ({c:.2})"));
                }
                Some((text, _)) if normalise(field, &text) == expected => tally.right += 1,
                Some((text, _)) => {
                    tally.wrong_sure += 1;
                    mistakes.push(format!("{name}: read {text}, is {}", label_text(value)));
                }
            }
        }
        if !mistakes.is_empty() {
            score.mistakes.push((doc.id.clone(), mistakes));
        }
        if !asked.is_empty() {
            score.asked.push((doc.id.clone(), asked));
        }
    }
    Ok(score)
}
