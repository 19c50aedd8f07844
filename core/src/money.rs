//! Amounts as text, to and from integer minor units (øre for NOK), exactly or not
//! at all: there is no float anywhere. Two grammars, one module: the wire's
//! decimal strings (Folio's `"1000.00"`: [`parse_decimal`], [`format_minor`]) and
//! what people write (`499,50`, `1 249,00 kr`: [`parse_written`], Book-E).

/// Why a text is not an amount. Names the text, which is the caller's own input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    /// Not a decimal string with at most two decimals.
    #[error("`{0}` is not an amount with at most two decimals")]
    NotDecimal(String),
    /// Not an amount as a person writes one.
    #[error("`{0}` is not an amount (write it like 499,00 or 1 249.50)")]
    NotWritten(String),
}

/// Parses `"1234.5"`, `"-0.01"`, `"12"` into minor units (123450, -1, 1200).
/// Refuses more than two decimals, separators other than `.`, exponents, and
/// anything that does not fit.
pub fn parse_decimal(text: &str) -> Result<i64, MoneyError> {
    let fail = || MoneyError::NotDecimal(text.to_string());
    let t = text.trim();
    let (negative, digits) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let (whole, fraction) = match digits.split_once('.') {
        Some((w, f)) => (w, f),
        None => (digits, ""),
    };
    if whole.is_empty()
        || fraction.len() > 2
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
        || (digits.contains('.') && fraction.is_empty())
    {
        return Err(fail());
    }
    let whole: i64 = whole.parse().map_err(|_| fail())?;
    let cents: i64 = match fraction.len() {
        0 => 0,
        1 => fraction.parse::<i64>().map_err(|_| fail())? * 10,
        _ => fraction.parse().map_err(|_| fail())?,
    };
    let minor = whole.checked_mul(100).and_then(|m| m.checked_add(cents)).ok_or_else(fail)?;
    Ok(if negative { -minor } else { minor })
}

/// Formats minor units as a decimal string with two decimals: 123450 -> `"1234.50"`.
pub fn format_minor(minor: i64) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

/// Parses a person's amount: `499`, `499,50`, `499.50`, `1 249,00`, `12 500 kr`,
/// `NOK 89`. Into minor units; more than two decimals is refused, not rounded.
pub fn parse_written(text: &str) -> Result<i64, MoneyError> {
    let bad = || MoneyError::NotWritten(text.to_string());
    let cleaned: String = text
        .trim()
        .trim_start_matches("NOK")
        .trim_start_matches("kr")
        .trim_end_matches("NOK")
        .trim_end_matches(",-")
        .trim_end_matches("kr")
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '\u{a0}')
        .collect();
    if cleaned.is_empty() || cleaned.starts_with('-') {
        return Err(bad());
    }
    let (whole, fraction) = match cleaned.rfind([',', '.']) {
        // A separator followed by exactly 3 digits is a thousands separator (1.249 / 1,249).
        Some(i) if cleaned.len() - i - 1 == 3 => (cleaned.as_str(), ""),
        Some(i) => (&cleaned[..i], &cleaned[i + 1..]),
        None => (cleaned.as_str(), ""),
    };
    // Thousands groups: 1-3 digits first (any number when there is only one), then exactly 3.
    let groups: Vec<&str> = whole.split([',', '.']).collect();
    let digits = |g: &str| !g.is_empty() && g.bytes().all(|b| b.is_ascii_digit());
    let grouped = groups
        .iter()
        .enumerate()
        .all(|(i, g)| digits(g) && (groups.len() == 1 || if i == 0 { g.len() <= 3 } else { g.len() == 3 }));
    // The decimal separator cannot also separate thousands (`1,234,5`).
    let mixed = cleaned.rfind([',', '.']).is_some_and(|i| !fraction.is_empty() && whole.contains(&cleaned[i..=i]));
    if !grouped || mixed || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let whole = groups.concat();
    if fraction.len() > 2 {
        return Err(bad());
    }
    let whole: i64 = whole.parse().map_err(|_| bad())?;
    let fraction: i64 = format!("{fraction:0<2}").parse().map_err(|_| bad())?;
    whole.checked_mul(100).and_then(|w| w.checked_add(fraction)).filter(|m| *m > 0).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_strings_become_exact_minor_units() {
        assert_eq!(parse_decimal("1000.00"), Ok(100_000));
        assert_eq!(parse_decimal("1234.5"), Ok(123_450));
        assert_eq!(parse_decimal("12"), Ok(1_200));
        assert_eq!(parse_decimal("-0.01"), Ok(-1));
        assert_eq!(parse_decimal("+3.10"), Ok(310));
        assert_eq!(parse_decimal("0.07"), Ok(7));
    }

    #[test]
    fn anything_inexact_or_odd_is_refused() {
        for bad in ["1,00", "1.001", "", "-", ".5", "5.", "1e3", "abc", "1 000.00", "99999999999999999999.00", "--1"] {
            assert!(parse_decimal(bad).is_err(), "{bad:?} should be refused");
        }
        assert_eq!(
            parse_decimal("1.001").unwrap_err().to_string(),
            "`1.001` is not an amount with at most two decimals"
        );
    }

    #[test]
    fn formatting_round_trips() {
        for minor in [0, 1, -1, 99, 100, 123_450, -987_654_321] {
            assert_eq!(parse_decimal(&format_minor(minor)), Ok(minor));
        }
        assert_eq!(format_minor(-5), "-0.05");
    }

    #[test]
    fn amounts_as_people_write_them() {
        assert_eq!(parse_written("499").unwrap(), 49_900);
        assert_eq!(parse_written("499,50").unwrap(), 49_950);
        assert_eq!(parse_written("499.5").unwrap(), 49_950);
        assert_eq!(parse_written("1 249,00").unwrap(), 124_900);
        assert_eq!(parse_written("12 500 kr").unwrap(), 1_250_000);
        assert_eq!(parse_written("NOK 89").unwrap(), 8_900);
        assert_eq!(parse_written("1.249").unwrap(), 124_900, "a thousands separator");
        assert_eq!(parse_written("1.249,50").unwrap(), 124_950);
        assert_eq!(parse_written("499,-").unwrap(), 49_900);
        for bad in ["", "abc", "-5", "0", "1,234,5", "12.345.6", "1234.567.8"] {
            assert!(parse_written(bad).is_err(), "{bad}");
        }
        assert!(parse_written("0,0011").is_err(), "more than two decimals are refused, not rounded");
    }
}
