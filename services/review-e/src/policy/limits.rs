//! The limits one policy component runs under, and the operator's ceilings.
//!
//! A Rust policy is a few hundred kilobytes and runs in well under a millisecond
//! in one core instance; a Python or JavaScript policy carries its interpreter
//! (12-18 MB, up to 40 core instances, 9-12 MiB of initial memory). One set of
//! limits for both would either refuse the second or loosen the first, so each
//! component runs under its own limits: asked for by its author when publishing,
//! the operator's defaults where the author says nothing, never above the
//! operator's maxima, and recorded in the `PolicyPublished` event.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Bytes in a mebibyte.
const MIB: usize = 1 << 20;

/// The limits one component runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock budget of one evaluation, instantiation included.
    pub deadline: Duration,
    /// Largest linear memory an instance may grow to, in bytes.
    pub memory_bytes: usize,
    /// Largest component accepted, in bytes.
    pub component_bytes: usize,
    /// Most core WebAssembly instances one instantiation may create.
    pub core_instances: u32,
}

impl Default for Limits {
    /// Today's tight limits, what a Rust policy gets without asking.
    fn default() -> Self {
        Limits {
            deadline: Duration::from_millis(10),
            memory_bytes: 16 * MIB,
            component_bytes: 8 * MIB,
            core_instances: 8,
        }
    }
}

impl Limits {
    /// The operator's ceilings when they set none: room for a Python or
    /// JavaScript policy (its interpreter included) and a little more.
    pub fn default_maxima() -> Limits {
        Limits {
            deadline: Duration::from_millis(100),
            memory_bytes: 64 * MIB,
            // A component is stored as a blob; it can be no larger than one.
            component_bytes: bookkeeper_core::store::MAX_BLOB_BYTES,
            core_instances: 64,
        }
    }

    /// The larger of each limit.
    pub fn max(self, other: Limits) -> Limits {
        Limits {
            deadline: self.deadline.max(other.deadline),
            memory_bytes: self.memory_bytes.max(other.memory_bytes),
            component_bytes: self.component_bytes.max(other.component_bytes),
            core_instances: self.core_instances.max(other.core_instances),
        }
    }

    /// The smaller of each limit.
    pub fn min(self, other: Limits) -> Limits {
        Limits {
            deadline: self.deadline.min(other.deadline),
            memory_bytes: self.memory_bytes.min(other.memory_bytes),
            component_bytes: self.component_bytes.min(other.component_bytes),
            core_instances: self.core_instances.min(other.core_instances),
        }
    }

    /// The first limit of these above `maxima`, if any.
    pub fn above(&self, maxima: &Limits) -> Option<LimitAbove> {
        let checks = [
            ("deadline_ms", self.deadline.as_millis() as u64, maxima.deadline.as_millis() as u64),
            ("memory_mib", mib_ceil(self.memory_bytes), (maxima.memory_bytes / MIB) as u64),
            ("component_mib", mib_ceil(self.component_bytes), (maxima.component_bytes / MIB) as u64),
            ("core_instances", u64::from(self.core_instances), u64::from(maxima.core_instances)),
        ];
        let exact = [
            self.deadline > maxima.deadline,
            self.memory_bytes > maxima.memory_bytes,
            self.component_bytes > maxima.component_bytes,
            self.core_instances > maxima.core_instances,
        ];
        checks.into_iter().zip(exact).find(|(_, above)| *above).map(|((limit, asked, max), _)| LimitAbove {
            limit,
            asked,
            max,
        })
    }
}

fn mib_ceil(bytes: usize) -> u64 {
    bytes.div_ceil(MIB) as u64
}

/// A limit asked for above the operator's maximum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitAbove {
    /// Which limit, as the author names it (`memory_mib`, ...).
    pub limit: &'static str,
    /// What was asked.
    pub asked: u64,
    /// The maximum.
    pub max: u64,
}

impl std::fmt::Display for LimitAbove {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} is above this deployment's maximum of {}", self.limit, self.asked, self.max)
    }
}

/// What a policy's author asks for, in the units they think in: the file
/// beside a component (`<name>.limits.json`), or the upload's query. Every
/// field is optional; what is left out is the operator's default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsRequest {
    /// Wall-clock budget of one evaluation, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_ms: Option<u64>,
    /// Largest linear memory, in MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mib: Option<u64>,
    /// Largest component, in MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component_mib: Option<u64>,
    /// Most core instances.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub core_instances: Option<u32>,
}

/// Why a request cannot be granted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitsError {
    /// Zero, or too large to mean anything.
    #[error("{limit} must be at least 1 (and a sane number), not {value}")]
    Nonsense { limit: &'static str, value: u64 },
    /// Above the operator's maximum.
    #[error("{0}; ask the operator to raise it, or ask for less")]
    AboveMaximum(LimitAbove),
    /// The limits file or query cannot be read.
    #[error("the limits cannot be read: {0}")]
    Unreadable(String),
}

impl LimitsRequest {
    /// Parses a limits file.
    pub fn parse(json: &[u8]) -> Result<LimitsRequest, LimitsError> {
        serde_json::from_slice(json).map_err(|e| LimitsError::Unreadable(e.to_string()))
    }

    /// Whether nothing is asked for.
    pub fn is_empty(&self) -> bool {
        *self == LimitsRequest::default()
    }

    /// The limits granted: `defaults` where nothing is asked, refused above `maxima`.
    pub fn grant(&self, defaults: &Limits, maxima: &Limits) -> Result<Limits, LimitsError> {
        fn sane(limit: &'static str, value: u64, max: u64) -> Result<u64, LimitsError> {
            if value == 0 || value > max {
                return Err(LimitsError::Nonsense { limit, value });
            }
            Ok(value)
        }
        let mib = |limit, v: Option<u64>, default: usize| -> Result<usize, LimitsError> {
            match v {
                None => Ok(default),
                Some(v) => Ok(sane(limit, v, 1 << 20)? as usize * MIB),
            }
        };
        let limits = Limits {
            deadline: match self.deadline_ms {
                None => defaults.deadline,
                Some(ms) => Duration::from_millis(sane("deadline_ms", ms, 3_600_000)?),
            },
            memory_bytes: mib("memory_mib", self.memory_mib, defaults.memory_bytes)?,
            component_bytes: mib("component_mib", self.component_mib, defaults.component_bytes)?,
            core_instances: match self.core_instances {
                None => defaults.core_instances,
                Some(n) => sane("core_instances", u64::from(n), 100_000)? as u32,
            },
        };
        match limits.above(maxima) {
            Some(above) => Err(LimitsError::AboveMaximum(above)),
            None => Ok(limits),
        }
    }
}

/// The limits as `PolicyPublished` records them, in exact units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedLimits {
    /// Milliseconds.
    pub deadline_ms: u64,
    /// Bytes.
    pub memory_bytes: u64,
    /// Bytes.
    pub component_bytes: u64,
    /// Core instances.
    pub core_instances: u32,
}

impl From<Limits> for RecordedLimits {
    fn from(l: Limits) -> Self {
        RecordedLimits {
            deadline_ms: l.deadline.as_millis() as u64,
            memory_bytes: l.memory_bytes as u64,
            component_bytes: l.component_bytes as u64,
            core_instances: l.core_instances,
        }
    }
}

impl From<RecordedLimits> for Limits {
    fn from(r: RecordedLimits) -> Self {
        Limits {
            deadline: Duration::from_millis(r.deadline_ms),
            memory_bytes: usize::try_from(r.memory_bytes).unwrap_or(usize::MAX),
            component_bytes: usize::try_from(r.component_bytes).unwrap_or(usize::MAX),
            core_instances: r.core_instances,
        }
    }
}

impl RecordedLimits {
    /// In the author's units, for `policy list`.
    pub fn describe(&self) -> String {
        format!(
            "{} ms, {} MiB memory, {} MiB component, {} core instances",
            self.deadline_ms,
            (self.memory_bytes as usize).div_ceil(MIB),
            (self.component_bytes as usize).div_ceil(MIB),
            self.core_instances
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_not_asked_for_is_the_default() {
        let granted = LimitsRequest::default().grant(&Limits::default(), &Limits::default_maxima()).unwrap();
        assert_eq!(granted, Limits::default());
        let python = LimitsRequest { memory_mib: Some(48), core_instances: Some(48), ..Default::default() };
        let granted = python.grant(&Limits::default(), &Limits::default_maxima()).unwrap();
        assert_eq!(granted.memory_bytes, 48 * MIB);
        assert_eq!(granted.core_instances, 48);
        assert_eq!(granted.deadline, Limits::default().deadline);
    }

    #[test]
    fn above_the_maximum_or_zero_is_refused() {
        let greedy = LimitsRequest { memory_mib: Some(65), ..Default::default() };
        let err = greedy.grant(&Limits::default(), &Limits::default_maxima()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "memory_mib 65 is above this deployment's maximum of 64; ask the operator to raise it, or ask for less"
        );
        let zero = LimitsRequest { deadline_ms: Some(0), ..Default::default() };
        assert!(matches!(zero.grant(&Limits::default(), &Limits::default_maxima()), Err(LimitsError::Nonsense { .. })));
        let huge = LimitsRequest { component_mib: Some(u64::MAX), ..Default::default() };
        assert!(matches!(huge.grant(&Limits::default(), &Limits::default_maxima()), Err(LimitsError::Nonsense { .. })));
    }

    #[test]
    fn a_limits_file_with_a_misspelt_field_is_refused() {
        let err = LimitsRequest::parse(br#"{"memory_mb": 32}"#).unwrap_err();
        assert!(err.to_string().contains("memory_mb"), "{err}");
        assert_eq!(LimitsRequest::parse(br#"{"memory_mib": 32}"#).unwrap().memory_mib, Some(32));
    }

    #[test]
    fn recorded_limits_round_trip() {
        let l = Limits { memory_bytes: 48 * MIB, core_instances: 40, ..Limits::default() };
        assert_eq!(Limits::from(RecordedLimits::from(l)), l);
    }
}
