//! Reads receipts and invoices: vendor, organisation number, date, total, VAT and,
//! for invoices, number, due date, account and KID, each with a confidence.
//!
//! - A PDF's text layer is read with `pdftotext -layout` (poppler); a PDF without
//!   one is rendered (`pdftoppm`) and read like a photo.
//! - A photo (JPEG, PNG; HEIC when `heif-convert` is installed) is preprocessed
//!   ([`prepare`]: paper found and straightened, lighting flattened, scaled,
//!   deskewed, binarised) and read by `tesseract` ([`ocr`]), more than once when
//!   the first reading does not settle the fields that matter.
//! - [`parse`] turns lines of text into candidates and keeps a value only when
//!   cross-checks (check digits, a total that agrees with its subtotal, payment
//!   and VAT lines, plausible dates) let it; an unsettled field is left out or
//!   marked unsure. A wrong value stated with confidence is worse than a question.
//!
//! The tools are separate programs found on `PATH`, run without a shell, bounded
//! in time and memory ([`run`]): nothing here links an OCR engine.

// Amounts in code are written kroner_øre (499_00 is 499,00 kr).
#![allow(clippy::inconsistent_digit_grouping)]

pub mod floor;
pub mod labelled;
pub mod ocr;
pub mod parse;
pub mod prepare;
pub mod run;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bookkeeper_core::reading::Reading;
use chrono::NaiveDate;

/// This reader's version, recorded with every reading.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Largest document read.
pub const MAX_DOCUMENT_BYTES: usize = 20 * 1024 * 1024;

/// Largest picture decoded, in pixels (a 50-megapixel photo).
const MAX_PIXELS: u64 = 50_000_000;

/// The largest picture `heif-convert` may hand back (a 50-megapixel photo is
/// 10-25 MB as a JPEG of quality 92).
const MAX_CONVERTED_BYTES: u64 = 64 << 20;

/// How long one tool may run on one document.
const TOOL_TIMEOUT: Duration = Duration::from_secs(30);

/// How long reading a photo may take before the reader answers with what it
/// has ([`Reader::with_budget`]): second and third opinions are stopped or not
/// begun after it, and what they would have settled is asked of the person.
pub const DEFAULT_BUDGET: Duration = Duration::from_millis(1900);

/// Why a document could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// Not a PDF, JPEG, PNG or HEIC file.
    #[error("this is not a PDF, JPEG, PNG or HEIC file")]
    NotADocument,
    /// Larger than [`MAX_DOCUMENT_BYTES`], or a picture of too many pixels.
    #[error("the document is too large to read ({0})")]
    TooLarge(String),
    /// Reading it needs a program that is not installed.
    #[error("reading {what} needs `{program}`, which is not installed ({install})")]
    Missing {
        /// What was to be read.
        what: &'static str,
        /// The program.
        program: &'static str,
        /// How to install it.
        install: &'static str,
    },
    /// A tool failed on it.
    #[error("{program} could not read the document: {why}")]
    Tool {
        /// The program.
        program: String,
        /// What it said.
        why: String,
    },
    /// The picture could not be decoded.
    #[error("the picture could not be decoded: {0}")]
    Undecodable(String),
}

/// What kind of file a document is, by its first bytes (never by its name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `%PDF`.
    Pdf,
    /// JPEG.
    Jpeg,
    /// PNG.
    Png,
    /// HEIC/HEIF (an ISO-BMFF `ftyp` box of a HEIF brand).
    Heic,
}

impl Format {
    /// The format of `bytes`, if it is one of those read.
    pub fn of(bytes: &[u8]) -> Option<Format> {
        if bytes.starts_with(b"%PDF-") {
            Some(Format::Pdf)
        } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(Format::Jpeg)
        } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(Format::Png)
        } else if bytes.len() > 12
            && &bytes[4..8] == b"ftyp"
            && [&b"heic"[..], b"heix", b"heim", b"heis", b"mif1", b"msf1"].contains(&&bytes[8..12])
        {
            Some(Format::Heic)
        } else {
            None
        }
    }
}

/// Where a reading's text came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The PDF's own text layer: exact characters.
    TextLayer,
    /// OCR of a photo or of a PDF's rendered page.
    Ocr,
}

/// A document read.
#[derive(Debug, Clone, PartialEq)]
pub struct Read {
    /// The fields.
    pub reading: Reading,
    /// Where the text came from.
    pub source: Source,
    /// Whether it looked like an invoice (invoice fields are only read then).
    pub invoice: bool,
    /// How many times it was read (OCR passes).
    pub passes: u32,
    /// The text the fields were read from, line by line (the best pass).
    pub text: String,
}

/// The tools found on this machine.
#[derive(Debug, Clone)]
pub struct Reader {
    pdftotext: Option<PathBuf>,
    pdftoppm: Option<PathBuf>,
    tesseract: Option<PathBuf>,
    heif_convert: Option<PathBuf>,
    /// `tesseract --version`'s first line and the languages used.
    ocr_engine: Option<String>,
    languages: String,
    /// `None`: every opinion is heard, however long it takes.
    budget: Option<Duration>,
}

impl Default for Reader {
    fn default() -> Reader {
        Reader {
            pdftotext: None,
            pdftoppm: None,
            tesseract: None,
            heif_convert: None,
            ocr_engine: None,
            languages: String::new(),
            budget: Some(DEFAULT_BUDGET),
        }
    }
}

impl Reader {
    /// A reader using the tools on `PATH`.
    pub fn detect() -> Reader {
        let tesseract = run::find("tesseract");
        let (ocr_engine, languages) = match &tesseract {
            Some(t) => {
                let version = run::output(t, &["--version"], None, Duration::from_secs(10))
                    .ok()
                    .and_then(|o| String::from_utf8_lossy(&o).lines().next().map(str::to_string));
                let langs = run::output(t, &["--list-langs"], None, Duration::from_secs(10))
                    .map(|o| String::from_utf8_lossy(&o).lines().skip(1).map(str::to_string).collect::<Vec<_>>())
                    .unwrap_or_default();
                // Norwegian first, English for the rest (VISA, TOTAL, ...).
                let mut use_langs: Vec<&str> =
                    ["nor", "eng"].into_iter().filter(|l| langs.iter().any(|x| x == l)).collect();
                if use_langs.is_empty() {
                    use_langs.push("eng");
                }
                (version, use_langs.join("+"))
            }
            None => (None, String::new()),
        };
        Reader {
            pdftotext: run::find("pdftotext"),
            pdftoppm: run::find("pdftoppm"),
            tesseract,
            heif_convert: run::find("heif-convert"),
            ocr_engine,
            languages,
            budget: Some(DEFAULT_BUDGET),
        }
    }

    /// This reader answering within `budget` per photo or scan ([`DEFAULT_BUDGET`]
    /// unless changed), or, with `None`, only when every opinion is in: what the
    /// labelled-set test uses, so its figures do not depend on the machine's speed.
    pub fn with_budget(mut self, budget: Option<Duration>) -> Reader {
        self.budget = budget;
        self
    }

    /// Whether photos and scans can be read (tesseract is installed).
    pub fn has_ocr(&self) -> bool {
        self.tesseract.is_some()
    }

    /// The tesseract program, if installed (the benchmark's floor runs it raw).
    pub fn tesseract(&self) -> Option<&std::path::Path> {
        self.tesseract.as_deref()
    }

    /// Whether HEIC photos can be read (`heif-convert` is installed).
    pub fn has_heic(&self) -> bool {
        self.heif_convert.is_some()
    }

    /// This reader without a HEIC decoder, as on a machine that has none.
    pub fn without_heic(mut self) -> Reader {
        self.heif_convert = None;
        self
    }

    /// Whether PDFs' text can be read (poppler's tools are installed).
    pub fn has_pdf(&self) -> bool {
        self.pdftotext.is_some() && self.pdftoppm.is_some()
    }

    /// What this machine can read, in a sentence for `up` and the logs.
    pub fn describe(&self) -> String {
        let mut missing = Vec::new();
        if !self.has_pdf() {
            missing.push("PDFs (install poppler-utils)");
        }
        if !self.has_ocr() {
            missing.push("photos and scans (install tesseract-ocr and tesseract-ocr-nor)");
        }
        if self.heif_convert.is_none() {
            missing.push("HEIC photos (install libheif-examples)");
        }
        if missing.is_empty() {
            format!("reads PDFs, scans and photos ({})", self.version())
        } else {
            format!("cannot read {}: Book-E asks for what it cannot read", missing.join(", "))
        }
    }

    /// The reader and its engines, recorded with every reading:
    /// `bookkeeper-reader 0.1.0; tesseract 5.3.0 (nor+eng)`.
    pub fn version(&self) -> String {
        let mut v = format!("bookkeeper-reader {VERSION}");
        if let Some(engine) = &self.ocr_engine {
            v.push_str(&format!("; {engine} ({})", self.languages));
        }
        v
    }

    /// Reads a document. `today` bounds which dates are plausible.
    pub fn read(&self, bytes: &[u8], today: NaiveDate) -> Result<Read, ReadError> {
        if bytes.len() > MAX_DOCUMENT_BYTES {
            return Err(ReadError::TooLarge(format!("{} MiB, at most 20", bytes.len() >> 20)));
        }
        let format = Format::of(bytes).ok_or(ReadError::NotADocument)?;
        let started = Instant::now();
        let read = match format {
            Format::Pdf => self.read_pdf(bytes, today, started)?,
            Format::Jpeg | Format::Png => {
                let image = decode(bytes)?;
                self.read_picture(image, today, started)?
            }
            Format::Heic => {
                let jpeg = self.heic_to_jpeg(bytes)?;
                self.read_picture(decode(&jpeg)?, today, started)?
            }
        };
        tracing::debug!(elapsed_ms = started.elapsed().as_millis() as u64, passes = read.passes, "document read");
        Ok(read)
    }

    fn read_pdf(&self, bytes: &[u8], today: NaiveDate, started: Instant) -> Result<Read, ReadError> {
        let missing = ReadError::Missing { what: "a PDF", program: "pdftotext", install: "poppler-utils" };
        let pdftotext = self.pdftotext.as_ref().ok_or(missing)?;
        let dir = tempfile::tempdir().map_err(|e| ReadError::Tool { program: "tempdir".into(), why: e.to_string() })?;
        let file = dir.path().join("document.pdf");
        std::fs::write(&file, bytes).map_err(|e| ReadError::Tool { program: "tempdir".into(), why: e.to_string() })?;
        let path = file.to_string_lossy().to_string();
        // The first two pages: a receipt or an invoice says what matters there.
        let text = run::output(
            pdftotext,
            &["-layout", "-enc", "UTF-8", "-f", "1", "-l", "2", &path, "-"],
            None,
            TOOL_TIMEOUT,
        )?;
        let text = String::from_utf8_lossy(&text).to_string();
        if text.chars().filter(|c| c.is_alphanumeric()).count() >= 20 {
            let lines = parse::Line::from_layout(&text, 1.0);
            let (reading, invoice) = parse::read_lines(&lines, today, Source::TextLayer);
            // A text layer with neither a total nor a date is not the document's text
            // (a scanner app's stamp, hidden text): the page is read as a picture.
            if reading.total_minor.is_some() || reading.date.is_some() {
                return Ok(Read { reading, source: Source::TextLayer, invoice, passes: 1, text });
            }
        }
        // No text layer: a scan. Render the first page and read it as a photo.
        let pdftoppm = self.pdftoppm.as_ref().ok_or(ReadError::Missing {
            what: "a scanned PDF",
            program: "pdftoppm",
            install: "poppler-utils",
        })?;
        let out = dir.path().join("page");
        let out_path = out.to_string_lossy().to_string();
        run::output(
            pdftoppm,
            // At most 3500 pixels a side (the rest cut off), whatever size the page claims.
            &[
                "-r",
                "200",
                "-W",
                "3500",
                "-H",
                "3500",
                // PGM: poppler's PNG writer spends seconds compressing an A4 page.
                "-gray",
                "-f",
                "1",
                "-l",
                "1",
                "-singlefile",
                &path,
                &out_path,
            ],
            None,
            TOOL_TIMEOUT,
        )?;
        let pgm = std::fs::read(dir.path().join("page.pgm"))
            .map_err(|e| ReadError::Tool { program: "pdftoppm".into(), why: format!("no page rendered: {e}") })?;
        self.read_picture(decode(&pgm)?, today, started)
    }

    /// A HEIC photo as a JPEG, by `heif-convert`: a JPEG (quality 92) rather than a
    /// PNG, so that a 48-megapixel photo is tens of MB, not a hundred; a larger
    /// file is refused before it is read.
    fn heic_to_jpeg(&self, bytes: &[u8]) -> Result<Vec<u8>, ReadError> {
        let convert = self.heif_convert.as_ref().ok_or(ReadError::Missing {
            what: "a HEIC photo",
            program: "heif-convert",
            install: "libheif-examples",
        })?;
        let dir = tempfile::tempdir().map_err(|e| ReadError::Tool { program: "tempdir".into(), why: e.to_string() })?;
        let input = dir.path().join("photo.heic");
        let output = dir.path().join("photo.jpg");
        std::fs::write(&input, bytes).map_err(|e| ReadError::Tool { program: "tempdir".into(), why: e.to_string() })?;
        run::output(convert, &["-q", "92", &input.to_string_lossy(), &output.to_string_lossy()], None, TOOL_TIMEOUT)?;
        let size = std::fs::metadata(&output)
            .map_err(|e| ReadError::Tool { program: "heif-convert".into(), why: format!("no picture written: {e}") })?
            .len();
        if size > MAX_CONVERTED_BYTES {
            return Err(ReadError::TooLarge(format!("a HEIC photo of {} MiB as JPEG, at most 64", size >> 20)));
        }
        std::fs::read(&output).map_err(|e| ReadError::Tool { program: "heif-convert".into(), why: e.to_string() })
    }

    /// The first of the languages (Norwegian when installed): the second
    /// opinion reads with it alone, a fifth faster, so that it slows the first
    /// reading beside it less.
    fn first_language(&self) -> &str {
        self.languages.split('+').next().unwrap_or(&self.languages)
    }

    /// Reads a picture: prepared, then OCR. A second opinion (the page
    /// binarised, read as one block) is begun beside the first on the other
    /// core and stopped if the first settles the total, the date and the
    /// organisation number; a third (magnified) only when the budget leaves
    /// time for it. The fields that agree or check out are kept.
    fn read_picture(&self, image: image::GrayImage, today: NaiveDate, started: Instant) -> Result<Read, ReadError> {
        let page = prepare::Page::new(image);
        let (best, first_took) = self.read_page(&page, today, started, OPINION_TIMEOUT)?;
        if read_anything(&best.reading) {
            return Ok(best);
        }
        // Neither a total nor a date: the page may lie on its side or upside down
        // (a photo whose turn was not recorded). It is read turned, a quarter at a
        // time, while the budget lasts (each reading takes about the first's time).
        let mut passes = best.passes;
        for quarter in [1, 3, 2] {
            let remaining = self.remaining(started);
            if first_took > remaining {
                break;
            }
            let turned = prepare::Page::new(page.turned(quarter));
            match self.read_page(&turned, today, started, remaining) {
                Ok((read, _)) => {
                    passes += read.passes;
                    if read_anything(&read.reading) {
                        return Ok(Read { passes, ..read });
                    }
                }
                Err(e) => {
                    tracing::debug!(error = %e, "the turned reading was not used");
                    break;
                }
            }
        }
        Ok(Read { passes, ..best })
    }

    /// What is left of the budget for a document begun at `started`.
    fn remaining(&self, started: Instant) -> Duration {
        match self.budget {
            Some(b) => b.saturating_sub(started.elapsed()),
            None => OPINION_TIMEOUT,
        }
    }

    /// Reads a prepared page with its opinions; also how long the first took.
    /// The first reading is given `first_timeout`: the page's own first is always
    /// heard out, a turned page's only within the budget.
    fn read_page(
        &self,
        page: &prepare::Page,
        today: NaiveDate,
        started: Instant,
        first_timeout: Duration,
    ) -> Result<(Read, Duration), ReadError> {
        let tesseract = self.tesseract.as_ref().ok_or(ReadError::Missing {
            what: "a photo or a scan",
            program: "tesseract",
            install: "tesseract-ocr and tesseract-ocr-nor",
        })?;
        let remaining = || self.remaining(started);
        let first = page.render(prepare::Pass::Grey);
        let stop = AtomicBool::new(false);
        let (mut best, first_took, second) = std::thread::scope(|scope| {
            let second = scope.spawn(|| {
                let binary = page.render(prepare::Pass::Binary);
                if remaining().is_zero() {
                    return Err(ReadError::Tool { program: "tesseract".into(), why: "no time left for it".into() });
                }
                ocr::recognise(tesseract, self.first_language(), &binary, 6, remaining(), Some(&stop))
            });
            let first_started = Instant::now();
            let lines = ocr::recognise(tesseract, &self.languages, &first, 4, first_timeout, None);
            let first_took = first_started.elapsed();
            let lines = match lines {
                Ok(lines) => lines,
                Err(e) => {
                    stop.store(true, Ordering::Relaxed);
                    let _ = second.join();
                    return Err(e);
                }
            };
            let (reading, invoice) = parse::read_lines(&lines, today, Source::Ocr);
            let best = Read { reading, source: Source::Ocr, invoice, passes: 1, text: parse::Line::join(&lines) };
            if settled(&best.reading) {
                stop.store(true, Ordering::Relaxed);
                let _ = second.join();
                return Ok((best, first_took, None));
            }
            let second = second.join().unwrap_or_else(|_| {
                Err(ReadError::Tool { program: "tesseract".into(), why: "the second reading panicked".into() })
            });
            Ok((best, first_took, Some(second)))
        })?;
        match second {
            None => return Ok((best, first_took)),
            Some(Ok(lines2)) => {
                let (reading2, invoice2) = parse::read_lines(&lines2, today, Source::Ocr);
                if parse::settled_count(&reading2) > parse::settled_count(&best.reading) {
                    best.text = parse::Line::join(&lines2);
                }
                best.reading = parse::combine(&best.reading, &reading2);
                best.invoice |= invoice2;
                best.passes = 2;
            }
            // Out of time, or the tool failed on it: the first reading stands, and
            // what it leaves unsettled is asked.
            Some(Err(e)) => {
                tracing::debug!(error = %e, "the second reading was not used");
                return Ok((best, first_took));
            }
        }
        if settled(&best.reading) {
            return Ok((best, first_took));
        }
        // A third opinion, larger: small print under blur reads better magnified.
        // Begun only when it can end in time: it takes about as long as the
        // first, per pixel.
        let third = page.magnified(1.5);
        let ratio = (third.width() as f64 * third.height() as f64) / (first.width() as f64 * first.height() as f64);
        if first_took.mul_f64(ratio.max(1.0)) > remaining() {
            return Ok((best, first_took));
        }
        match ocr::recognise(tesseract, &self.languages, &third, 4, remaining(), None) {
            Ok(lines3) => {
                let (reading3, invoice3) = parse::read_lines(&lines3, today, Source::Ocr);
                best.reading = parse::combine(&best.reading, &reading3);
                best.invoice |= invoice3;
                best.passes = 3;
            }
            Err(e) => tracing::debug!(error = %e, "the third reading was not used"),
        }
        Ok((best, first_took))
    }
}

/// How long one OCR reading may take when no budget is set (a bound against a
/// tool that hangs, not a latency target).
const OPINION_TIMEOUT: Duration = Duration::from_secs(60);

/// Whether a total or a date was read at all: a page read to neither is no page
/// the right way up.
fn read_anything(r: &Reading) -> bool {
    r.total_minor.is_some() || r.date.is_some()
}

/// Whether the fields that matter most are stated with confidence.
fn settled(r: &Reading) -> bool {
    r.total_minor.as_ref().is_some_and(|f| f.is_sure())
        && r.date.as_ref().is_some_and(|f| f.is_sure())
        && r.organization_number.as_ref().is_some_and(|f| f.is_sure())
}

/// Decodes a JPEG, PNG or (poppler's) PGM into grey, turned as its EXIF orientation
/// says, refusing pictures of too many pixels before their pixels are allocated.
pub fn decode(bytes: &[u8]) -> Result<image::GrayImage, ReadError> {
    let reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| ReadError::Undecodable(e.to_string()))?;
    let (w, h) = reader.into_dimensions().map_err(|e| ReadError::Undecodable(e.to_string()))?;
    if u64::from(w) * u64::from(h) > MAX_PIXELS {
        return Err(ReadError::TooLarge(format!("{w}x{h} pixels, at most 50 megapixels")));
    }
    // A receipt is long, but not a ribbon: such a shape is no photo of a document.
    if w < 16 || h < 16 || w.max(h) / w.min(h) > 25 {
        return Err(ReadError::Undecodable(format!("a picture of {w}x{h} pixels is no photo of a document")));
    }
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| ReadError::Undecodable(e.to_string()))?;
    reader.limits(image::Limits::default());
    let undecodable = |e: image::ImageError| ReadError::Undecodable(e.to_string());
    let mut decoder = reader.into_decoder().map_err(undecodable)?;
    // What `ImageReader::decode` would check: the pixels fit the allocation limit.
    image::Limits::default().reserve(image::ImageDecoder::total_bytes(&decoder)).map_err(undecodable)?;
    // A phone stores the sensor's picture and says in EXIF how to turn it: a
    // receipt held upright is often stored sideways. A damaged tag is no tag.
    let orientation =
        image::ImageDecoder::orientation(&mut decoder).unwrap_or(image::metadata::Orientation::NoTransforms);
    let image = image::DynamicImage::from_decoder(decoder).map_err(undecodable)?;
    let mut grey = image::DynamicImage::ImageLuma8(image.to_luma8());
    drop(image);
    grey.apply_orientation(orientation);
    Ok(grey.into_luma8())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_known_by_their_bytes() {
        assert_eq!(Format::of(b"%PDF-1.4\n"), Some(Format::Pdf));
        assert_eq!(Format::of(&[0xFF, 0xD8, 0xFF, 0xE0]), Some(Format::Jpeg));
        assert_eq!(Format::of(b"\x89PNG\r\n\x1a\n...."), Some(Format::Png));
        assert_eq!(Format::of(b"\0\0\0\x18ftypheic\0\0\0\0"), Some(Format::Heic));
        assert_eq!(Format::of(b"GIF89a"), None);
        assert_eq!(Format::of(b""), None);
    }

    #[test]
    fn what_is_not_a_document_is_refused_plainly() {
        let reader = Reader::default();
        let today = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
        assert_eq!(reader.read(b"hello", today), Err(ReadError::NotADocument));
        let err = reader.read(b"%PDF-1.4 nothing", today).unwrap_err();
        assert!(matches!(err, ReadError::Missing { program: "pdftotext", .. }), "{err}");
        let err = reader.read(&[0xFF, 0xD8, 0xFF, 0xE0, 1, 2], today).unwrap_err();
        assert!(matches!(err, ReadError::Undecodable(_)), "{err}");
    }
}
