//! `bookkeeper bench receipts`: the document reader on the labelled set
//! (`core/reader/testdata/set`), per field and per medium (PDFs with a text
//! layer, photos, scans), with the time per document; beside the floor measured
//! in the same run: the text as it comes (`pdftotext`, or tesseract on the raw
//! photo) and the regular expressions anyone would write first.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use bookkeeper_core::reading::FieldName;
use bookkeeper_reader::labelled::{self, LabelledSet, Medium, Score};
use bookkeeper_reader::{floor, Reader};
use clap::Args;

/// Arguments of `bench receipts`.
#[derive(Debug, Args)]
pub struct ReceiptsBenchArgs {
    /// The labelled set (a folder with `labels.json`; default: this build's).
    #[arg(long)]
    set: Option<PathBuf>,
    /// Leave the floor out (it reads every photo a second time).
    #[arg(long)]
    no_floor: bool,
}

/// Targets: PDFs with a text layer all right on the key fields; photos at
/// least 90 % so and under 2 % of fields stated wrongly; at most 2 s a photo.
const PHOTO_KEY_TARGET: f64 = 0.9;
const WRONG_TARGET: f64 = 0.02;
const PHOTO_TIME_TARGET: Duration = Duration::from_secs(2);

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn print(label: &str, s: &Score) {
    println!(
        "  {label:<8} key fields right {:>5.1} % ({}/{})   stated wrongly {:>4.1} % ({}/{})   time p50 {} p99 {}",
        s.key_fields_share() * 100.0,
        s.key_fields_right,
        s.documents,
        s.wrong_sure_share() * 100.0,
        s.wrong_sure(),
        s.labelled_fields(),
        ms(s.time_percentile(0.5)),
        ms(s.time_percentile(0.99)),
    );
}

fn fields(s: &Score) {
    println!("    {:<20} {:>7} {:>7} {:>7} {:>7}", "field", "right", "unsure", "wrong", "absent");
    for f in FieldName::ALL {
        if let Some(t) = s.fields.get(&f) {
            println!(
                "    {:<20} {:>3}/{:<3} {:>7} {:>7} {:>7}",
                f.name(),
                t.right,
                t.labelled,
                t.unsure,
                t.wrong_sure,
                t.absent
            );
        }
    }
}

pub async fn receipts(args: ReceiptsBenchArgs) -> anyhow::Result<()> {
    let dir = args.set.unwrap_or_else(labelled::default_dir);
    let set = LabelledSet::load(&dir).map_err(anyhow::Error::msg).context("loading the labelled set")?;
    let reader = Reader::detect();
    anyhow::ensure!(reader.has_ocr() && reader.has_pdf(), "{}", reader.describe());
    let tesseract = reader.tesseract().context("tesseract")?.to_path_buf();
    let pdftotext = bookkeeper_reader::run::find("pdftotext").context("pdftotext")?;
    println!("{} on {} documents ({}), read on {}", reader.version(), set.documents.len(), dir.display(), set.read_on);
    let mut verdicts = Vec::new();
    for medium in [Medium::Pdf, Medium::Photo, Medium::Scan] {
        let mut passes = Vec::new();
        let ours = tokio::task::block_in_place(|| {
            labelled::score(&set, medium, |bytes| {
                let read = reader.read(bytes, set.read_on);
                passes.push(read.as_ref().map_or(0, |r| r.passes));
                read.map(|r| r.reading).map_err(|e| e.to_string())
            })
        })
        .map_err(anyhow::Error::msg)?;
        println!("\n{}:", medium.name());
        print("reader", &ours);
        if medium != Medium::Pdf {
            let slowest: Vec<String> = ours
                .slowest(4)
                .into_iter()
                .map(|(id, t)| {
                    let n = ours.ids.iter().position(|x| x == id).map_or(0, |i| passes[i]);
                    format!("{id} {} ({n} passes)", ms(t))
                })
                .collect();
            println!("  slowest: {}", slowest.join(", "));
        }
        if !args.no_floor {
            let floor_score = tokio::task::block_in_place(|| {
                labelled::score(&set, medium, |bytes| match medium {
                    Medium::Pdf => {
                        let dir = tempfile_dir()?;
                        let path = dir.join("d.pdf");
                        std::fs::write(&path, bytes).map_err(|e| e.to_string())?;
                        let text = bookkeeper_reader::run::output(
                            &pdftotext,
                            &[&path.to_string_lossy(), "-"],
                            None,
                            Duration::from_secs(30),
                        )
                        .map_err(|e| e.to_string())?;
                        let _ = std::fs::remove_dir_all(&dir);
                        Ok(floor::read_text(&String::from_utf8_lossy(&text)))
                    }
                    Medium::Photo => floor::read_picture(&tesseract, bytes).map_err(|e| e.to_string()),
                    // A scan is only a picture inside a PDF: the floor reads its text layer (none).
                    Medium::Scan => Ok(floor::read_text("")),
                })
            })
            .map_err(anyhow::Error::msg)?;
            print("floor", &floor_score);
            if floor_score.key_fields_right > 0 {
                println!(
                    "  reader/floor key fields right: {:.2}x",
                    ours.key_fields_share() / floor_score.key_fields_share()
                );
            }
            let (floor_p50, floor_p99) = (floor_score.time_percentile(0.5), floor_score.time_percentile(0.99));
            if medium == Medium::Photo && !floor_p50.is_zero() && !floor_p99.is_zero() {
                // The speed that matters on any machine: against the floor of this run.
                println!(
                    "  reader/floor time: p50 {:.2}x, p99 {:.2}x",
                    ours.time_percentile(0.5).as_secs_f64() / floor_p50.as_secs_f64(),
                    ours.time_percentile(0.99).as_secs_f64() / floor_p99.as_secs_f64()
                );
            }
        }
        fields(&ours);
        for (id, m) in &ours.mistakes {
            println!("    stated wrongly in {id}: {}", m.join("; "));
        }
        match medium {
            Medium::Pdf => verdicts.push(format!(
                "PDFs: key fields right on every document: {}",
                if ours.key_fields_right == ours.documents { "MET" } else { "MISSED" }
            )),
            Medium::Photo => {
                let met = |b: bool| if b { "MET" } else { "MISSED" };
                verdicts.push(format!(
                    "photos: key fields right >= 90 %: {}",
                    met(ours.key_fields_share() >= PHOTO_KEY_TARGET)
                ));
                verdicts.push(format!(
                    "photos: fields stated wrongly < 2 %: {}",
                    met(ours.wrong_sure_share() < WRONG_TARGET)
                ));
                verdicts.push(format!(
                    "photos: at most 2 s each (p99 {}): {}",
                    ms(ours.time_percentile(0.99)),
                    met(ours.time_percentile(0.99) <= PHOTO_TIME_TARGET)
                ));
            }
            Medium::Scan => {}
        }
    }
    println!("\nTargets:");
    for v in verdicts {
        println!("  {v}");
    }
    Ok(())
}

fn tempfile_dir() -> Result<PathBuf, String> {
    let dir = std::env::temp_dir().join(format!("bookkeeper-bench-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    Ok(dir)
}
