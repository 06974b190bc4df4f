//! The media path: decode (symphonia) → mono → resample (rubato) → level
//! (loudness, compression, true-peak limit: [`level`]) → encode
//! (G.711 / Opus) once per source and codec into a shared [`track::Track`];
//! a [`pacer::MediaEngine`] thread then sends those frames as RTP for many
//! calls from one absolute clock.

pub mod decode;
pub mod dtmf;
pub mod encode;
pub mod g711;
pub mod inband;
pub mod level;
pub mod opus_file;
pub mod pacer;
pub mod ports;
pub mod priority;
pub mod resample;
pub mod rtcp;
pub mod rtp;
pub mod track;

use std::time::Duration;

/// Every packet carries 20 ms of audio (`a=ptime:20`).
pub const FRAME_DURATION: Duration = Duration::from_millis(20);

/// The codecs the line can answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// G.711 µ-law, static payload type 0.
    Pcmu,
    /// G.711 A-law, static payload type 8.
    Pcma,
    /// Opus (RFC 7587), dynamic payload type, `opus/48000/2` in SDP.
    Opus,
}

impl Codec {
    /// Every codec, in the default order of preference.
    pub const ALL: [Codec; 3] = [Codec::Pcmu, Codec::Pcma, Codec::Opus];

    /// The RTP clock rate (RFC 7587: Opus is always 48 kHz on the wire).
    pub fn clock_rate_hz(self) -> u32 {
        match self {
            Codec::Pcmu | Codec::Pcma => 8_000,
            Codec::Opus => 48_000,
        }
    }

    /// The PCM rate the encoder takes, which is also the resampler's target.
    pub fn sample_rate_hz(self) -> u32 {
        self.clock_rate_hz()
    }

    /// Samples (and RTP timestamp ticks) in one 20 ms frame.
    pub fn samples_per_frame(self) -> u32 {
        self.clock_rate_hz() / 50
    }

    /// The static payload type of RFC 3551, if the codec has one.
    pub fn static_payload_type(self) -> Option<u8> {
        match self {
            Codec::Pcmu => Some(0),
            Codec::Pcma => Some(8),
            Codec::Opus => None,
        }
    }

    /// The encoding name of the SDP `a=rtpmap` line.
    pub fn encoding_name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
            Codec::Opus => "opus",
        }
    }

    /// The name used in the config and on the command line.
    pub fn config_name(self) -> &'static str {
        match self {
            Codec::Pcmu => "pcmu",
            Codec::Pcma => "pcma",
            Codec::Opus => "opus",
        }
    }

    /// Parses a config name (`pcmu`, `pcma`, `opus`), case-insensitively.
    pub fn from_config_name(name: &str) -> Option<Codec> {
        Codec::ALL
            .into_iter()
            .find(|c| c.config_name().eq_ignore_ascii_case(name.trim()))
    }
}

impl std::fmt::Display for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.config_name())
    }
}
