//! The reader on the labelled set (core/reader/testdata/set), with the targets
//! of `bookkeeper bench receipts` as thresholds: PDFs with a text layer all
//! right on total, date and organisation number; photos at least 90 % so, and
//! fewer than 2 % of fields stated wrongly.
//!
//! Needs poppler-utils and tesseract-ocr(-nor); without them the test says so
//! and fails when `BOOKKEEPER_REQUIRE_OCR` is set (CI sets it).

use bookkeeper_reader::labelled::{self, LabelledSet, Medium, Score};
use bookkeeper_reader::Reader;

fn reader() -> Option<Reader> {
    // Every opinion heard: the figures are the reader's, not this machine's speed's
    // (`bookkeeper bench receipts` measures them within the budget).
    let reader = Reader::detect().with_budget(None);
    if reader.has_ocr() && reader.has_pdf() {
        return Some(reader);
    }
    assert!(
        std::env::var_os("BOOKKEEPER_REQUIRE_OCR").is_none(),
        "BOOKKEEPER_REQUIRE_OCR is set but {}",
        reader.describe()
    );
    eprintln!("skipped: {}", reader.describe());
    None
}

fn report(medium: Medium, score: &Score) {
    eprintln!(
        "{}: {} documents, key fields right {:.1} %, wrong and sure {} of {} fields, p50 {:?}",
        medium.name(),
        score.documents,
        score.key_fields_share() * 100.0,
        score.wrong_sure(),
        score.labelled_fields(),
        score.time_percentile(0.5)
    );
    for (field, t) in &score.fields {
        eprintln!(
            "  {field:<20} right {:>3}/{:<3} unsure {:>2} wrong {:>2} absent {:>2}",
            t.right, t.labelled, t.unsure, t.wrong_sure, t.absent
        );
    }
    for (id, m) in &score.mistakes {
        eprintln!("  WRONG {id}: {}", m.join("; "));
    }
    for (id, m) in &score.asked {
        eprintln!("  asked {id}: {}", m.join("; "));
    }
    for (id, why) in &score.failures {
        eprintln!("  FAILED {id}: {why}");
    }
}

fn run(medium: Medium) -> Option<Score> {
    let reader = reader()?;
    let set = LabelledSet::load(&labelled::default_dir()).expect("the labelled set");
    let score = labelled::score(&set, medium, |bytes| {
        reader.read(bytes, set.read_on).map(|r| r.reading).map_err(|e| e.to_string())
    })
    .expect("the set's files");
    report(medium, &score);
    Some(score)
}

#[test]
fn pdfs_with_a_text_layer_are_read_exactly() {
    let Some(score) = run(Medium::Pdf) else { return };
    assert!(score.failures.is_empty());
    assert_eq!(score.key_fields_right, score.documents, "total, date and organisation number on every PDF");
    assert_eq!(score.wrong_sure(), 0, "nothing stated wrongly from exact text");
}

#[test]
fn photos_meet_the_targets() {
    let Some(score) = run(Medium::Photo) else { return };
    // The target (`bookkeeper bench receipts` reports it): 38 of the 42 today.
    assert!(
        score.key_fields_share() >= 0.90,
        "key fields right on {:.1} % of photos",
        score.key_fields_share() * 100.0
    );
    assert!(score.wrong_sure_share() < 0.02, "{} fields stated wrongly", score.wrong_sure());
}

#[test]
fn scans_are_read_through_ocr() {
    let Some(score) = run(Medium::Scan) else { return };
    assert!(score.failures.is_empty());
    assert!(score.key_fields_share() >= 0.75, "key fields right on {:.1} % of scans", score.key_fields_share() * 100.0);
    assert!(score.wrong_sure_share() < 0.02);
}
