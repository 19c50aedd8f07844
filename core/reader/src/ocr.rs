//! Tesseract, run as a program: the page in as PNG on standard input, words out
//! as TSV with positions and confidences, laid out again into lines whose
//! columns keep their places (as `pdftotext -layout` does), so labels and the
//! values beside or under them can be paired the same way for both sources.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use image::GrayImage;

use crate::parse::Line;
use crate::ReadError;

/// One word tesseract saw.
#[derive(Debug, Clone)]
struct Word {
    left: u32,
    top: u32,
    width: u32,
    height: u32,
    confidence: f32,
    text: String,
}

/// Recognises a prepared page: its lines, each with the mean confidence of its words.
///
/// `psm` is tesseract's page segmentation mode: 4 (one column of text of varying
/// sizes) reads receipts and invoices best; 6 (one uniform block) is the second
/// opinion, for pages where 4's layout analysis takes text for a picture.
///
/// It gives up after `timeout`, or when `stop` is set.
pub fn recognise(
    tesseract: &Path,
    languages: &str,
    page: &GrayImage,
    psm: u8,
    timeout: Duration,
    stop: Option<&AtomicBool>,
) -> Result<Vec<Line>, ReadError> {
    let png = png(page)?;
    let psm = psm.to_string();
    let tsv = crate::run::output_unless(
        tesseract,
        &["stdin", "stdout", "-l", languages, "--psm", &psm, "-c", "preserve_interword_spaces=1", "tsv"],
        Some(&png),
        timeout,
        stop,
    )?;
    Ok(layout(&words(&String::from_utf8_lossy(&tsv))))
}

/// The page as tesseract is given it: a PNG, quickly compressed (a few
/// milliseconds for an A4 page, a twentieth of its pixels' size). Measured on an
/// A4 page: the same pixels as a PGM on standard input took tesseract a fifth of
/// a second longer (it reads standard input slowly, and leptonica's PGM reader is
/// slower than its PNG one), for the same words. No resolution is written, so
/// tesseract estimates it from the letters, as it does for a PGM.
fn png(page: &GrayImage) -> Result<Vec<u8>, ReadError> {
    use image::codecs::png::{CompressionType, FilterType, PngEncoder};
    use image::ImageEncoder;
    let mut out = Vec::with_capacity(page.as_raw().len() / 16);
    PngEncoder::new_with_quality(&mut out, CompressionType::Fast, FilterType::Adaptive)
        .write_image(page.as_raw(), page.width(), page.height(), image::ExtendedColorType::L8)
        .map_err(|e| ReadError::Tool { program: "png".into(), why: e.to_string() })?;
    Ok(out)
}

/// The words of tesseract's TSV (level 5 rows).
fn words(tsv: &str) -> Vec<Word> {
    tsv.lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.splitn(12, '\t').collect();
            if cols.len() < 12 || cols[0] != "5" {
                return None;
            }
            let text = cols[11].trim();
            if text.is_empty() {
                return None;
            }
            Some(Word {
                left: cols[6].parse().ok()?,
                top: cols[7].parse().ok()?,
                width: cols[8].parse().ok()?,
                height: cols[9].parse().ok()?,
                confidence: cols[10].parse::<f32>().ok()?.max(0.0) / 100.0,
                text: text.to_string(),
            })
        })
        .collect()
}

/// Words into lines by vertical overlap, and each line's words placed at the
/// column their left edge is at (in characters of the page's typical width).
fn layout(words: &[Word]) -> Vec<Line> {
    if words.is_empty() {
        return Vec::new();
    }
    let mut char_widths: Vec<f64> = words
        .iter()
        .filter(|w| w.text.chars().count() >= 3)
        .map(|w| w.width as f64 / w.text.chars().count() as f64)
        .collect();
    char_widths.sort_by(f64::total_cmp);
    let char_width = char_widths.get(char_widths.len() / 2).copied().unwrap_or(12.0).max(1.0);
    let mut sorted: Vec<&Word> = words.iter().collect();
    sorted.sort_by_key(|w| (w.top + w.height / 2, w.left));
    let mut rows: Vec<Vec<&Word>> = Vec::new();
    for w in sorted {
        let middle = w.top + w.height / 2;
        let joined = rows.last_mut().filter(|row| {
            let (top, bottom) = row.iter().fold((u32::MAX, 0), |(t, b), x| (t.min(x.top), b.max(x.top + x.height)));
            middle >= top && middle <= bottom
        });
        match joined {
            Some(row) => row.push(w),
            None => rows.push(vec![w]),
        }
    }
    let min_left = words.iter().map(|w| w.left).min().unwrap_or(0) as f64;
    rows.into_iter()
        .map(|mut row| {
            row.sort_by_key(|w| w.left);
            // This line's own letter width: a title's words are far apart in
            // pixels but one space apart in letters.
            let mut own: Vec<f64> = row.iter().map(|w| w.width as f64 / w.text.chars().count().max(1) as f64).collect();
            own.sort_by(f64::total_cmp);
            let own_width = own[own.len() / 2].max(1.0);
            let mut text = String::new();
            let mut previous_right: Option<u32> = None;
            for w in &row {
                let column = ((w.left as f64 - min_left) / char_width).round() as usize;
                let at = text.chars().count();
                let pad = match previous_right {
                    None => column,
                    // Words of one phrase: one space.
                    Some(right) if (w.left.saturating_sub(right) as f64) < 2.0 * own_width => 1,
                    // A gap between columns: at least three, at the word's column when there is room.
                    Some(_) => column.saturating_sub(at).max(3),
                };
                text.extend(std::iter::repeat_n(' ', pad));
                text.push_str(&w.text);
                previous_right = Some(w.left + w.width);
            }
            let confidence = row.iter().map(|w| w.confidence).sum::<f32>() / row.len() as f32;
            Line { text, confidence }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tsv_words_are_laid_out_in_lines_and_columns() {
        let tsv = "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext\n\
                   5\t1\t1\t1\t1\t1\t10\t10\t60\t20\t96\tTOTAL\n\
                   5\t1\t2\t1\t1\t1\t310\t12\t72\t20\t91\t312,50\n\
                   5\t1\t1\t1\t2\t1\t10\t40\t48\t20\t90\tVISA\n";
        let lines = layout(&words(tsv));
        assert_eq!(lines.len(), 2);
        assert!(lines[0].text.starts_with("TOTAL ") && lines[0].text.ends_with("312,50"), "{:?}", lines[0].text);
        assert!(lines[0].text.len() > 20, "the gap is kept: {:?}", lines[0].text);
        assert!((lines[0].confidence - 0.935).abs() < 0.01);
    }
}
