//! Conversions between protobuf timestamps and UTC instants.

use chrono::{DateTime, Utc};
use prost_types::Timestamp;

/// Why a protobuf timestamp is not a usable instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TimestampError {
    /// A required timestamp is absent.
    #[error("is required")]
    Missing,
    /// Outside what the service can represent, or nanoseconds out of range.
    #[error("is not a valid timestamp")]
    OutOfRange,
}

/// The instant `timestamp` denotes, truncated to microseconds (what every store keeps).
pub fn from_proto(timestamp: &Timestamp) -> Result<DateTime<Utc>, TimestampError> {
    let nanos = u32::try_from(timestamp.nanos).map_err(|_| TimestampError::OutOfRange)?;
    if nanos >= 1_000_000_000 {
        return Err(TimestampError::OutOfRange);
    }
    DateTime::from_timestamp(timestamp.seconds, nanos - nanos % 1_000)
        .ok_or(TimestampError::OutOfRange)
}

/// Like [`from_proto`] for a field that must be present.
pub fn required(timestamp: Option<&Timestamp>) -> Result<DateTime<Utc>, TimestampError> {
    from_proto(timestamp.ok_or(TimestampError::Missing)?)
}

/// Like [`from_proto`] for a field that may be absent.
pub fn optional(timestamp: Option<&Timestamp>) -> Result<Option<DateTime<Utc>>, TimestampError> {
    timestamp.map(from_proto).transpose()
}

/// The protobuf form of `instant`.
pub fn to_proto(instant: DateTime<Utc>) -> Timestamp {
    Timestamp {
        seconds: instant.timestamp(),
        nanos: i32::try_from(instant.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_at_microsecond_precision() {
        let proto = Timestamp {
            seconds: 1_790_000_000,
            nanos: 123_456_789,
        };
        let instant = from_proto(&proto).unwrap();
        assert_eq!(to_proto(instant).nanos, 123_456_000);
        assert_eq!(to_proto(instant).seconds, proto.seconds);
    }

    #[test]
    fn negative_or_overflowing_nanos_are_refused() {
        for nanos in [-1, 1_000_000_000] {
            let proto = Timestamp { seconds: 0, nanos };
            assert_eq!(from_proto(&proto), Err(TimestampError::OutOfRange));
        }
    }

    #[test]
    fn absent_required_timestamp_is_missing() {
        assert_eq!(required(None), Err(TimestampError::Missing));
    }
}
