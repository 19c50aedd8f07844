//! Receipts and invoices: stored once, content-addressed by SHA-256, their type
//! checked by content (a file's name and the sender's `Content-Type` are only
//! hints, and a mislabelled file would be refused by Fiken or Folio much later).

use bookkeeper_core::{Store, StoreError};

/// The largest document accepted by default: 20 MiB.
pub const DEFAULT_MAX_BYTES: usize = 20 * 1024 * 1024;

pub use bookkeeper_core::document::{sniff, DocumentType};

/// Why a document was refused. Nothing was stored.
#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    /// Empty body.
    #[error("the document is empty")]
    Empty,
    /// Over the limit.
    #[error("the document is {size} bytes; the limit is {limit} bytes")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Not a PDF, JPEG, PNG or HEIC file, whatever its name says.
    #[error("not a receipt or invoice: the content is not PDF, JPEG, PNG or HEIC")]
    UnsupportedType,
    /// The log failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A stored document, as `POST /documents` answers it.
pub use bookkeeper_http::wire::accounting::StoredDocument;

/// Checks and stores a document; storing the same bytes again returns the same hash.
pub async fn store(store: &Store, bytes: &[u8], max_bytes: usize) -> Result<StoredDocument, DocumentError> {
    if bytes.is_empty() {
        return Err(DocumentError::Empty);
    }
    if bytes.len() > max_bytes {
        return Err(DocumentError::TooLarge { size: bytes.len(), limit: max_bytes });
    }
    let kind = sniff(bytes).ok_or(DocumentError::UnsupportedType)?;
    let sha256 = store.put_blob(bytes, kind.mime()).await?;
    Ok(StoredDocument { sha256, content_type: kind.mime().to_string(), size: bytes.len() })
}

/// A file name for sending a document to Fiken or Folio: the proposal's name
/// without path or control characters, with the extension its type needs.
pub fn upload_name(filename: &str, kind: DocumentType) -> String {
    let base = filename.rsplit(['/', '\\']).next().unwrap_or_default();
    let clean: String = base.chars().filter(|c| !c.is_control() && *c != '"').collect::<String>().replace(' ', "_");
    let clean = if clean.is_empty() { "document".to_string() } else { clean };
    let lower = clean.to_ascii_lowercase();
    let fits = match kind {
        DocumentType::Jpeg => lower.ends_with(".jpg") || lower.ends_with(".jpeg"),
        other => lower.ends_with(other.extension()),
    };
    if fits {
        clean
    } else {
        format!("{clean}{}", kind.extension())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_are_recognised_by_content_not_name() {
        assert_eq!(sniff(b"%PDF-1.7\n..."), Some(DocumentType::Pdf));
        assert_eq!(sniff(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10]), Some(DocumentType::Jpeg));
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"), Some(DocumentType::Png));
        assert_eq!(sniff(b"\0\0\0\x18ftypheic\0\0\0\0mif1heic"), Some(DocumentType::Heic));
        assert_eq!(sniff(b"\0\0\0\x18ftypisom\0\0\0\0"), None, "an MP4 is not a receipt");
        assert_eq!(sniff(b"MZ\x90\0 a windows program named receipt.pdf"), None);
        assert_eq!(sniff(b"PK\x03\x04"), None);
        assert_eq!(sniff(b""), None);
    }

    #[test]
    fn upload_names_are_safe_and_carry_the_right_extension() {
        assert_eq!(upload_name("kiwi.pdf", DocumentType::Pdf), "kiwi.pdf");
        assert_eq!(upload_name("IMG 0042.JPEG", DocumentType::Jpeg), "IMG_0042.JPEG");
        assert_eq!(upload_name("scan", DocumentType::Png), "scan.png");
        assert_eq!(upload_name("../../etc/passwd", DocumentType::Pdf), "passwd.pdf");
        assert_eq!(upload_name("", DocumentType::Pdf), "document.pdf");
        assert_eq!(upload_name("a\"b\n.pdf", DocumentType::Pdf), "ab.pdf");
    }
}
