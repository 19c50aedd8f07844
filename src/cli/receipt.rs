//! `bookkeeper receipt read FILE [--json]`: what the document reader reads from
//! a receipt or an invoice (PDF, JPEG, PNG, HEIC), field by field with its
//! confidence; nothing is proposed or stored.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use bookkeeper_core::reading::{FieldName, SURE};
use bookkeeper_reader::{Reader, Source};
use chrono::NaiveDate;
use clap::{Args, Subcommand};

#[derive(Debug, Subcommand)]
pub enum ReceiptCommand {
    /// Read a receipt or an invoice: vendor, organisation number, date, total,
    /// currency, VAT and (invoices) number, due date, account and KID.
    Read(ReadArgs),
}

#[derive(Debug, Args)]
pub struct ReadArgs {
    /// The document: a PDF (its text layer, or OCR when it has none), a JPEG or
    /// PNG photo, or a HEIC photo when `heif-convert` is installed.
    file: PathBuf,
    /// One JSON object with exactly the fields read, each `{"value", "confidence"}`;
    /// a field not found is absent.
    #[arg(long)]
    json: bool,
    /// The day to judge dates' plausibility by (default: today).
    #[arg(long)]
    today: Option<NaiveDate>,
}

pub fn run(command: ReceiptCommand) -> anyhow::Result<ExitCode> {
    let ReceiptCommand::Read(args) = command;
    let bytes = std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let reader = Reader::detect();
    let today = args.today.unwrap_or_else(|| bookkeeper_core::Clock::system().today());
    let read = reader.read(&bytes, today).with_context(|| format!("{} could not be read", args.file.display()))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&read.reading)?);
        return Ok(ExitCode::SUCCESS);
    }
    let how = match read.source {
        Source::TextLayer => "its text layer".to_string(),
        Source::Ocr => format!("OCR, {} pass(es)", read.passes),
    };
    println!(
        "{}: {} read from {how} ({})",
        args.file.display(),
        if read.invoice { "an invoice" } else { "a receipt" },
        reader.version()
    );
    let mut unsure = Vec::new();
    let mut absent = Vec::new();
    for field in FieldName::ALL {
        let invoice_only =
            matches!(field, FieldName::InvoiceNumber | FieldName::DueDate | FieldName::AccountNumber | FieldName::Kid);
        match read.reading.get(field) {
            Some((value, confidence)) => {
                let shown = match field {
                    FieldName::TotalMinor | FieldName::VatMinor => value
                        .parse::<i64>()
                        .map(|m| format!("{} ({value})", bookkeeper_core::domain::Money::nok(m)))
                        .unwrap_or(value),
                    _ => value,
                };
                let mark = if confidence >= SURE { "" } else { "  unsure" };
                if confidence < SURE {
                    unsure.push(field.name());
                }
                println!("  {:<20} {shown:<40} {confidence:.2}{mark}", field.name());
            }
            None if invoice_only && !read.invoice => {}
            None => absent.push(field.name()),
        }
    }
    if !unsure.is_empty() {
        println!("unsure (Book-E asks rather than states): {}", unsure.join(", "));
    }
    if !absent.is_empty() {
        println!("not found: {}", absent.join(", "));
    }
    Ok(ExitCode::SUCCESS)
}
