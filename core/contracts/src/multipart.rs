//! Just enough of `multipart/form-data` (RFC 7578) to name a form's fields.

/// The boundary of a `multipart/form-data` content type.
pub(crate) fn boundary(content_type: &str) -> Option<String> {
    content_type.split(';').map(str::trim).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim().eq_ignore_ascii_case("boundary").then(|| v.trim().trim_matches('"').to_string())
    })
}

/// Each part's field name and bytes, in order.
pub(crate) fn fields(body: &[u8], boundary: &str) -> Result<Vec<(String, Vec<u8>)>, String> {
    let delimiter = format!("--{boundary}");
    let d = delimiter.as_bytes();
    let mut out = Vec::new();
    let starts: Vec<usize> =
        (0..body.len().saturating_sub(d.len() - 1)).filter(|&i| &body[i..i + d.len()] == d).collect();
    if starts.is_empty() {
        return Err("multipart body without its boundary".into());
    }
    // The last delimiter must close the body (`--boundary--`), or a part was cut off.
    let closed = starts.last().is_some_and(|&i| body[i + d.len()..].starts_with(b"--"));
    if !closed {
        return Err("multipart body without its closing delimiter".into());
    }
    for pair in starts.windows(2) {
        let part = &body[pair[0] + d.len()..pair[1]];
        let part = part.strip_prefix(b"\r\n").unwrap_or(part);
        let Some(split) = part.windows(4).position(|w| w == b"\r\n\r\n") else {
            return Err("a multipart part without headers".into());
        };
        let head = String::from_utf8_lossy(&part[..split]);
        let content = &part[split + 4..];
        let content = content.strip_suffix(b"\r\n").unwrap_or(content);
        let name = head
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("content-disposition:"))
            .and_then(|l| {
                l.split(';').map(str::trim).find_map(|p| {
                    let (k, v) = p.split_once('=')?;
                    (k.trim() == "name").then(|| v.trim().trim_matches('"').to_string())
                })
            })
            .ok_or("a multipart part without a field name")?;
        out.push((name, content.to_vec()));
    }
    Ok(out)
}
