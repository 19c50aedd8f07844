//! Lines of text into fields. Every value starts as a candidate; a candidate is
//! stated with confidence only when something else on the document agrees with
//! it: a check digit, the subtotal and adjustments that add up to the total, a
//! card payment of the same amount, VAT that fits the rates printed, a label
//! that names it. Lines that look like totals but are not (`Totalt antall
//! varer`, cash given, change) never are candidates.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use bookkeeper_core::reading::{check, Field, Reading, SURE};
use chrono::{Days, NaiveDate};
use regex::Regex;

use crate::Source;

/// A line of text and how sure the OCR engine was of its words (1 for a text layer).
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// The text; columns kept apart by runs of spaces as on the page.
    pub text: String,
    /// Mean word confidence, 0 to 1.
    pub confidence: f32,
}

impl Line {
    /// The lines of laid-out text, all of one confidence.
    pub fn from_layout(text: &str, confidence: f32) -> Vec<Line> {
        text.lines()
            .map(|l| l.trim_end().replace('\u{a0}', " "))
            .filter(|l| !l.trim().is_empty())
            .map(|text| Line { text, confidence })
            .collect()
    }

    /// Lines back into text.
    pub fn join(lines: &[Line]) -> String {
        lines.iter().map(|l| l.text.as_str()).collect::<Vec<_>>().join("\n")
    }
}

fn re(pattern: &str) -> Regex {
    // The patterns are constants of this file, tested below.
    Regex::new(pattern).unwrap_or_else(|e| panic!("pattern {pattern}: {e}"))
}

static AMOUNT: LazyLock<Regex> = LazyLock::new(|| re(r"(-\s?)?(\d{1,3}(?:[ .]\d{3})+|\d+)\s?[,.]\s?(\d{2}|-)(\s?-)?"));
static NUMERIC_DATE: LazyLock<Regex> = LazyLock::new(|| re(r"(\d{1,2})\s?[./\-]\s?(\d{1,2})\s?[./\-]\s?(\d{4}|\d{2})"));
static ISO_DATE: LazyLock<Regex> = LazyLock::new(|| re(r"(\d{4})-(\d{2})-(\d{2})"));
static WORD_DATE: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?i)(\d{1,2})\.?\s*(jan|feb|mar|apr|mai|may|jun|jul|aug|sep|okt|oct|nov|des|dec)[a-zæøå]*\.?\s*(\d{4})")
});
static NINE_DIGITS: LazyLock<Regex> = LazyLock::new(|| re(r"(\d{3})[ .]?(\d{3})[ .]?(\d{3})"));
static ACCOUNT: LazyLock<Regex> = LazyLock::new(|| re(r"(\d{4})[ .]?(\d{2})[ .]?(\d{5})"));
static RATE: LazyLock<Regex> = LazyLock::new(|| re(r"(\d{1,2})(?:[,.]\d{1,2})?\s?%"));
static INVOICE_LABEL: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?i)faktura\s*-?\s*(?:nr|nummer|no)\b\.?:?|invoice\s*(?:no|number)\b\.?:?"));
static KID_LABEL: LazyLock<Regex> = LazyLock::new(|| re(r"(?i)\bKID(?:\s*-?\s*(?:nr|nummer))?\b\.?:?"));
static TIME: LazyLock<Regex> = LazyLock::new(|| re(r"([01]?\d|2[0-3])[:.][0-5]\d"));

/// The matches of `re` in `text` that stand alone: no digit (nor, for amounts,
/// a separator) right before or after, so a match is never the middle of a
/// longer number.
fn whole<'t>(re: &Regex, text: &'t str, also: &str) -> Vec<regex::Captures<'t>> {
    re.captures_iter(text)
        .filter(|c| {
            let Some(m) = c.get(0) else { return false };
            let before = text[..m.start()].chars().next_back();
            let after = text[m.end()..].chars().next();
            let joins = |ch: Option<char>| ch.is_some_and(|ch| ch.is_ascii_digit() || also.contains(ch));
            !joins(before) && !joins(after)
        })
        .collect()
}

/// Upper case with Norwegian letters folded, for matching labels (OCR often
/// loses the ring of Å).
fn fold(text: &str) -> String {
    text.to_uppercase().replace(['Å', 'Ä'], "A").replace(['Ø', 'Ö'], "O").replace('Æ', "AE")
}

fn has_word(folded: &str, words: &[&str]) -> bool {
    words.iter().any(|w| {
        folded.match_indices(w).any(|(i, _)| {
            let before = folded[..i].chars().next_back();
            let after = folded[i + w.len()..].chars().next();
            !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
        })
    })
}

fn contains_any(folded: &str, parts: &[&str]) -> bool {
    parts.iter().any(|p| folded.contains(p))
}

/// OCR's usual confusions inside numbers (`2O26`, `31l,50`) put right: only in
/// words that are mostly digits already.
fn fix_digits(text: &str) -> String {
    text.split_inclusive(' ')
        .map(|word| {
            let digits = word.chars().filter(char::is_ascii_digit).count();
            let letters = word.chars().filter(|c| "OoIlSB|".contains(*c)).count();
            if digits >= 2 && letters > 0 && letters <= digits / 2 + 1 {
                word.chars()
                    .map(|c| match c {
                        'O' | 'o' => '0',
                        'I' | 'l' | '|' => '1',
                        'S' => '5',
                        'B' => '8',
                        c => c,
                    })
                    .collect()
            } else {
                word.to_string()
            }
        })
        .collect()
}

/// An amount on a line, and where it starts (in characters of the line).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Amount {
    minor: i64,
    start: usize,
}

fn amounts(text: &str) -> Vec<Amount> {
    let fixed = fix_digits(text);
    let mut out = Vec::new();
    for c in whole(&AMOUNT, &fixed, ",.%") {
        let (Some(units), Some(frac)) = (c.get(2), c.get(3)) else { continue };
        let digits: String = units.as_str().chars().filter(char::is_ascii_digit).collect();
        let Ok(units) = digits.parse::<i64>() else { continue };
        let cents = if frac.as_str() == "-" { 0 } else { frac.as_str().parse::<i64>().unwrap_or(0) };
        let negative = c.get(1).is_some() || c.get(4).is_some();
        let Some(minor) = units.checked_mul(100).and_then(|m| m.checked_add(cents)) else { continue };
        if minor > 100_000_000_00 {
            continue;
        }
        let start = fixed[..c.get(0).map_or(0, |m| m.start())].chars().count();
        out.push(Amount { minor: if negative { -minor } else { minor }, start });
    }
    out
}

/// The amount a line ends with (its value column).
fn last_amount(text: &str) -> Option<i64> {
    amounts(text).last().map(|a| a.minor)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Total,
    Subtotal,
    Discount,
    Deposit,
    Rounding,
    Payment,
    Cash,
    Change,
    Vat,
    Other,
}

fn kind_of(folded: &str) -> Kind {
    if contains_any(folded, &["ANTALL", "ARTIKLER", "VARER:", " VARER ", "POENG", "BONUS", "SPART"]) {
        return Kind::Other;
    }
    if contains_any(folded, &["VEKSEL", "TILBAKE"]) {
        return Kind::Change;
    }
    if contains_any(folded, &["KONTANT", "GITT"]) {
        return Kind::Cash;
    }
    if contains_any(folded, &["AVRUNDING"]) {
        return Kind::Rounding;
    }
    if contains_any(folded, &["DELSUM", "SUBTOTAL", "SUM VARER", "MELLOMSUM"]) {
        return Kind::Subtotal;
    }
    if has_word(folded, &["MVA", "MOMS", "VAT"]) || contains_any(folded, &["GRUNNLAG", "HERAV"]) {
        return Kind::Vat;
    }
    if contains_any(folded, &["RABATT", "KAMPANJE", "TILBUD"]) {
        return Kind::Discount;
    }
    if has_word(folded, &["PANT", "PANTEBELOP"]) {
        return Kind::Deposit;
    }
    if has_word(folded, &["TOTAL", "TOTALT", "SUM", "TOTALSUM", "TOTALBELOP", "BETALES", "TIL BETALING"])
        || contains_any(folded, &["A BETALE", "SUM A BETALE"])
    {
        return Kind::Total;
    }
    if contains_any(
        folded,
        &["BANKAXEPT", "BANK AXEPT", "VISA", "MASTERCARD", "MASTER CARD", "KORTBETALING", "VIPPS", "BETALT", "AMEX"],
    ) || has_word(folded, &["KORT", "KJOP", "DEBIT", "KREDITT"])
    {
        return Kind::Payment;
    }
    Kind::Other
}

struct Doc<'a> {
    lines: &'a [Line],
    folded: Vec<String>,
    kinds: Vec<Kind>,
    today: NaiveDate,
    exact: bool,
}

impl<'a> Doc<'a> {
    fn new(lines: &'a [Line], today: NaiveDate, source: Source) -> Doc<'a> {
        let folded: Vec<String> = lines.iter().map(|l| fold(&l.text)).collect();
        let kinds = folded.iter().map(|f| kind_of(f)).collect();
        Doc { lines, folded, kinds, today, exact: source == Source::TextLayer }
    }

    /// How much a value read from line `i` may be trusted for its characters alone.
    fn trust(&self, i: usize) -> f32 {
        if self.exact {
            1.0
        } else {
            self.lines[i].confidence
        }
    }

    fn is_invoice(&self) -> bool {
        self.folded.iter().any(|f| {
            contains_any(f, &["FAKTURANR", "FAKTURANUMMER", "FAKTURA NR", "FAKTURADATO", "FORFALL", "INVOICE NO"])
                || has_word(f, &["KID"])
        })
    }

    /// Values of lines of one kind, by the amount each ends with.
    fn of_kind(&self, kind: Kind) -> Vec<(usize, i64)> {
        (0..self.lines.len())
            .filter(|&i| self.kinds[i] == kind)
            .filter_map(|i| last_amount(&self.lines[i].text).map(|a| (i, a)))
            .collect()
    }
}

/// Lines of a document read at most.
const MAX_LINES: usize = 400;
/// Characters of a line read at most.
const MAX_LINE_CHARS: usize = 300;

/// Reads the fields of a document's lines; also says whether it is an invoice.
pub fn read_lines(lines: &[Line], today: NaiveDate, source: Source) -> (Reading, bool) {
    // A receipt or an invoice says what matters in its first few hundred lines;
    // a document of thousands is read no further.
    let lines: Vec<Line> = lines
        .iter()
        .take(MAX_LINES)
        .map(|l| Line { text: l.text.chars().take(MAX_LINE_CHARS).collect(), confidence: l.confidence })
        .collect();
    let doc = Doc::new(&lines, today, source);
    let invoice = doc.is_invoice();
    let total = total(&doc);
    let mut reading = Reading {
        vendor: vendor(&doc, invoice),
        organization_number: organization_number(&doc),
        currency: currency(&doc),
        ..Reading::default()
    };
    reading.vat_minor = total.as_ref().and_then(|t| vat(&doc, t.value));
    reading.total_minor = total;
    if invoice {
        let (date, due) = invoice_dates(&doc);
        reading.date = date;
        reading.due_date = due;
        reading.invoice_number = invoice_number(&doc);
        reading.account_number = account_number(&doc);
        reading.kid = kid(&doc);
    } else {
        reading.date = receipt_date(&doc);
    }
    (reading, invoice)
}

fn near(a: i64, b: i64, tolerance: i64) -> bool {
    (a - b).abs() <= tolerance
}

fn total(doc: &Doc) -> Option<Field<i64>> {
    // Candidates: what lines labelled as totals end with (or the next line, when
    // the label stands alone above its value).
    let mut labelled: BTreeMap<i64, (f32, usize)> = BTreeMap::new();
    for i in 0..doc.lines.len() {
        if doc.kinds[i] != Kind::Total {
            continue;
        }
        let value = last_amount(&doc.lines[i].text).or_else(|| {
            doc.lines.get(i + 1).filter(|_| doc.kinds[i + 1] == Kind::Other).and_then(|l| last_amount(&l.text))
        });
        let Some(value) = value.filter(|v| *v > 0) else { continue };
        let f = &doc.folded[i];
        let weight = if contains_any(f, &["A BETALE", "TOTALT", "TOTAL"]) { 0.55 } else { 0.45 };
        let e = labelled.entry(value).or_insert((0.0, i));
        e.0 = e.0.max(weight);
    }
    let payments: Vec<i64> = doc.of_kind(Kind::Payment).into_iter().map(|(_, a)| a).filter(|a| *a > 0).collect();
    if labelled.is_empty() {
        // No total line read: a single card payment is a candidate, never sure alone.
        if let Some(&p) = payments.first() {
            if payments.iter().all(|x| *x == p) {
                labelled.insert(p, (0.4, 0));
            }
        }
    }
    let subtotal = doc.of_kind(Kind::Subtotal).last().map(|(_, a)| *a);
    let adjustments: i64 = [Kind::Discount, Kind::Deposit, Kind::Rounding]
        .iter()
        .flat_map(|k| doc.of_kind(*k))
        .map(|(i, a)| if doc.kinds[i] == Kind::Discount { -a.abs() } else { a })
        .sum();
    let vat_rows = vat_rows(doc);
    // An invoice's net sum and its VAT add up to the total.
    let net = (0..doc.lines.len())
        .filter(|&i| {
            let f = &doc.folded[i];
            (f.contains("EKS") && (f.contains("MVA") || f.contains("MOMS"))) || has_word(f, &["NETTO", "NETTOBELOP"])
        })
        .filter_map(|i| last_amount(&doc.lines[i].text))
        .next_back();
    let vat_sum: Option<i64> = if vat_rows.is_empty() {
        doc.of_kind(Kind::Vat)
            .into_iter()
            .filter(|(i, _)| {
                contains_any(
                    &doc.folded[*i],
                    &["HERAV", "SUM MVA", "TOTAL MVA", "TOTALT MVA", "MVA 25", "MVA 15", "MVA 12"],
                )
            })
            .map(|(_, a)| a)
            .next_back()
    } else {
        Some(vat_rows.iter().map(|r| r.vat).sum())
    };
    let cash = doc.of_kind(Kind::Cash).last().map(|(_, a)| *a);
    let change = doc.of_kind(Kind::Change).last().map(|(_, a)| a.abs());
    // Without a VAT table, one VAT line at a printed rate (`Herav mva 25 %`).
    let single = if vat_rows.is_empty() { single_vat(doc).filter(|s| s.vat > 0) } else { None };
    let mut scored: Vec<(i64, f32)> = labelled
        .iter()
        .map(|(&value, &(weight, line))| {
            let mut score = weight;
            let mut witnesses = 0;
            if payments.contains(&value) {
                score += 0.3;
                witnesses += 1;
            }
            if subtotal.is_some_and(|s| near(s + adjustments, value, 1)) {
                score += 0.25;
                witnesses += 1;
            }
            if !vat_rows.is_empty() {
                // Each rate's base and VAT, read apart, adding up to the total: as
                // strong a witness as an invoice's net plus its VAT (below).
                let gross: i64 = vat_rows.iter().map(|r| r.base + r.vat).sum();
                if near(gross, value, 2 * vat_rows.len() as i64) {
                    score += 0.3;
                    witnesses += 1;
                }
            }
            if let (Some(n), Some(v)) = (net, vat_sum) {
                if n != value && near(n + v, value, 2) {
                    score += 0.3;
                    witnesses += 1;
                }
            }
            if single.as_ref().is_some_and(|s| s.vat < value && s.fits(value)) {
                // Exactly the VAT of this total at a rate printed: another number,
                // read apart, agreeing to the øre.
                score += 0.2;
                witnesses += 1;
            }
            if let (Some(c), Some(ch)) = (cash, change) {
                if near(c - ch, value, 1) {
                    score += 0.25;
                    witnesses += 1;
                }
            }
            if items_sum(doc, line) == Some(value) {
                score += 0.15;
                witnesses += 1;
            }
            if doc.exact && labelled.len() == 1 {
                // Exact characters, one total named: still a second witness is wanted.
                score += 0.15;
            }
            // Amounts that add up are evidence in themselves: an OCR misreading
            // rarely makes two independent sums agree, so the line's own confidence
            // weighs less the more of them agree.
            let trust = doc.trust(line);
            let factor = match witnesses {
                0 => 0.5 + trust / 2.0,
                1 => 0.7 + trust * 0.3,
                _ => 1.0,
            };
            (value, score * factor)
        })
        .collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1));
    let (&(value, mut score), rest) = scored.split_first()?;
    if let Some(&(_, second)) = rest.first() {
        // Two totals nearly as plausible: a question, not an answer.
        if second > score - 0.25 {
            score = score.min(SURE - 0.2);
        }
    }
    Some(Field::new(value, score.min(0.99)))
}

/// The sum of the item lines above a total line: lines ending with an amount,
/// of no label kind, after the last line without one at the top.
fn items_sum(doc: &Doc, total_line: usize) -> Option<i64> {
    let mut sum = 0;
    let mut any = false;
    for i in 0..total_line.min(doc.lines.len()) {
        match doc.kinds[i] {
            Kind::Other | Kind::Discount | Kind::Deposit => {
                if let Some(a) = last_amount(&doc.lines[i].text) {
                    let a = if doc.kinds[i] == Kind::Discount { -a.abs() } else { a };
                    sum += a;
                    any = true;
                }
            }
            Kind::Subtotal => {}
            _ => {}
        }
    }
    any.then_some(sum)
}

#[derive(Debug, Clone, Copy)]
struct VatRow {
    base: i64,
    vat: i64,
}

/// VAT rows that check out: a rate, a base and VAT that is that rate of the
/// base (to the øre, for rounding), from lines like `25%  250,00  62,50  312,50`.
fn vat_rows(doc: &Doc) -> Vec<VatRow> {
    let mut rows = Vec::new();
    let in_vat_part = |i: usize| -> bool {
        doc.kinds[i] == Kind::Vat
            || (i > 0 && doc.kinds[i - 1] == Kind::Vat)
            || (i > 1 && doc.kinds[i - 2] == Kind::Vat)
    };
    for i in 0..doc.lines.len() {
        let text = fix_digits(&doc.lines[i].text);
        let Some(rate) = RATE.captures(&text).and_then(|c| c[1].parse::<i64>().ok()) else { continue };
        if ![25, 15, 12, 11, 10, 8, 6].contains(&rate) || !in_vat_part(i) {
            continue;
        }
        let values: Vec<i64> = amounts(&text).into_iter().map(|a| a.minor.abs()).collect();
        // Any two amounts on the line where the second is `rate` of the first.
        'pairs: for (a, &base) in values.iter().enumerate() {
            for &vat in &values[a + 1..] {
                if base > 0 && near(base * rate, vat * 100, 100) {
                    rows.push(VatRow { base, vat });
                    break 'pairs;
                }
            }
        }
    }
    rows
}

fn vat(doc: &Doc, total: i64) -> Option<Field<i64>> {
    let rows = vat_rows(doc);
    if !rows.is_empty() {
        let vat: i64 = rows.iter().map(|r| r.vat).sum();
        let gross: i64 = rows.iter().map(|r| r.base + r.vat).sum();
        let confidence = if near(gross, total, 2 * rows.len() as i64) { 0.95 } else { 0.6 };
        return Some(Field::new(vat, confidence));
    }
    // A single VAT line (`Herav mva 25 %  62,50`, `Sum mva 62,50`): checked against
    // the total under the rates printed.
    let single = single_vat(doc)?;
    if single.vat <= 0 || single.vat >= total {
        return None;
    }
    let fits = single.fits(total);
    let confidence = if fits { 0.9 } else { 0.55 };
    Some(Field::new(single.vat, confidence * (0.5 + doc.trust(single.line) / 2.0) + if fits { 0.05 } else { 0.0 }))
}

/// A receipt's one VAT line and the rates printed in its VAT part.
struct SingleVat {
    line: usize,
    vat: i64,
    rates: Vec<i64>,
}

impl SingleVat {
    /// Whether `total` carries exactly this VAT at one of the rates printed.
    fn fits(&self, total: i64) -> bool {
        self.rates.iter().any(|&rate| near(self.vat * (100 + rate), total * rate, 100 + rate))
    }
}

fn single_vat(doc: &Doc) -> Option<SingleVat> {
    let rates: Vec<i64> = doc
        .folded
        .iter()
        .enumerate()
        .filter(|(i, _)| doc.kinds[*i] == Kind::Vat)
        .flat_map(|(_, f)| {
            RATE.captures_iter(&fix_digits(f)).filter_map(|c| c[1].parse::<i64>().ok()).collect::<Vec<_>>()
        })
        .collect();
    let lines = doc.of_kind(Kind::Vat);
    let (line, vat) = lines
        .iter()
        .find(|(i, _)| {
            contains_any(&doc.folded[*i], &["HERAV", "SUM MVA", "TOTAL MVA", "TOTALT MVA", "MVA TOTALT", "SUM MOMS"])
        })
        .or(lines.last())
        .copied()?;
    Some(SingleVat { line, vat: vat.abs(), rates })
}

/// Dates of a line, with where each starts.
fn dates(text: &str, today: NaiveDate) -> Vec<(NaiveDate, usize)> {
    let fixed = fix_digits(text);
    let mut out = Vec::new();
    let year_of = |y: &str| -> Option<i32> {
        let y: i32 = y.parse().ok()?;
        Some(if y < 100 { 2000 + y } else { y })
    };
    let mut push = |d: Option<NaiveDate>, start: usize| {
        if let Some(d) = d {
            // Plausible: this century, not more than ten years from today.
            if d.year_ce().1 >= 2000 && (d - today).num_days().abs() < 3660 {
                out.push((d, fixed[..start].chars().count()));
            }
        }
    };
    for c in whole(&ISO_DATE, &fixed, "") {
        let d = (|| NaiveDate::from_ymd_opt(c[1].parse().ok()?, c[2].parse().ok()?, c[3].parse().ok()?))();
        push(d, c.get(1).map_or(0, |m| m.start()));
    }
    for c in whole(&NUMERIC_DATE, &fixed, "") {
        let d = (|| NaiveDate::from_ymd_opt(year_of(&c[3])?, c[2].parse().ok()?, c[1].parse().ok()?))();
        push(d, c.get(1).map_or(0, |m| m.start()));
    }
    for c in whole(&WORD_DATE, &fixed, "") {
        let month = match c[2].to_lowercase().as_str() {
            "jan" => 1,
            "feb" => 2,
            "mar" => 3,
            "apr" => 4,
            "mai" | "may" => 5,
            "jun" => 6,
            "jul" => 7,
            "aug" => 8,
            "sep" => 9,
            "okt" | "oct" => 10,
            "nov" => 11,
            _ => 12,
        };
        let d = (|| NaiveDate::from_ymd_opt(c[3].parse().ok()?, month, c[1].parse().ok()?))();
        push(d, c.get(1).map_or(0, |m| m.start()));
    }
    out.sort_by_key(|(_, at)| *at);
    out
}

use chrono::Datelike;

fn receipt_date(doc: &Doc) -> Option<Field<NaiveDate>> {
    let oldest = doc.today.checked_sub_days(Days::new(3 * 366))?;
    let mut candidates: Vec<(NaiveDate, usize, bool)> = Vec::new();
    for (i, f) in doc.folded.iter().enumerate() {
        // A date to return by, a warranty, a best-before: not the purchase.
        if contains_any(f, &["RETUR", "BYTTE", "GYLDIG", "GARANTI", "UTLOP", "APENT KJOP", "BEST FOR", "INNEN"]) {
            continue;
        }
        let labelled = has_word(f, &["DATO", "KJOPSDATO", "DATE"])
            || !whole(&TIME, &fix_digits(&doc.lines[i].text), "").is_empty();
        for (d, _) in dates(&doc.lines[i].text, doc.today) {
            if d <= doc.today && d >= oldest {
                candidates.push((d, i, labelled));
            }
        }
    }
    let (first, line, _) = *candidates.iter().find(|c| c.2).or(candidates.first())?;
    let distinct = candidates.iter().filter(|c| c.0 != first).count();
    let base = if distinct == 0 {
        0.95
    } else if candidates.iter().any(|c| c.2 && c.0 == first) && candidates.iter().filter(|c| c.2).all(|c| c.0 == first)
    {
        0.85
    } else {
        0.5
    };
    Some(Field::new(first, base * (0.6 + doc.trust(line) * 0.4)))
}

/// A value beside a label (after it on the line) or under it (the next lines,
/// about the label's column), as `extract` finds it in that text.
fn labelled<T>(
    doc: &Doc,
    line: usize,
    label_start: usize,
    label_end: usize,
    extract: impl Fn(&str) -> Option<T>,
) -> Option<(T, usize)> {
    let text: Vec<char> = doc.lines[line].text.chars().collect();
    let after: String = text.get(label_end..).map(|c| c.iter().collect()).unwrap_or_default();
    // Beside: up to the next wide gap after the value.
    let beside = after.trim_start_matches([':', '.', ' ']);
    let first_column = beside.split("   ").next().unwrap_or_default();
    if let Some(v) = extract(first_column) {
        return Some((v, line));
    }
    for next in line + 1..(line + 3).min(doc.lines.len()) {
        let chars: Vec<char> = doc.lines[next].text.chars().collect();
        let from = label_start.saturating_sub(4).min(chars.len());
        let to = (label_end + 16).min(chars.len());
        let window: String = chars[from..to].iter().collect();
        if let Some(v) = extract(window.trim()) {
            return Some((v, next));
        }
    }
    None
}

/// Where a pattern matches on a line, in characters.
fn span_of(re: &Regex, text: &str) -> Option<(usize, usize)> {
    let m = re.find(text)?;
    Some((text[..m.start()].chars().count(), text[..m.end()].chars().count()))
}

fn invoice_dates(doc: &Doc) -> (Option<Field<NaiveDate>>, Option<Field<NaiveDate>>) {
    static INVOICE_DATE: LazyLock<Regex> =
        LazyLock::new(|| re(r"(?i)faktura\s*dato|fakturadato|invoice date|\bdato\b"));
    static DUE: LazyLock<Regex> =
        LazyLock::new(|| re(r"(?i)forfalls\s*dato|forfallsdato|\bforfall\b|betalingsfrist|due date"));
    let find = |label: &Regex, skip: &dyn Fn(&str) -> bool| -> Option<(NaiveDate, usize, bool)> {
        for i in 0..doc.lines.len() {
            let text = &doc.lines[i].text;
            if skip(&doc.folded[i]) {
                continue;
            }
            if let Some((s, e)) = span_of(label, text) {
                let strong = !label.as_str().ends_with(r"\bdato\b") || e - s > 4;
                if let Some((d, line)) = labelled(doc, i, s, e, |t| dates(t, doc.today).first().map(|(d, _)| *d)) {
                    return Some((d, line, strong));
                }
            }
        }
        None
    };
    let date = find(&INVOICE_DATE, &|f: &str| contains_any(f, &["LEVERING"]));
    let due = find(&DUE, &|_| false);
    let as_field = |found: Option<(NaiveDate, usize, bool)>, strong_conf: f32| {
        found.map(|(d, line, strong)| {
            Field::new(d, if strong { strong_conf } else { 0.7 } * (0.6 + doc.trust(line) * 0.4))
        })
    };
    let mut date = as_field(date, 0.95);
    let mut due = as_field(due, 0.95);
    if let (Some(d), Some(u)) = (&mut date, &mut due) {
        // A due date before the invoice's date, or years after it, is a misreading of one of them.
        if u.value < d.value || (u.value - d.value).num_days() > 180 {
            d.confidence = d.confidence.min(0.5);
            u.confidence = u.confidence.min(0.5);
        }
    }
    if let Some(d) = &mut date {
        if d.value > doc.today {
            d.confidence = d.confidence.min(0.5);
        }
    }
    (date, due)
}

fn organization_number(doc: &Doc) -> Option<Field<String>> {
    let mut found: Vec<(String, f32, usize)> = Vec::new();
    for (i, f) in doc.folded.iter().enumerate() {
        // The customer's number on an invoice is not the issuer's.
        if contains_any(f, &["KUNDE", "CUSTOMER", "MOTTAKER", "KJOPER"]) {
            continue;
        }
        let labelled = contains_any(f, &["ORG", "FORETAK"]) || has_word(f, &["MVA", "VAT"]);
        let text = fix_digits(&doc.lines[i].text);
        for c in whole(&NINE_DIGITS, &text, "") {
            let number = format!("{}{}{}", &c[1], &c[2], &c[3]);
            if check::organization_number(&number) {
                found.push((number, if labelled { 0.97 } else { 0.6 }, i));
            }
        }
    }
    let best = found.iter().max_by(|a, b| a.1.total_cmp(&b.1))?.clone();
    let rivals = found.iter().any(|(n, w, _)| *n != best.0 && *w >= best.1);
    let confidence = if rivals { 0.5 } else { best.1 * (0.7 + doc.trust(best.2) * 0.3) };
    Some(Field::new(best.0, confidence))
}

fn account_number(doc: &Doc) -> Option<Field<String>> {
    let mut found: Vec<(String, f32)> = Vec::new();
    for (i, f) in doc.folded.iter().enumerate() {
        let labelled = contains_any(f, &["KONTO", "BETALES TIL", "BETAL TIL", "ACCOUNT"]);
        let fixed = fix_digits(&doc.lines[i].text);
        for c in whole(&ACCOUNT, &fixed, "") {
            let number = format!("{}{}{}", &c[1], &c[2], &c[3]);
            // Bank registration number 0000 does not exist.
            if check::account_number(&number) && !number.starts_with("0000") {
                found.push((number, if labelled { 0.97 } else { 0.55 } * (0.7 + doc.trust(i) * 0.3)));
            }
        }
    }
    let best = found.iter().max_by(|a, b| a.1.total_cmp(&b.1))?.clone();
    let rivals = found.iter().any(|(n, w)| *n != best.0 && *w >= best.1 - 0.1);
    Some(Field::new(best.0, if rivals { 0.5 } else { best.1 }))
}

fn kid(doc: &Doc) -> Option<Field<String>> {
    for i in 0..doc.lines.len() {
        let text = &doc.lines[i].text;
        let Some((s, e)) = span_of(&KID_LABEL, text) else { continue };
        let digits_of = |t: &str| -> Option<String> {
            let fixed = fix_digits(t);
            // Digits up to the first wide gap (the next column), single spaces between groups allowed.
            let value = fixed.trim_start_matches([':', '.', ' ']).split("  ").next().unwrap_or_default();
            let run: String = value
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == ' ' || *c == '-')
                .filter(|c| c.is_ascii_digit() || *c == '-')
                .collect();
            let all_zero = run.chars().all(|c| c == '0' || c == '-');
            (run.len() >= 2 && !all_zero && check::kid(&run)).then_some(run)
        };
        if let Some((kid, line)) = labelled(doc, i, s, e, digits_of) {
            // A misread digit passes MOD10 or MOD11 one time in ten: OCR states a KID only when sure of the line.
            let confidence = if doc.exact || doc.trust(line) >= 0.9 { 0.95 } else { 0.6 };
            return Some(Field::new(kid, confidence));
        }
    }
    None
}

fn invoice_number(doc: &Doc) -> Option<Field<String>> {
    for i in 0..doc.lines.len() {
        let text = &doc.lines[i].text;
        let Some((s, e)) = span_of(&INVOICE_LABEL, text) else { continue };
        let token = |t: &str| -> Option<String> {
            let word = t.trim_start_matches([':', '.', ' ', '#']).split_whitespace().next()?;
            let word = word.trim_end_matches([',', '.', ';']);
            let ok = word.chars().any(|c| c.is_ascii_digit())
                && word.chars().all(|c| c.is_ascii_alphanumeric() || "-/_".contains(c))
                && word.len() <= 30;
            ok.then(|| word.to_string())
        };
        if let Some((number, line)) = labelled(doc, i, s, e, token) {
            // Nothing checks an invoice number: only exact text, or OCR sure of the whole line, states it.
            let confidence = if doc.exact {
                0.95
            } else if doc.trust(line) >= 0.9 {
                0.82
            } else {
                0.55
            };
            return Some(Field::new(number, confidence));
        }
    }
    None
}

fn currency(doc: &Doc) -> Option<Field<String>> {
    let all = doc.folded.join("\n");
    // A foreign currency counts where it stands beside an amount: a word like
    // "EUR" elsewhere is as likely a shop's name broken up by OCR ("Eur opris").
    let priced: Vec<&String> = doc
        .folded
        .iter()
        .enumerate()
        .filter(|(i, _)| last_amount(&doc.lines[*i].text).is_some())
        .map(|(_, f)| f)
        .collect();
    for (code, signs) in [("EUR", &["EUR", "€"][..]), ("SEK", &["SEK"][..]), ("USD", &["USD", "US$"][..])] {
        let on = |f: &String| signs.iter().any(|s| has_word(f, &[s]) || (s.starts_with('€') && f.contains(s)));
        if priced.iter().any(|f| on(f)) {
            return Some(Field::new(code.to_string(), 0.85));
        }
    }
    if has_word(&all, &["NOK", "KR", "KRONER"]) {
        return Some(Field::new("NOK".to_string(), 0.95));
    }
    // No currency printed: a Norwegian issuer (a valid organisation number)
    // prints a foreign one when it charges in it; otherwise it is a guess.
    let norwegian = organization_number(doc).is_some_and(|f| f.is_sure());
    Some(Field::new("NOK".to_string(), if norwegian { 0.85 } else { 0.6 }))
}

fn vendor(doc: &Doc, invoice: bool) -> Option<Field<String>> {
    const SKIP: &[&str] = &[
        "KVITTERING",
        "SALGSKVITTERING",
        "FAKTURA",
        "ORG.",
        "ORG ",
        "ORGNR",
        "ORG:",
        "TLF",
        "TELEFON",
        "DATO",
        "KASSE",
        "WWW",
        "@",
        "BUTIKK NR",
        "KUNDE",
        "TIL:",
        "SIDE",
        "KOPI",
        "VELKOMMEN",
    ];
    let company = |f: &str| has_word(f, &["AS", "ASA", "ANS", "DA", "ENK", "SA", "NUF"]);
    let clean = |t: &str| -> String {
        let t = t.split("   ").find(|p| !p.trim().is_empty()).unwrap_or(t).trim();
        t.trim_matches(|c: char| !c.is_alphanumeric() && c != ')' && c != '&').to_string()
    };
    let letters = |t: &str| t.chars().filter(|c| c.is_alphabetic()).count();
    let plausible = |i: usize| -> bool {
        let t = clean(&doc.lines[i].text);
        let nonspace = t.chars().filter(|c| !c.is_whitespace()).count();
        letters(&t) >= 3 && letters(&t) * 10 >= nonspace * 7 && !contains_any(&fold(&t), SKIP)
    };
    let in_customer_block = |i: usize| -> bool {
        (i.saturating_sub(3)..i)
            .any(|j| contains_any(&doc.folded[j], &["TIL:", "KUNDE", "FAKTURAADRESSE", "LEVERINGSADRESSE", "MOTTAKER"]))
    };
    let pick = if invoice {
        (0..doc.lines.len()).find(|&i| plausible(i) && company(&doc.folded[i]) && !in_customer_block(i))
    } else {
        None
    }
    .or_else(|| (0..doc.lines.len().min(6)).find(|&i| plausible(i)))?;
    let name = clean(&doc.lines[pick].text);
    let base = if company(&doc.folded[pick]) || pick == 0 { 0.85 } else { 0.6 };
    let confidence = if doc.exact { base } else { base * doc.trust(pick).min(0.97) };
    Some(Field::new(name, confidence))
}

/// How many of a reading's fields are stated with confidence.
pub fn settled_count(r: &Reading) -> usize {
    bookkeeper_core::reading::FieldName::ALL.iter().filter(|f| r.get(**f).is_some_and(|(_, c)| c >= SURE)).count()
}

/// Two readings of one document, field by field: agreement raises confidence,
/// disagreement between two sure readings makes the field unsure.
pub fn combine(a: &Reading, b: &Reading) -> Reading {
    fn one<T: Clone + PartialEq>(a: &Option<Field<T>>, b: &Option<Field<T>>) -> Option<Field<T>> {
        match (a, b) {
            (Some(x), Some(y)) if x.value == y.value => {
                // Passes over the same pixels are not independent witnesses: agreement
                // firms up a value already stated, never makes a doubtful one sure.
                let best = x.confidence.max(y.confidence);
                let confidence = if best >= SURE { (best + 0.05).min(0.99) } else { best };
                Some(Field::new(x.value.clone(), confidence))
            }
            (Some(x), Some(y)) => {
                let (hi, lo) = if x.confidence >= y.confidence { (x, y) } else { (y, x) };
                // Two sure readings that disagree make a question; a doubtful one does not
                // outweigh a sure one.
                let confidence = if lo.is_sure() { 0.5 } else { hi.confidence };
                Some(Field::new(hi.value.clone(), confidence))
            }
            (Some(x), None) | (None, Some(x)) => Some(x.clone()),
            (None, None) => None,
        }
    }
    Reading {
        vendor: one(&a.vendor, &b.vendor),
        organization_number: one(&a.organization_number, &b.organization_number),
        date: one(&a.date, &b.date),
        total_minor: one(&a.total_minor, &b.total_minor),
        currency: one(&a.currency, &b.currency),
        vat_minor: one(&a.vat_minor, &b.vat_minor),
        invoice_number: one(&a.invoice_number, &b.invoice_number),
        due_date: one(&a.due_date, &b.due_date),
        account_number: one(&a.account_number, &b.account_number),
        kid: one(&a.kid, &b.kid),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 12, 1).unwrap()
    }

    fn read(text: &str) -> Reading {
        read_lines(&Line::from_layout(text, 1.0), today(), Source::TextLayer).0
    }

    #[test]
    fn amounts_are_read_as_norwegians_write_them() {
        let got = |t: &str| amounts(t).iter().map(|a| a.minor).collect::<Vec<_>>();
        assert_eq!(got("TOTAL          1 249,50"), vec![1249_50]);
        assert_eq!(got("kr 312,50"), vec![312_50]);
        assert_eq!(got("SUM 312.50 NOK"), vec![312_50]);
        assert_eq!(got("Rabatt       -20,00"), vec![-20_00]);
        assert_eq!(got("Å betale  kr 1.249,-"), vec![1249_00]);
        assert_eq!(got("MVA 25%  62,50"), vec![62_50]);
        assert_eq!(got("Totalt antall varer: 7"), Vec::<i64>::new());
        assert_eq!(got("TOTAL 31l,5O"), vec![311_50]);
    }

    #[test]
    fn a_receipts_total_agrees_with_its_payment_and_ignores_cash_and_change() {
        let r = read(
            "KIWI MAJORSTUEN\nOrg.nr 974 760 673 MVA\n24.11.2026 14:32\nMelk 1,5L        24,90\nBrød             39,90\n\
             Totalt antall varer: 2\nTOTAL            64,80\nKontant         100,00\nTilbake          35,20\nMVA 15%  56,35  8,45\n",
        );
        assert_eq!(r.total_minor.as_ref().map(|f| f.value), Some(64_80));
        assert!(r.total_minor.as_ref().unwrap().is_sure());
        assert_eq!(r.date.as_ref().map(|f| f.value), NaiveDate::from_ymd_opt(2026, 11, 24));
        assert_eq!(r.organization_number.as_ref().map(|f| f.value.as_str()), Some("974760673"));
        assert_eq!(r.vat_minor.as_ref().map(|f| f.value), Some(8_45));
        assert_eq!(r.vendor.as_ref().map(|f| f.value.as_str()), Some("KIWI MAJORSTUEN"));
    }

    #[test]
    fn the_vat_of_a_total_at_its_printed_rate_witnesses_it_and_a_shops_name_is_no_currency() {
        // OCR read (confidence 0.85): the total and its subtotal alone would be a
        // question; "Herav mva 25 % 107,86" is exactly a fifth of 539,30.
        let text = "Eur opris Alnabru\nOrg nr 986723749\n21.09.2026\nDelsum    539,30\nÅ BETALE    539,30\n\
                    Herav mva 25%   107,86\n";
        let r = read_lines(&Line::from_layout(text, 0.85), today(), Source::Ocr).0;
        assert!(r.total_minor.as_ref().is_some_and(|f| f.value == 539_30 && f.is_sure()), "{:?}", r.total_minor);
        assert_eq!(r.currency.as_ref().map(|f| f.value.as_str()), Some("NOK"), "EUR in a name is no price");
        // The same VAT against another total is no witness.
        let text =
            "Butikk\nOrg nr 986723749\n21.09.2026\nDelsum    549,30\nÅ BETALE    549,30\nHerav mva 25%   107,86\n";
        let r = read_lines(&Line::from_layout(text, 0.85), today(), Source::Ocr).0;
        assert!(!r.total_minor.unwrap().is_sure());
        // A price in euros is.
        let r = read_lines(&Line::from_layout("Cafe\nTOTAL EUR 12,50\n", 0.95), today(), Source::Ocr).0;
        assert_eq!(r.currency.map(|f| f.value), Some("EUR".to_string()));
    }

    #[test]
    fn two_different_totals_make_the_total_unsure() {
        let r = read_lines(&Line::from_layout("BUTIKK\nTOTAL 100,00\nSUM 120,00\n", 0.95), today(), Source::Ocr).0;
        assert!(!r.total_minor.unwrap().is_sure());
    }

    #[test]
    fn dates_in_every_written_form_and_never_a_return_date() {
        let got = |t: &str| dates(t, today()).first().map(|d| d.0);
        let d = NaiveDate::from_ymd_opt(2026, 11, 24);
        assert_eq!(got("24.11.2026"), d);
        assert_eq!(got("24/11/26"), d);
        assert_eq!(got("24. nov. 2026"), d);
        assert_eq!(got("2026-11-24"), d);
        assert_eq!(got("24. november 2026"), d);
        let r = read("BUTIKK\nÅpent kjøp til 24.12.2026\nDato: 20.11.2026\nTOTAL 10,00\n");
        assert_eq!(r.date.map(|f| f.value), NaiveDate::from_ymd_opt(2026, 11, 20));
        // A date after today is not a purchase date.
        assert!(read("BUTIKK\n02.12.2026\nTOTAL 10,00\n").date.is_none());
    }

    #[test]
    fn an_invoice_reads_its_labelled_fields_and_checks_their_digits() {
        let kid_body = "00012345";
        let kid = format!("{kid_body}{}", check::mod10_digit(kid_body).unwrap());
        let text = format!(
            "Kontorrekvisita AS\nOrg.nr: NO 974 760 673 MVA\n\nFAKTURA\nTil: Bookkeeper Demo AS\nKundens org.nr 923609016\n\
             Fakturanr: F-2026-118        Fakturadato: 12.11.2026\nForfallsdato: 26.11.2026\n\
             Sum eks. mva   1 000,00\nMva 25 %   1 000,00   250,00\nÅ betale   1 250,00\n\
             Kontonr: 8601 11 17947    KID: {kid}\n"
        );
        let (r, invoice) = read_lines(&Line::from_layout(&text, 1.0), today(), Source::TextLayer);
        assert!(invoice);
        assert_eq!(r.vendor.as_ref().map(|f| f.value.as_str()), Some("Kontorrekvisita AS"));
        assert_eq!(r.organization_number.map(|f| f.value), Some("974760673".into()));
        assert_eq!(r.invoice_number.map(|f| f.value), Some("F-2026-118".into()));
        assert_eq!(r.date.map(|f| f.value), NaiveDate::from_ymd_opt(2026, 11, 12));
        assert_eq!(r.due_date.map(|f| f.value), NaiveDate::from_ymd_opt(2026, 11, 26));
        assert_eq!(r.total_minor.as_ref().map(|f| f.value), Some(1250_00));
        assert_eq!(r.vat_minor.map(|f| f.value), Some(250_00));
        assert_eq!(r.account_number.map(|f| f.value), Some("86011117947".into()));
        assert_eq!(r.kid.map(|f| f.value), Some(kid));
    }

    #[test]
    fn a_number_that_fails_its_check_digit_is_not_read() {
        let r = read("BUTIKK\nOrg.nr 974 760 674\nTOTAL 10,00\n");
        assert!(r.organization_number.is_none());
        let (r, _) = read_lines(
            &Line::from_layout("FAKTURA\nFakturanr 7\nKontonr 8601 11 17948\nKID 1234567898\n", 1.0),
            today(),
            Source::TextLayer,
        );
        assert!(r.account_number.is_none());
        assert!(r.kid.is_none());
    }

    #[test]
    fn readings_combine_by_agreement() {
        let sure = |v| Some(Field::new(v, 0.9));
        let a = Reading { total_minor: sure(100), date: None, ..Reading::default() };
        let b = Reading { total_minor: sure(120), ..Reading::default() };
        assert!(!combine(&a, &b).total_minor.unwrap().is_sure());
        let c = combine(&a, &a);
        assert!(c.total_minor.unwrap().confidence > 0.9);
    }
}
