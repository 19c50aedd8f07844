//! Generates the labelled set of Norwegian receipts and invoices the reader is
//! measured on (`core/reader/testdata/set`): PDFs with a text layer, photos of
//! the same documents with the damage phones do (rotation, perspective, blur,
//! uneven light, noise, JPEG artefacts) and scans (image-only PDFs), and
//! `labels.json` with what each one says. Deterministic for a seed.
//!
//! `cargo run -p bookkeeper-reader --example labelled_set -- core/reader/testdata/set`
//! (needs `pdftoppm`, from poppler-utils).

// Amounts in code are written kroner_øre (499_00 is 499,00 kr).
#![allow(clippy::inconsistent_digit_grouping)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use bookkeeper_core::reading::check;
use bookkeeper_reader::prepare::Projective;
use chrono::{Datelike, Days, NaiveDate};
use image::{imageops, GrayImage, Luma, Rgb, RgbImage};
use serde_json::json;

const RECEIPTS: usize = 30;
const INVOICES: usize = 12;
/// The day the set is read on: every date on it is before, the tests pass it.
const READ_ON: (i32, u32, u32) = (2026, 12, 1);

struct Rng(fastrand::Rng);

impl Rng {
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.0.usize(..items.len())]
    }
    fn chance(&mut self, p: f64) -> bool {
        self.0.f64() < p
    }
    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.0.f64()
    }
}

fn org_number(rng: &mut Rng) -> String {
    loop {
        let body = format!("9{:07}", rng.0.u32(0..10_000_000));
        if let Some(c) = check::mod11_digit(&body) {
            let n = format!("{body}{c}");
            if check::organization_number(&n) {
                return n;
            }
        }
    }
}

fn account_number(rng: &mut Rng) -> String {
    loop {
        let body = format!("{:04}{:06}", rng.0.u32(1200..9800), rng.0.u32(0..1_000_000));
        if let Some(c) = check::mod11_digit(&body) {
            return format!("{body}{c}");
        }
    }
}

fn kid(rng: &mut Rng) -> String {
    let body = format!("{:09}", rng.0.u32(0..1_000_000_000));
    if rng.chance(0.5) {
        format!("{body}{}", check::mod10_digit(&body).unwrap_or(0))
    } else {
        loop {
            let body = format!("{:010}", rng.0.u64(0..10_000_000_000));
            if let Some(c) = check::mod11_digit(&body) {
                return format!("{body}{c}");
            }
        }
    }
}

fn spaced(n: &str, groups: &[usize]) -> String {
    let mut out = String::new();
    let mut at = 0;
    for g in groups {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(&n[at..at + g]);
        at += g;
    }
    out
}

#[derive(Clone, Copy)]
enum AmountStyle {
    /// `1 249,50`
    Norwegian,
    /// `kr 1 249,50`
    Kroner,
    /// `1249.50`
    Dot,
}

fn amount(minor: i64, style: AmountStyle) -> String {
    let negative = minor < 0;
    let m = minor.abs();
    let whole = (m / 100).to_string();
    let mut grouped = String::new();
    for (i, c) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            grouped.push(' ');
        }
        grouped.push(c);
    }
    let sign = if negative { "-" } else { "" };
    match style {
        AmountStyle::Norwegian => format!("{sign}{grouped},{:02}", m % 100),
        AmountStyle::Kroner => format!("kr {sign}{grouped},{:02}", m % 100),
        AmountStyle::Dot => format!("{sign}{whole}.{:02}", m % 100),
    }
}

const MONTHS: [&str; 12] = ["jan", "feb", "mar", "apr", "mai", "jun", "jul", "aug", "sep", "okt", "nov", "des"];

fn date_text(d: NaiveDate, style: usize) -> String {
    match style % 4 {
        0 => d.format("%d.%m.%Y").to_string(),
        1 => d.format("%d/%m/%y").to_string(),
        2 => format!("{}. {}. {}", d.day(), MONTHS[d.month0() as usize], d.year()),
        _ => d.format("%Y-%m-%d").to_string(),
    }
}

/// VAT in a gross amount at a rate, rounded to the øre.
fn vat_of(gross: i64, rate: i64) -> i64 {
    (gross * rate * 2 + (100 + rate)) / (2 * (100 + rate))
}

// --- A minimal PDF writer: standard fonts, WinAnsi text, optional JPEG page. ---

#[derive(Clone, Copy, PartialEq)]
enum Font {
    Courier,
    CourierBold,
    Helvetica,
    HelveticaBold,
    Times,
}

impl Font {
    fn resource(self) -> &'static str {
        match self {
            Font::Courier => "F1",
            Font::CourierBold => "F2",
            Font::Helvetica => "F3",
            Font::HelveticaBold => "F4",
            Font::Times => "F5",
        }
    }
    /// Width of `text` in points at `size` (exact for digits and separators,
    /// near enough for letters).
    fn width(self, text: &str, size: f64) -> f64 {
        let em: f64 = text
            .chars()
            .map(|c| match self {
                Font::Courier | Font::CourierBold => 0.6,
                Font::Helvetica | Font::HelveticaBold => match c {
                    '0'..='9' => 0.556,
                    ' ' | ',' | '.' => 0.278,
                    '-' => 0.333,
                    'k' => 0.5,
                    'r' => 0.333,
                    c if c.is_uppercase() => 0.68,
                    _ => 0.52,
                },
                Font::Times => match c {
                    '0'..='9' => 0.5,
                    ' ' | ',' | '.' => 0.25,
                    '-' => 0.333,
                    'k' => 0.5,
                    'r' => 0.333,
                    c if c.is_uppercase() => 0.68,
                    _ => 0.46,
                },
            })
            .sum();
        em * size
    }
}

struct Text {
    x: f64,
    y: f64,
    size: f64,
    font: Font,
    text: String,
}

struct Page {
    width: f64,
    height: f64,
    texts: Vec<Text>,
}

impl Page {
    fn text(&mut self, x: f64, y: f64, size: f64, font: Font, text: impl Into<String>) {
        self.texts.push(Text { x, y, size, font, text: text.into() });
    }
    fn right(&mut self, right_x: f64, y: f64, size: f64, font: Font, text: impl Into<String>) {
        let text = text.into();
        let w = font.width(&text, size);
        self.texts.push(Text { x: right_x - w, y, size, font, text });
    }
}

fn win_ansi(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for c in text.chars() {
        let b = match c {
            'æ' => 0xE6,
            'ø' => 0xF8,
            'å' => 0xE5,
            'Æ' => 0xC6,
            'Ø' => 0xD8,
            'Å' => 0xC5,
            'é' => 0xE9,
            '€' => 0x80,
            '(' | ')' | '\\' => {
                out.push(b'\\');
                c as u8
            }
            c if c.is_ascii() => c as u8,
            _ => b'?',
        };
        out.push(b);
    }
    out
}

fn pdf(page: &Page, jpeg: Option<(&[u8], u32, u32)>) -> Vec<u8> {
    let mut objects: Vec<Vec<u8>> = Vec::new();
    let fonts = [
        ("F1", "Courier"),
        ("F2", "Courier-Bold"),
        ("F3", "Helvetica"),
        ("F4", "Helvetica-Bold"),
        ("F5", "Times-Roman"),
    ];
    // 1 catalog, 2 pages, 3 page, 4 content, 5..9 fonts, 10 image
    objects.push(b"<< /Type /Catalog /Pages 2 0 R >>".to_vec());
    objects.push(b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_vec());
    let mut font_res = String::new();
    for (i, (name, _)) in fonts.iter().enumerate() {
        let _ = write!(font_res, "/{name} {} 0 R ", 5 + i);
    }
    let xobject = if jpeg.is_some() { " /XObject << /Im1 10 0 R >>" } else { "" };
    objects.push(
        format!(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {:.0} {:.0}] /Resources << /Font << {font_res}>>{xobject} >> /Contents 4 0 R >>",
            page.width, page.height
        )
        .into_bytes(),
    );
    let mut content = Vec::new();
    if jpeg.is_some() {
        content.extend_from_slice(format!("q {:.2} 0 0 {:.2} 0 0 cm /Im1 Do Q\n", page.width, page.height).as_bytes());
    }
    for t in &page.texts {
        content.extend_from_slice(
            format!("BT /{} {:.1} Tf {:.2} {:.2} Td (", t.font.resource(), t.size, t.x, t.y).as_bytes(),
        );
        content.extend_from_slice(&win_ansi(&t.text));
        content.extend_from_slice(b") Tj ET\n");
    }
    let mut stream = format!("<< /Length {} >>\nstream\n", content.len()).into_bytes();
    stream.extend_from_slice(&content);
    stream.extend_from_slice(b"\nendstream");
    objects.push(stream);
    for (_, base) in fonts {
        objects.push(
            format!("<< /Type /Font /Subtype /Type1 /BaseFont /{base} /Encoding /WinAnsiEncoding >>").into_bytes(),
        );
    }
    if let Some((bytes, w, h)) = jpeg {
        let mut image = format!(
            "<< /Type /XObject /Subtype /Image /Width {w} /Height {h} /ColorSpace /DeviceGray /BitsPerComponent 8 /Filter /DCTDecode /Length {} >>\nstream\n",
            bytes.len()
        )
        .into_bytes();
        image.extend_from_slice(bytes);
        image.extend_from_slice(b"\nendstream");
        objects.push(image);
    }
    let mut out = b"%PDF-1.4\n%\xE2\xE3\xCF\xD3\n".to_vec();
    let mut offsets = Vec::new();
    for (i, o) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n", i + 1).as_bytes());
        out.extend_from_slice(o);
        out.extend_from_slice(b"\nendobj\n");
    }
    let xref = out.len();
    out.extend_from_slice(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes());
    for o in offsets {
        out.extend_from_slice(format!("{o:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!("trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n", objects.len() + 1).as_bytes(),
    );
    out
}

// --- Documents ---

struct Expected {
    vendor: String,
    organization_number: String,
    date: NaiveDate,
    total_minor: i64,
    currency: &'static str,
    vat_minor: i64,
    invoice: Option<(String, NaiveDate, String, String)>,
}

const SHOPS: &[&str] = &[
    "KIWI MAJORSTUEN",
    "REMA 1000 GRØNLAND",
    "COOP EXTRA SAGENE",
    "MENY STORO",
    "Clas Ohlson Oslo City",
    "Elkjøp Lørenskog",
    "Narvesen Oslo S",
    "Europris Alnabru",
    "Biltema Furuset",
    "Jernia Bogstadveien",
    "Espresso House Aker Brygge",
    "Circle K Helsfyr",
    "Ark Bokhandel",
    "Apotek 1 Storgata",
    "Kaffebrenneriet",
];
const SUPPLIERS: &[&str] = &[
    "Kontorrekvisita Norge AS",
    "Fjordnett AS",
    "Bergen Regnskapsservice AS",
    "Nordlys Renhold AS",
    "Trondheim IT-drift AS",
    "Vestland Trykk AS",
    "Oslo Kaffeservice AS",
    "Grønn Logistikk AS",
];
const FOOD: &[(&str, i64)] = &[
    ("Melk lett 1,5L", 24_90),
    ("Grovbrød", 39_90),
    ("Norvegia 500g", 89_90),
    ("Bananer", 27_43),
    ("Kaffe 250g", 64_90),
    ("Egg 12 stk", 52_90),
    ("Smør 250g", 36_50),
    ("Appelsinjuice", 32_90),
    ("Kyllingfilet", 109_00),
    ("Epler", 31_20),
];
const GOODS: &[(&str, i64)] = &[
    ("USB-C kabel 1m", 149_00),
    ("Skrivebok A5", 59_90),
    ("Batterier AA 8pk", 99_90),
    ("Kontorstol hjul", 249_00),
    ("HDMI-adapter", 199_00),
    ("Printerpapir A4", 69_90),
    ("Tusjer 4pk", 45_50),
    ("Lyspære LED", 79_90),
    ("Skjøteledning 3m", 129_00),
    ("Tape", 24_90),
];

fn receipt(rng: &mut Rng, n: usize, today: NaiveDate) -> (Page, Expected) {
    let font = *rng.pick(&[Font::Courier, Font::Courier, Font::Helvetica, Font::Times]);
    let bold = if font == Font::Courier {
        Font::CourierBold
    } else if font == Font::Helvetica {
        Font::HelveticaBold
    } else {
        font
    };
    let width = 226.0; // 80 mm
    let size = rng.range(8.5, 10.0);
    let lead = size * 1.35;
    let left = 12.0;
    let right = width - 12.0;
    let style = *rng.pick(&[AmountStyle::Norwegian, AmountStyle::Norwegian, AmountStyle::Kroner, AmountStyle::Dot]);
    let vendor = rng.pick(SHOPS).to_string();
    let org = org_number(rng);
    let date = today - Days::new(rng.0.u64(3..80));
    let food = rng.chance(0.6);
    let rate = if food { 15 } else { 25 };
    let mut lines: Vec<(String, Option<String>, Font)> = Vec::new();
    let count = rng.0.usize(2..7);
    let mut gross = 0i64;
    let mut item_count = 0;
    for _ in 0..count {
        let (name, price) = *rng.pick(if food { FOOD } else { GOODS });
        let qty = if rng.chance(0.2) { 2 } else { 1 };
        if qty > 1 {
            lines.push((name.to_string(), None, font));
            lines.push((
                format!("  {qty} x {}", amount(price, AmountStyle::Norwegian)),
                Some(amount(price * qty, style)),
                font,
            ));
        } else {
            lines.push((name.to_string(), Some(amount(price, style)), font));
        }
        gross += price * qty;
        item_count += qty;
    }
    let deposit = if food && rng.chance(0.3) {
        lines.push(("Pant".into(), Some(amount(3_00, style)), font));
        3_00
    } else {
        0
    };
    let discount = if rng.chance(0.3) {
        let d = (gross / 10 / 100) * 100 + 50;
        lines.push(("Rabatt kampanje".into(), Some(amount(-d, style)), font));
        d
    } else {
        0
    };
    let subtotal = gross;
    let total = gross + deposit - discount;
    let vat = vat_of(total - deposit, rate);
    let mut body: Vec<(String, Option<String>, Font)> = Vec::new();
    if rng.chance(0.5) {
        body.push(("Delsum".into(), Some(amount(subtotal, style)), font));
    }
    if rng.chance(0.6) {
        body.push((format!("Totalt antall varer: {item_count}"), None, font));
    }
    let total_label = *rng.pick(&["TOTAL", "SUM", "Å BETALE", "Totalt", "SUM Å BETALE"]);
    body.push((total_label.into(), Some(amount(total, style)), bold));
    let cash = rng.chance(0.25);
    if cash {
        let given = ((total / 100_00) + 1) * 100_00 + if rng.chance(0.5) { 100_00 } else { 0 };
        body.push(("Kontant".into(), Some(amount(given, style)), font));
        body.push(("Tilbake".into(), Some(amount(given - total, style)), font));
    } else {
        let card = *rng.pick(&["BANKAXEPT", "VISA", "Mastercard", "Kort"]);
        body.push((format!("{card} ************{:04}", rng.0.u32(1000..9999)), None, font));
        body.push(("Kjøp NOK".into(), Some(amount(total, AmountStyle::Norwegian)), font));
    }
    let mut page = Page { width, height: 0.0, texts: Vec::new() };
    let mut y = 0.0;
    let put = |page: &mut Page, y: &mut f64, left_text: &str, right_text: Option<&str>, f: Font| {
        page.text(left, *y, size, f, left_text);
        if let Some(r) = right_text {
            page.right(right, *y, size, f, r);
        }
        *y -= lead;
    };
    // Built top-down with negative y, shifted onto the page at the end.
    page.text(left, y, size * 1.4, bold, &vendor);
    y -= lead * 1.6;
    put(&mut page, &mut y, &format!("Storgata {}, 0{}55 Oslo", rng.0.u32(1..90), rng.0.u32(1..9)), None, font);
    let org_text = match rng.0.usize(0..3) {
        0 => format!("Org.nr: {} MVA", spaced(&org, &[3, 3, 3])),
        1 => format!("Foretaksregisteret NO {org} MVA"),
        _ => format!("Org nr {org}"),
    };
    put(&mut page, &mut y, &org_text, None, font);
    put(&mut page, &mut y, &format!("Tlf 2{:07}", rng.0.u32(0..10_000_000)), None, font);
    y -= lead * 0.5;
    let when = format!("{} kl. {:02}:{:02}", date_text(date, n), rng.0.u32(8..21), rng.0.u32(0..60));
    put(&mut page, &mut y, &format!("Kvittering nr {}", rng.0.u32(1000..99999)), None, font);
    put(&mut page, &mut y, &when, None, font);
    y -= lead * 0.5;
    for (l, r, f) in &lines {
        put(&mut page, &mut y, l, r.as_deref(), *f);
    }
    y -= lead * 0.3;
    for (l, r, f) in &body {
        put(&mut page, &mut y, l, r.as_deref(), *f);
    }
    y -= lead * 0.5;
    if rng.chance(0.5) {
        put(&mut page, &mut y, "Mva-sats  Grunnlag  Mva", None, font);
        let base = total - deposit - vat;
        put(
            &mut page,
            &mut y,
            &format!("{rate}%   {}   {}", amount(base, AmountStyle::Norwegian), amount(vat, AmountStyle::Norwegian)),
            None,
            font,
        );
    } else {
        put(&mut page, &mut y, &format!("Herav mva {rate}%"), Some(&amount(vat, AmountStyle::Norwegian)), font);
    }
    if rng.chance(0.5) {
        y -= lead * 0.5;
        let until = date + Days::new(30);
        put(&mut page, &mut y, &format!("Åpent kjøp til {}", date_text(until, 0)), None, font);
    }
    put(&mut page, &mut y, "Takk for handelen!", None, font);
    let height = -y + 40.0;
    page.height = height;
    for t in &mut page.texts {
        t.y += height - 30.0;
    }
    let expected = Expected {
        vendor,
        organization_number: org,
        date,
        total_minor: total,
        currency: "NOK",
        vat_minor: vat,
        invoice: None,
    };
    (page, expected)
}

fn invoice(rng: &mut Rng, n: usize, today: NaiveDate) -> (Page, Expected) {
    let font = *rng.pick(&[Font::Helvetica, Font::Helvetica, Font::Times]);
    let bold = if font == Font::Helvetica { Font::HelveticaBold } else { font };
    let mut page = Page { width: 595.0, height: 842.0, texts: Vec::new() };
    let vendor = rng.pick(SUPPLIERS).to_string();
    let org = org_number(rng);
    let customer_org = org_number(rng);
    let date = today - Days::new(rng.0.u64(5..60));
    let due = date + Days::new(*rng.pick(&[10u64, 14, 14, 30]));
    let number = if rng.chance(0.5) {
        format!("{}", 10_000 + rng.0.u32(0..90_000))
    } else {
        format!("F-2026-{:04}", rng.0.u32(1..9999))
    };
    let account = account_number(rng);
    let kid = kid(rng);
    let style = if rng.chance(0.8) { AmountStyle::Norwegian } else { AmountStyle::Dot };
    let size = 10.0;
    let (left, right) = (56.0, 540.0);
    page.text(left, 780.0, 18.0, bold, &vendor);
    page.text(left, 762.0, size, font, format!("Industriveien {}, 5{:03} Bergen", rng.0.u32(1..80), rng.0.u32(0..999)));
    page.text(left, 748.0, size, font, format!("Org.nr: NO {} MVA", spaced(&org, &[3, 3, 3])));
    page.text(400.0, 780.0, 22.0, bold, "FAKTURA");
    page.text(left, 700.0, size, font, "Til:");
    page.text(left, 686.0, size, bold, "Bookkeeper Demo AS");
    page.text(left, 672.0, size, font, "Postboks 12, 0101 Oslo");
    if rng.chance(0.5) {
        page.text(left, 658.0, size, font, format!("Kundens org.nr {customer_org}"));
    }
    let ds = n % 2 * 3; // dd.mm.yyyy or yyyy-mm-dd
    if rng.chance(0.5) {
        // Labels and values side by side.
        let rows = [
            ("Fakturanr:", number.clone()),
            ("Fakturadato:", date_text(date, ds)),
            ("Forfallsdato:", date_text(due, ds)),
            ("Kundenr:", format!("{}", rng.0.u32(100..9999))),
        ];
        for (i, (l, v)) in rows.iter().enumerate() {
            page.text(340.0, 700.0 - i as f64 * 14.0, size, font, *l);
            page.text(430.0, 700.0 - i as f64 * 14.0, size, font, v.clone());
        }
    } else {
        // A row of labels with the values under them.
        let cols =
            [("Fakturanr", number.clone()), ("Fakturadato", date_text(date, ds)), ("Forfallsdato", date_text(due, ds))];
        for (i, (l, v)) in cols.iter().enumerate() {
            let x = 300.0 + i as f64 * 85.0;
            page.text(x, 700.0, size - 1.0, bold, *l);
            page.text(x, 686.0, size - 1.0, font, v.clone());
        }
    }
    let mut y = 610.0;
    page.text(left, y, size, bold, "Beskrivelse");
    page.text(330.0, y, size, bold, "Antall");
    page.right(right, y, size, bold, "Beløp");
    y -= 18.0;
    let mut net = 0;
    for _ in 0..rng.0.usize(1..6) {
        let (name, price) = *rng.pick(GOODS);
        let price = price * rng.0.i64(2..12);
        let qty = rng.0.i64(1..4);
        page.text(left, y, size, font, name);
        page.text(340.0, y, size, font, qty.to_string());
        page.right(right, y, size, font, amount(price * qty, style));
        net += price * qty;
        y -= 15.0;
    }
    let vat = (net * 25 + 50) / 100;
    let total = net + vat;
    y -= 10.0;
    page.text(330.0, y, size, font, "Sum eks. mva");
    page.right(right, y, size, font, amount(net, style));
    y -= 15.0;
    page.text(330.0, y, size, font, "Mva 25 %");
    page.right(460.0, y, size, font, amount(net, style));
    page.right(right, y, size, font, amount(vat, style));
    y -= 18.0;
    page.text(330.0, y, size + 1.0, bold, if rng.chance(0.5) { "Å betale" } else { "Totalt å betale" });
    page.right(right, y, size + 1.0, bold, amount(total, if rng.chance(0.5) { AmountStyle::Kroner } else { style }));
    y -= 60.0;
    page.text(left, y, size, bold, "Betalingsinformasjon");
    y -= 15.0;
    page.text(left, y, size, font, format!("Kontonr: {}", spaced(&account, &[4, 2, 5])));
    y -= 15.0;
    page.text(left, y, size, font, format!("KID: {kid}"));
    y -= 15.0;
    page.text(left, y, size, font, format!("Forfall: {}", date_text(due, ds)));
    page.text(left, 60.0, size - 2.0, font, format!("{vendor} - Org.nr {org} - Foretaksregisteret"));
    let expected = Expected {
        vendor,
        organization_number: org,
        date,
        total_minor: total,
        currency: "NOK",
        vat_minor: vat,
        invoice: Some((number, due, account, kid)),
    };
    (page, expected)
}

// --- Rendering and damage ---

fn render(pdf_path: &Path, dpi: u32) -> GrayImage {
    let out = pdf_path.with_extension("render");
    let status = Command::new("pdftoppm")
        .args(["-r", &dpi.to_string(), "-gray", "-png", "-singlefile"])
        .arg(pdf_path)
        .arg(&out)
        .status()
        .expect("pdftoppm (poppler-utils) is needed");
    assert!(status.success(), "pdftoppm failed");
    let png = PathBuf::from(format!("{}.png", out.display()));
    let img = image::open(&png).expect("rendered page").to_luma8();
    let _ = std::fs::remove_file(png);
    img
}

fn bilinear(img: &GrayImage, x: f64, y: f64, outside: f64) -> f64 {
    let (w, h) = img.dimensions();
    if x < 0.0 || y < 0.0 || x >= (w - 1) as f64 || y >= (h - 1) as f64 {
        return outside;
    }
    let (x0, y0) = (x as u32, y as u32);
    let (fx, fy) = (x - x0 as f64, y - y0 as f64);
    let p = |a, b| img.get_pixel(a, b).0[0] as f64;
    (p(x0, y0) * (1.0 - fx) + p(x0 + 1, y0) * fx) * (1.0 - fy)
        + (p(x0, y0 + 1) * (1.0 - fx) + p(x0 + 1, y0 + 1) * fx) * fy
}

/// A phone's photo of a page lying on a table.
fn photograph(rng: &mut Rng, page: &GrayImage, hard: bool) -> RgbImage {
    let (pw, ph) = page.dimensions();
    let margin = rng.range(0.06, 0.14);
    let (cw, ch) =
        ((pw as f64 * (1.0 + 2.0 * margin)) as u32, (ph as f64 * (1.0 + 2.0 * margin * pw as f64 / ph as f64)) as u32);
    let angle = rng.range(-7.0, 7.0).to_radians();
    let (s, c) = angle.sin_cos();
    let jitter = rng.range(0.0, 0.035);
    // Corners of the paper in the photo: rotated, then each pushed a little (perspective).
    let (cx, cy) = (cw as f64 / 2.0, ch as f64 / 2.0);
    let corners: Vec<(f64, f64)> = [(0.0, 0.0), (pw as f64, 0.0), (pw as f64, ph as f64), (0.0, ph as f64)]
        .iter()
        .map(|&(x, y)| {
            let (dx, dy) = (x - pw as f64 / 2.0, y - ph as f64 / 2.0);
            let (rx, ry) = (cx + dx * c - dy * s, cy + dx * s + dy * c);
            (rx + rng.range(-jitter, jitter) * pw as f64, ry + rng.range(-jitter, jitter) * ph as f64)
        })
        .collect();
    // Inverse map: photo pixel -> page pixel, by the homography page rect -> quad, inverted numerically
    // through bilinear interpolation of the quad (near enough for small jitter).
    let inv = invert_quad(&corners, pw as f64, ph as f64);
    let paper = rng.range(215.0, 250.0);
    let ink_fade = rng.range(0.65, 1.0);
    let table = rng.range(40.0, 110.0);
    let light_dir = rng.range(0.0, std::f64::consts::TAU);
    // One photo in three is a hard one: deep shadow, grain, blur.
    let light_depth = if hard { rng.range(0.35, 0.6) } else { rng.range(0.0, 0.4) };
    let noise = if hard { rng.range(10.0, 20.0) } else { rng.range(2.0, 10.0) };
    let mut grey = GrayImage::new(cw, ch);
    for (x, y, p) in grey.enumerate_pixels_mut() {
        let v = match inv(x as f64, y as f64) {
            Some((u, v)) if u >= 0.0 && v >= 0.0 && u < pw as f64 && v < ph as f64 => {
                let ink = bilinear(page, u, v, 255.0) / 255.0;
                paper * (1.0 - (1.0 - ink) * ink_fade)
            }
            _ => table + 10.0 * ((x as f64 / 37.0).sin() + (y as f64 / 53.0).cos()),
        };
        let (nx, ny) = (x as f64 / cw as f64 - 0.5, y as f64 / ch as f64 - 0.5);
        let light = 1.0 - light_depth * (0.5 + (nx * light_dir.cos() + ny * light_dir.sin()));
        let n = (rng.0.f64() + rng.0.f64() + rng.0.f64() - 1.5) * noise;
        p.0[0] = (v * light.clamp(0.4, 1.1) + n).clamp(0.0, 255.0) as u8;
    }
    let sigma = if hard { rng.range(1.2, 2.0) } else { rng.range(0.0, 1.2) } as f32;
    let grey = if sigma > 0.3 { imageops::blur(&grey, sigma) } else { grey };
    // A warm tint, as indoor light gives.
    let tint = (rng.range(1.0, 1.08), rng.range(0.97, 1.02), rng.range(0.85, 0.97));
    RgbImage::from_fn(cw, ch, |x, y| {
        let g = grey.get_pixel(x, y).0[0] as f64;
        Rgb([(g * tint.0).min(255.0) as u8, (g * tint.1).min(255.0) as u8, (g * tint.2).min(255.0) as u8])
    })
}

/// For a quad (the page's corners in the photo), a map from photo pixels to page pixels.
fn invert_quad(q: &[(f64, f64)], w: f64, h: f64) -> impl Fn(f64, f64) -> Option<(f64, f64)> {
    let quad = [q[0], q[1], q[2], q[3]];
    let rect = [(0.0, 0.0), (w, 0.0), (w, h), (0.0, h)];
    let map = Projective::between(&quad, &rect).expect("a sheet's corners are in general position");
    move |x, y| map.apply(x, y)
}

/// A scanner's copy: grey paper, a slight tilt, some noise, 200 dpi.
fn scan(rng: &mut Rng, page: &GrayImage) -> GrayImage {
    let (w, h) = page.dimensions();
    let angle = rng.range(-1.5, 1.5).to_radians();
    let (s, c) = angle.sin_cos();
    let (cx, cy) = (w as f64 / 2.0, h as f64 / 2.0);
    let paper = rng.range(225.0, 245.0);
    GrayImage::from_fn(w, h, |x, y| {
        let (dx, dy) = (x as f64 - cx, y as f64 - cy);
        let ink = bilinear(page, cx + dx * c + dy * s, cy - dx * s + dy * c, 255.0) / 255.0;
        let n = (rng.0.f64() - 0.5) * 12.0;
        Luma([(paper * ink + n).clamp(0.0, 255.0) as u8])
    })
}

fn jpeg_rgb(img: &RgbImage, quality: u8) -> Vec<u8> {
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality).encode_image(img).expect("jpeg");
    out
}

fn jpeg_grey(img: &GrayImage, quality: u8) -> Vec<u8> {
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality).encode_image(img).expect("jpeg");
    out
}

fn main() {
    let dir: PathBuf = std::env::args().nth(1).unwrap_or_else(|| "core/reader/testdata/set".into()).into();
    std::fs::create_dir_all(&dir).expect("output folder");
    let mut rng = Rng(fastrand::Rng::with_seed(2026_11_24));
    let today = NaiveDate::from_ymd_opt(READ_ON.0, READ_ON.1, READ_ON.2).expect("a date");
    let mut documents = Vec::new();
    for n in 0..RECEIPTS + INVOICES {
        let is_invoice = n >= RECEIPTS;
        let id = if is_invoice { format!("invoice-{:02}", n - RECEIPTS + 1) } else { format!("receipt-{:02}", n + 1) };
        let (page, expected) = if is_invoice { invoice(&mut rng, n, today) } else { receipt(&mut rng, n, today) };
        let pdf_name = format!("{id}.pdf");
        let pdf_path = dir.join(&pdf_name);
        std::fs::write(&pdf_path, pdf(&page, None)).expect("pdf");
        let hard = n % 3 == 1;
        let dpi = if is_invoice { rng.0.u32(150..190) } else { rng.0.u32(200..280) };
        let rendered = render(&pdf_path, dpi);
        let photo = photograph(&mut rng, &rendered, hard);
        let photo_name = format!("{id}.jpg");
        let quality = if hard { rng.0.u8(40..60) } else { rng.0.u8(55..80) };
        std::fs::write(dir.join(&photo_name), jpeg_rgb(&photo, quality)).expect("photo");
        // Every fifth document also as a scan: an image-only PDF.
        let scan_name = (n % 5 == 2).then(|| {
            let scanned = scan(&mut rng, &render(&pdf_path, 200));
            let (w, h) = scanned.dimensions();
            let bytes = jpeg_grey(&scanned, 70);
            let name = format!("{id}-scan.pdf");
            let holder = Page { width: page.width, height: page.height, texts: Vec::new() };
            std::fs::write(dir.join(&name), pdf(&holder, Some((&bytes, w, h)))).expect("scan");
            name
        });
        let mut fields = json!({
            "vendor": expected.vendor,
            "organization_number": expected.organization_number,
            "date": expected.date.to_string(),
            "total_minor": expected.total_minor,
            "currency": expected.currency,
            "vat_minor": expected.vat_minor,
        });
        if let Some((number, due, account, kid)) = &expected.invoice {
            fields["invoice_number"] = json!(number);
            fields["due_date"] = json!(due.to_string());
            fields["account_number"] = json!(account);
            fields["kid"] = json!(kid);
        }
        documents.push(json!({
            "id": id,
            "kind": if is_invoice { "invoice" } else { "receipt" },
            "pdf": pdf_name,
            "photo": photo_name,
            "scan": scan_name,
            "expected": fields,
        }));
        eprintln!("{id}");
    }
    let labels = json!({
        "about": "Generated by `cargo run -p bookkeeper-reader --example labelled_set`; every value is what the document says.",
        "read_on": today.to_string(),
        "documents": documents,
    });
    std::fs::write(dir.join("labels.json"), serde_json::to_string_pretty(&labels).expect("json") + "\n")
        .expect("labels");
}
