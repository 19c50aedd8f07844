//! Money on the wire: Folio speaks decimal strings in major units (`"1000.00"`),
//! we keep integer minor units. The conversion is exact or it fails; there is no
//! float anywhere.

/// Why a decimal string is not an amount.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not an amount with at most two decimals")]
pub struct MoneyError {
    text: String,
}

/// Parses `"1234.5"`, `"-0.01"`, `"12"` into minor units (123450, -1, 1200).
/// Refuses more than two decimals, separators other than `.`, exponents, and
/// anything that does not fit.
pub fn parse_minor(text: &str) -> Result<i64, MoneyError> {
    let fail = || MoneyError { text: text.to_string() };
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_strings_become_exact_minor_units() {
        assert_eq!(parse_minor("1000.00"), Ok(100_000));
        assert_eq!(parse_minor("1234.5"), Ok(123_450));
        assert_eq!(parse_minor("12"), Ok(1_200));
        assert_eq!(parse_minor("-0.01"), Ok(-1));
        assert_eq!(parse_minor("+3.10"), Ok(310));
        assert_eq!(parse_minor("0.07"), Ok(7));
    }

    #[test]
    fn anything_inexact_or_odd_is_refused() {
        for bad in ["1,00", "1.001", "", "-", ".5", "5.", "1e3", "abc", "1 000.00", "99999999999999999999.00", "--1"] {
            assert!(parse_minor(bad).is_err(), "{bad:?} should be refused");
        }
        assert_eq!(parse_minor("1.001").unwrap_err().to_string(), "`1.001` is not an amount with at most two decimals");
    }

    #[test]
    fn formatting_round_trips() {
        for minor in [0, 1, -1, 99, 100, 123_450, -987_654_321] {
            assert_eq!(parse_minor(&format_minor(minor)), Ok(minor));
        }
        assert_eq!(format_minor(-5), "-0.05");
    }
}
