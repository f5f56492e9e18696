//! SystemTime to the ASN.1 time types, in whole seconds.
//!
//! ```text
//! Time ::= CHOICE { utcTime UTCTime, generalTime GeneralizedTime }
//!   -- dates through 2049 as UTCTime, from 2050 on as GeneralizedTime   (RFC 5280 4.1.2.5, 5.1.2.4)
//! ```

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use der::asn1::{GeneralizedTime, UtcTime};
use x509_cert::time::Time;

/// `time` truncated to whole seconds since the epoch; times before 1970 are refused.
fn whole_seconds(time: SystemTime) -> der::Result<Duration> {
    let since = time
        .duration_since(UNIX_EPOCH)
        .map_err(|_| der::Error::from(der::ErrorKind::DateTime))?;
    Ok(Duration::from_secs(since.as_secs()))
}

/// A GeneralizedTime in whole seconds, `YYYYMMDDHHMMSSZ` (RFC 5280 4.1.2.5.2).
pub(crate) fn generalized(time: SystemTime) -> der::Result<GeneralizedTime> {
    GeneralizedTime::from_unix_duration(whole_seconds(time)?)
}

/// A Time as RFC 5280 wants it: UTCTime through 2049, GeneralizedTime after.
pub(crate) fn rfc5280(time: SystemTime) -> der::Result<Time> {
    let since = whole_seconds(time)?;
    let general = GeneralizedTime::from_unix_duration(since)?;
    if general.to_date_time().year() <= UtcTime::MAX_YEAR {
        Ok(Time::UtcTime(UtcTime::from_unix_duration(since)?))
    } else {
        Ok(Time::GeneralTime(general))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use der::Encode;

    #[test]
    fn utc_through_2049_generalized_after() {
        let at = |secs| UNIX_EPOCH + Duration::from_secs(secs);
        // 2049-12-31T23:59:59Z and 2050-01-01T00:00:00Z.
        assert!(matches!(rfc5280(at(2_524_607_999)), Ok(Time::UtcTime(_))));
        assert!(matches!(
            rfc5280(at(2_524_608_000)),
            Ok(Time::GeneralTime(_))
        ));
    }

    #[test]
    fn fractions_are_dropped() {
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_999);
        let der = generalized(t).and_then(|g| g.to_der()).expect("encodes");
        assert_eq!(&der[2..], b"20231114221320Z");
        assert!(generalized(UNIX_EPOCH - Duration::from_secs(1)).is_err());
    }
}
