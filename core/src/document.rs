//! What a stored document is, told by its bytes: a file's name and the sender's
//! `Content-Type` are only hints (a mislabelled file would be refused by Fiken
//! or Folio much later, or shown as something it is not).

use serde::Serialize;

/// A document type Bookkeeper accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum DocumentType {
    /// `application/pdf`
    Pdf,
    /// `image/jpeg`
    Jpeg,
    /// `image/png`
    Png,
    /// `image/heic` (iPhone photos). Folio and Fiken do not take it as an
    /// attachment; it is stored, and executing it fails with that reason.
    Heic,
}

impl DocumentType {
    /// The MIME type.
    pub fn mime(self) -> &'static str {
        match self {
            DocumentType::Pdf => "application/pdf",
            DocumentType::Jpeg => "image/jpeg",
            DocumentType::Png => "image/png",
            DocumentType::Heic => "image/heic",
        }
    }

    /// The usual file extension, with its dot.
    pub fn extension(self) -> &'static str {
        match self {
            DocumentType::Pdf => ".pdf",
            DocumentType::Jpeg => ".jpg",
            DocumentType::Png => ".png",
            DocumentType::Heic => ".heic",
        }
    }

    /// The type whose MIME type this is.
    pub fn from_mime(mime: &str) -> Option<DocumentType> {
        [DocumentType::Pdf, DocumentType::Jpeg, DocumentType::Png, DocumentType::Heic]
            .into_iter()
            .find(|t| t.mime().eq_ignore_ascii_case(mime.trim()))
    }
}

/// Recognises a document by its first bytes.
pub fn sniff(bytes: &[u8]) -> Option<DocumentType> {
    if bytes.starts_with(b"%PDF-") {
        return Some(DocumentType::Pdf);
    }
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Some(DocumentType::Jpeg);
    }
    if bytes.starts_with(&[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A]) {
        return Some(DocumentType::Png);
    }
    // ISO base media file: a box size, then `ftyp` and a HEIF brand.
    if bytes.len() >= 12 && &bytes[4..8] == b"ftyp" {
        const BRANDS: [&[u8; 4]; 7] = [b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1"];
        if BRANDS.iter().any(|b| &bytes[8..12] == *b) {
            return Some(DocumentType::Heic);
        }
    }
    None
}
