//! When the certificates the gateway trusts stop being valid: the CA files
//! it verifies PostgreSQL (`DATABASE_CA_FILE`) and the key service
//! (`PHI_KEK_CA_FILE`) against. Read at each scrape (a file replaced in
//! place is what the next connection uses), reported as
//! `phi_tls_ca_not_after_timestamp_seconds{file}`: the earliest `notAfter`
//! of the certificates in the file.
//!
//! Only the validity is read, by walking the DER to it (Certificate ->
//! tbsCertificate -> validity): no X.509 library for one date.

use base64::Engine;

/// The earliest `notAfter` (Unix seconds) of the PEM certificates in
/// `text`; None when there is none, or one cannot be read.
pub fn earliest_not_after(text: &str) -> Option<i64> {
    let mut earliest: Option<i64> = None;
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN CERTIFICATE-----") {
        let body = &rest[start + 27..];
        let end = body.find("-----END CERTIFICATE-----")?;
        let b64: String = body[..end].split_whitespace().collect();
        let der = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
        let t = not_after(&der)?;
        earliest = Some(earliest.map_or(t, |e| e.min(t)));
        rest = &body[end..];
    }
    earliest
}

/// One DER element: (tag, contents, what follows it).
fn element(der: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = der.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |a, b| (a << 8) | *b as usize);
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

fn not_after(der: &[u8]) -> Option<i64> {
    const SEQUENCE: u8 = 0x30;
    let (tag, cert, _) = element(der)?;
    if tag != SEQUENCE {
        return None;
    }
    let (tag, tbs, _) = element(cert)?;
    if tag != SEQUENCE {
        return None;
    }
    // [0] version (optional), serialNumber, signature, issuer, validity.
    let mut at = tbs;
    let (tag, _, after) = element(at)?;
    if tag == 0xa0 {
        at = after;
    }
    for _ in 0..3 {
        at = element(at)?.2;
    }
    let (tag, validity, _) = element(at)?;
    if tag != SEQUENCE {
        return None;
    }
    let (_, _, after_not_before) = element(validity)?;
    let (tag, time, _) = element(after_not_before)?;
    let text = std::str::from_utf8(time).ok()?;
    let (year, rest) = match tag {
        // UTCTime: YYMMDDHHMMSSZ, 50-99 meaning 19xx (RFC 5280).
        0x17 => {
            let yy: i32 = text.get(..2)?.parse().ok()?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &text[2..])
        }
        // GeneralizedTime: YYYYMMDDHHMMSSZ.
        0x18 => (text.get(..4)?.parse().ok()?, &text[4..]),
        _ => return None,
    };
    let num = |r: std::ops::Range<usize>| -> Option<u32> { rest.get(r)?.parse().ok() };
    if !rest.ends_with('Z') {
        return None;
    }
    let date = chrono::NaiveDate::from_ymd_opt(year, num(0..2)?, num(2..4)?)?;
    let time = date.and_hms_opt(num(4..6)?, num(6..8)?, num(8..10)?)?;
    Some(time.and_utc().timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The start of a certificate, cut short: its DER does not hold
    /// together.
    const PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBczCCARmgAwIBAgIBBzAKBggqhkjOPQQDAjAMMQowCAYDVQQDDAF0MB4XDTI2
MTIwNDE2NTkyNloXDTI2MTIwNTE2NTkyNlowDDEKMAgGA1UEAwwBdDBZMBMGByqG
SM49AgEGCCqGSM49AwEHA0IABKlPH1yPV7QHaUP7h7nnMSHj6pB/jkyIyv5B7l63
5d/ZlV8dOFg6jAi7TRVM7z1N6Q4l1J3sZUJ5lF/2xXy2WkqjUzBRMB0GA1UdDgQW
BBT6ZI3l2d9jXUwR8V8FtnB1bq9k2jAfBgNVHSMEGDAWgBT6ZI3l2d9jXUwR8V8F
tnB1bq9k2jAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0gAMEUCIQDQ0U8j
-----END CERTIFICATE-----";

    /// A self-signed certificate valid `days` from now, as PEM (openssl).
    fn self_signed(days: &str) -> String {
        let out = std::process::Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
            .args(["ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=t"])
            .args(["-days", days, "-keyout", "/dev/null"])
            .output()
            .expect("openssl is needed for this test");
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn reads_not_after_from_a_generated_certificate() {
        let pem = self_signed("3");
        let t = earliest_not_after(&pem).expect("a notAfter");
        let expected = chrono::Utc::now().timestamp() + 3 * 86_400;
        assert!((t - expected).abs() < 120, "{t} vs {expected}");
        // Two certificates: the earlier one counts.
        let short = self_signed("1");
        let both = format!("{pem}\n{short}");
        assert!(earliest_not_after(&both).unwrap() < t - 86_400);
    }

    #[test]
    fn garbage_is_no_date() {
        assert_eq!(earliest_not_after(""), None);
        assert_eq!(earliest_not_after("not a pem"), None);
        assert_eq!(earliest_not_after(PEM), None);
    }
}
