//! HEIC photos (what an iPhone saves) are read through `heif-convert`, like any
//! photo; without it the reader says what to install. The photo is the labelled
//! set's receipt-05 encoded as HEIC (core/reader/testdata/heic/README.md).
//!
//! Needs libheif-examples, poppler-utils and tesseract-ocr(-nor); without them the
//! test says so, and fails when `BOOKKEEPER_REQUIRE_OCR` is set (CI sets it).

use bookkeeper_reader::labelled::{self, LabelledSet};
use bookkeeper_reader::{ReadError, Reader};

fn heic() -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/heic/receipt-05.heic");
    std::fs::read(path).expect("the HEIC photo")
}

#[test]
fn a_heic_photo_is_read_as_its_jpeg_is() {
    let reader = Reader::detect().with_budget(None);
    if !(reader.has_ocr() && reader.has_heic()) {
        assert!(std::env::var_os("BOOKKEEPER_REQUIRE_OCR").is_none(), "BOOKKEEPER_REQUIRE_OCR: {}", reader.describe());
        eprintln!("skipped: {}", reader.describe());
        return;
    }
    let set = LabelledSet::load(&labelled::default_dir()).expect("the labelled set");
    let doc = set.documents.iter().find(|d| d.id == "receipt-05").expect("receipt-05");
    let read = reader.read(&heic(), set.read_on).expect("a HEIC photo is read");
    let wrong = doc.key_fields_wrong(&read.reading);
    assert!(wrong.is_empty(), "{wrong:?}: {}", read.text);
}

#[test]
fn without_a_heic_decoder_the_reader_says_what_to_install() {
    let reader = Reader::detect().without_heic();
    let e = reader.read(&heic(), chrono::NaiveDate::from_ymd_opt(2026, 12, 1).unwrap()).unwrap_err();
    assert!(matches!(e, ReadError::Missing { .. }), "{e:?}");
    assert!(e.to_string().contains("libheif-examples"), "{e}");
    assert!(reader.describe().contains("HEIC photos (install libheif-examples)"), "{}", reader.describe());
}
