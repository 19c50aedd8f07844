//! Phone photos stored sideways with an EXIF orientation (as most phones save a
//! receipt held upright) are read upright, and a photo turned with no tag to say
//! so is read turned back. The photo is the labelled set's
//! receipt-05, turned a quarter to the left and tagged "turn right to show".
//!
//! Needs tesseract-ocr(-nor); without it the test says so, and fails when
//! `BOOKKEEPER_REQUIRE_OCR` is set (CI sets it).

use bookkeeper_reader::labelled::{self, LabelledSet};
use bookkeeper_reader::Reader;
use image::codecs::jpeg::JpegEncoder;

/// An APP1 segment with one EXIF tag, Orientation = `value` (TIFF, big-endian).
fn exif_orientation(value: u16) -> Vec<u8> {
    let mut tiff = b"MM\0\x2a\0\0\0\x08".to_vec();
    tiff.extend_from_slice(&1u16.to_be_bytes()); // one entry
    tiff.extend_from_slice(&0x0112u16.to_be_bytes()); // Orientation
    tiff.extend_from_slice(&3u16.to_be_bytes()); // SHORT
    tiff.extend_from_slice(&1u32.to_be_bytes()); // one value
    tiff.extend_from_slice(&value.to_be_bytes());
    tiff.extend_from_slice(&[0, 0]);
    tiff.extend_from_slice(&0u32.to_be_bytes()); // no next IFD
    let mut app1 = vec![0xFF, 0xE1];
    app1.extend_from_slice(&((2 + 6 + tiff.len()) as u16).to_be_bytes());
    app1.extend_from_slice(b"Exif\0\0");
    app1.extend_from_slice(&tiff);
    app1
}

#[test]
fn a_photo_stored_sideways_is_read_upright() {
    let reader = Reader::detect().with_budget(None);
    if !reader.has_ocr() {
        assert!(std::env::var_os("BOOKKEEPER_REQUIRE_OCR").is_none(), "BOOKKEEPER_REQUIRE_OCR: {}", reader.describe());
        eprintln!("skipped: {}", reader.describe());
        return;
    }
    let set = LabelledSet::load(&labelled::default_dir()).expect("the labelled set");
    let doc = set.documents.iter().find(|d| d.id == "receipt-05").expect("receipt-05");
    let upright = image::open(labelled::default_dir().join("receipt-05.jpg")).expect("the photo").to_rgb8();
    // Stored a quarter turn to the left; orientation 6 says: turn it right to show it.
    let stored = image::imageops::rotate270(&upright);
    let mut jpeg = Vec::new();
    JpegEncoder::new_with_quality(&mut jpeg, 92).encode_image(&stored).expect("encoded");
    let mut tagged = jpeg[..2].to_vec(); // SOI
    tagged.extend_from_slice(&exif_orientation(6));
    tagged.extend_from_slice(&jpeg[2..]);

    let turned = bookkeeper_reader::decode(&tagged).expect("decoded");
    assert_eq!(turned.dimensions(), upright.dimensions(), "shown upright, as the tag says");
    // Upright, not upside down: nearer the original than the original turned round.
    let grey = image::DynamicImage::ImageRgb8(upright.clone()).to_luma8();
    let distance = |a: &image::GrayImage, b: &image::GrayImage| {
        a.as_raw().iter().zip(b.as_raw()).map(|(x, y)| u64::from(x.abs_diff(*y))).sum::<u64>()
    };
    let upside_down = image::imageops::rotate180(&grey);
    assert!(distance(&turned, &grey) * 4 < distance(&turned, &upside_down), "turned the right way");

    let read = reader.read(&tagged, set.read_on).expect("read");
    let wrong = doc.key_fields_wrong(&read.reading);
    assert!(wrong.is_empty(), "{wrong:?}: {}", read.text);
}

#[test]
fn a_photo_turned_with_no_tag_to_say_so_is_read_turned_back() {
    let reader = Reader::detect().with_budget(None);
    if !reader.has_ocr() {
        assert!(std::env::var_os("BOOKKEEPER_REQUIRE_OCR").is_none(), "BOOKKEEPER_REQUIRE_OCR: {}", reader.describe());
        return;
    }
    let set = LabelledSet::load(&labelled::default_dir()).expect("the labelled set");
    let doc = set.documents.iter().find(|d| d.id == "receipt-05").expect("receipt-05");
    let upright = image::open(labelled::default_dir().join("receipt-05.jpg")).expect("the photo").to_rgb8();
    for (turn, stored) in [
        ("a quarter left", image::imageops::rotate270(&upright)),
        ("a quarter right", image::imageops::rotate90(&upright)),
        ("upside down", image::imageops::rotate180(&upright)),
    ] {
        let mut jpeg = Vec::new();
        JpegEncoder::new_with_quality(&mut jpeg, 92).encode_image(&stored).expect("encoded");
        let read = reader.read(&jpeg, set.read_on).expect("read");
        assert!(read.passes > 1, "{turn}: read turned back, not on the first pass");
        let wrong = doc.key_fields_wrong(&read.reading);
        assert!(wrong.is_empty(), "{turn}: {wrong:?}: {}", read.text);
    }
}
