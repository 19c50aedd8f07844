//! The floor the reader is measured against (`bookkeeper bench receipts`):
//! tesseract on the picture as it came, and the regular expressions anyone
//! would write first. No preparation, no cross-checks, every value stated.

use std::path::Path;
use std::sync::LazyLock;

use bookkeeper_core::reading::{Field, Reading};
use chrono::NaiveDate;
use regex::Regex;

use crate::ReadError;

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).unwrap_or_else(|e| panic!("pattern {pattern}: {e}"))
}

static TOTAL: LazyLock<Regex> = LazyLock::new(|| re(r"(?i)(?:total\w*|sum|å betale)\D*?(\d[\d .]*[,.]\d{2})"));
static DATE: LazyLock<Regex> = LazyLock::new(|| re(r"(\d{2})[./](\d{2})[./](\d{4})"));
static ORG: LazyLock<Regex> = LazyLock::new(|| re(r"(?i)org\D{0,12}(\d{3}\s?\d{3}\s?\d{3})"));

/// Reads text with the naive expressions: the first match of each, confidence 1.
pub fn read_text(text: &str) -> Reading {
    let total = TOTAL.captures(text).and_then(|c| {
        let t: String = c[1].chars().filter(|c| c.is_ascii_digit()).collect();
        t.parse::<i64>().ok()
    });
    let date = DATE
        .captures(text)
        .and_then(|c| NaiveDate::from_ymd_opt(c[3].parse().ok()?, c[2].parse().ok()?, c[1].parse().ok()?));
    let org = ORG.captures(text).map(|c| c[1].chars().filter(|c| c.is_ascii_digit()).collect::<String>());
    Reading {
        total_minor: total.map(|v| Field::new(v, 1.0)),
        date: date.map(|v| Field::new(v, 1.0)),
        organization_number: org.map(|v| Field::new(v, 1.0)),
        ..Reading::default()
    }
}

/// Tesseract on the raw picture (its default page segmentation), then [`read_text`].
pub fn read_picture(tesseract: &Path, picture: &[u8]) -> Result<Reading, ReadError> {
    let text = crate::run::output(
        tesseract,
        &["stdin", "stdout", "-l", "nor+eng"],
        Some(picture),
        std::time::Duration::from_secs(60),
    )?;
    Ok(read_text(&String::from_utf8_lossy(&text)))
}
