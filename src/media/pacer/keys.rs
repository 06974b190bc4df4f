//! Key presses in the caller's RTP: RFC 4733 telephone-events, and in-band
//! tones in their audio for trunks that pass only tones.
//!
//! Only streams whose call listens get a [`KeyListener`]; in-band listening
//! decodes the caller's audio (G.711 by table, Opus with a decoder at 8 kHz,
//! which libopus does natively and cheaply), so it is the costlier way. It
//! costs next to nothing while the caller is silent: Opus DTX packets are
//! not decoded, and packets below the detector's floor are not analysed.

use audiopus::coder::Decoder as OpusDecoder;
use audiopus::{Channels, SampleRate};

use super::super::Codec;
use super::super::g711;
use super::super::rtp::{PayloadType, RtpHeader};
use crate::media::dtmf::{Key, KeyChannel, Rfc4733Detector};
use crate::media::inband::InBandDetector;

/// Which ways a stream listens for keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KeyListening {
    pub rfc4733: bool,
    pub inband: bool,
}

/// The 120 ms Opus maximum at 8 kHz.
const MAX_OPUS_SAMPLES_8K: usize = 960;
/// An Opus packet this short carries no audio: a TOC byte alone is a frame
/// of length zero, DTX (RFC 6716 §3.2.1), and libopus sends at most two
/// bytes for a frame it has marked as DTX silence.
const OPUS_DTX_MAX_BYTES: usize = 2;

pub(super) struct KeyListener {
    telephone_event: Option<PayloadType>,
    audio_payload_type: PayloadType,
    rfc4733: Option<Rfc4733Detector>,
    inband: Option<InBand>,
}

struct InBand {
    detector: InBandDetector,
    decoder: AudioDecoder,
    samples: Vec<f32>,
    /// Opus packets decoded: what listening has cost.
    opus_decoded: u64,
}

enum AudioDecoder {
    Pcmu,
    Pcma,
    Opus(Box<OpusDecoder>),
}

impl KeyListener {
    /// `None` when the stream listens no way (or in-band cannot be set up
    /// and RFC 4733 is off).
    pub fn new(
        listening: KeyListening,
        codec: Codec,
        audio_payload_type: PayloadType,
        telephone_event: Option<PayloadType>,
    ) -> Option<KeyListener> {
        let rfc4733 =
            (listening.rfc4733 && telephone_event.is_some()).then(Rfc4733Detector::default);
        let inband = if listening.inband {
            let decoder = match codec {
                Codec::Pcmu => Some(AudioDecoder::Pcmu),
                Codec::Pcma => Some(AudioDecoder::Pcma),
                Codec::Opus => match OpusDecoder::new(SampleRate::Hz8000, Channels::Mono) {
                    Ok(decoder) => Some(AudioDecoder::Opus(Box::new(decoder))),
                    Err(error) => {
                        tracing::warn!(%error, "cannot listen for in-band keys on opus");
                        None
                    }
                },
            };
            decoder.map(|decoder| InBand {
                detector: InBandDetector::default(),
                decoder,
                samples: Vec::with_capacity(MAX_OPUS_SAMPLES_8K),
                opus_decoded: 0,
            })
        } else {
            None
        };
        if rfc4733.is_none() && inband.is_none() {
            return None;
        }
        Some(KeyListener {
            telephone_event,
            audio_payload_type,
            rfc4733,
            inband,
        })
    }

    /// One RTP packet from the caller; the keys that began in it.
    pub fn handle(&mut self, header: &RtpHeader<'_>, keys: &mut Vec<(Key, KeyChannel)>) {
        let pt = header.payload_type;
        if Some(pt) == self.telephone_event {
            if let Some(detector) = &mut self.rfc4733
                && let Some(key) =
                    detector.handle_packet(header.ssrc.0, header.timestamp, header.payload)
            {
                keys.push((key, KeyChannel::Rfc4733));
            }
            return;
        }
        if pt != self.audio_payload_type {
            return; // comfort noise, another codec: no tones to find
        }
        let Some(inband) = &mut self.inband else {
            return;
        };
        inband.samples.clear();
        match &mut inband.decoder {
            AudioDecoder::Pcmu => inband.samples.extend(
                header
                    .payload
                    .iter()
                    .map(|&c| f32::from(g711::ulaw_decode(c)) / 32768.0),
            ),
            AudioDecoder::Pcma => inband.samples.extend(
                header
                    .payload
                    .iter()
                    .map(|&c| f32::from(g711::alaw_decode(c)) / 32768.0),
            ),
            AudioDecoder::Opus(_) if header.payload.len() <= OPUS_DTX_MAX_BYTES => {
                inband.detector.hear_silence();
                return;
            }
            AudioDecoder::Opus(decoder) => {
                let mut pcm = [0f32; MAX_OPUS_SAMPLES_8K];
                inband.opus_decoded += 1;
                let decoded = decoder
                    .decode_float(Some(header.payload), &mut pcm[..], false)
                    .ok();
                // A corrupt packet is skipped: the key is still heard in
                // the packets around it.
                if let Some(n) = decoded {
                    inband.samples.extend_from_slice(&pcm[..n]);
                }
            }
        }
        for key in inband.detector.handle_samples(&inband.samples) {
            keys.push((key, KeyChannel::InBand));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::rtp::{PayloadType, Ssrc};
    use super::*;

    fn header(pt: u8, timestamp: u32, payload: &[u8]) -> RtpHeader<'_> {
        RtpHeader {
            ssrc: Ssrc(9),
            sequence: 1,
            timestamp,
            payload_type: PayloadType(pt),
            marker: false,
            payload,
        }
    }

    fn tone(key: (f32, f32), samples: usize) -> Vec<u8> {
        (0..samples)
            .map(|n| {
                let t = n as f32 / 8000.0;
                let s = 0.25 * (2.0 * std::f32::consts::PI * key.0 * t).sin()
                    + 0.25 * (2.0 * std::f32::consts::PI * key.1 * t).sin();
                g711::ulaw_encode((s * 32767.0) as i16)
            })
            .collect()
    }

    #[test]
    fn telephone_events_and_tones_become_keys() {
        let both = KeyListening {
            rfc4733: true,
            inband: true,
        };
        let mut listener =
            KeyListener::new(both, Codec::Pcmu, PayloadType(0), Some(PayloadType(101))).unwrap();
        let mut keys = Vec::new();
        listener.handle(&header(101, 800, &[2, 10, 0, 160]), &mut keys);
        listener.handle(&header(101, 800, &[2, 0x80 | 10, 1, 64]), &mut keys);
        assert_eq!(keys, [(Key::Digit(2), KeyChannel::Rfc4733)]);
        keys.clear();
        // "5" (770 + 1336 Hz) for 100 ms in the audio.
        let audio = tone((770.0, 1336.0), 800);
        for (i, frame) in audio.chunks(160).enumerate() {
            listener.handle(&header(0, 160 * i as u32, frame), &mut keys);
        }
        assert_eq!(keys, [(Key::Digit(5), KeyChannel::InBand)]);
    }

    #[test]
    fn a_silent_caller_costs_no_decoding_or_analysis() {
        let inband = KeyListening {
            rfc4733: false,
            inband: true,
        };
        let mut keys = Vec::new();
        // G.711 silence and line hiss (a few codes around zero).
        let mut pcmu = KeyListener::new(inband, Codec::Pcmu, PayloadType(0), None).unwrap();
        for i in 0..500u32 {
            let hiss: Vec<u8> = (0..160u8).map(|n| 0xFF - (n % 3)).collect();
            pcmu.handle(&header(0, 160 * i, &hiss), &mut keys);
        }
        let analysed = |l: &KeyListener| l.inband.as_ref().unwrap().detector.blocks_analysed();
        assert_eq!(analysed(&pcmu), 0);
        // Opus DTX: the TOC byte alone, or two bytes.
        let mut opus = KeyListener::new(inband, Codec::Opus, PayloadType(111), None).unwrap();
        for i in 0..500u32 {
            let dtx: &[u8] = if i % 2 == 0 { &[0x08] } else { &[0x08, 0x00] };
            opus.handle(&header(111, 960 * i, dtx), &mut keys);
        }
        assert_eq!(opus.inband.as_ref().unwrap().opus_decoded, 0);
        assert_eq!(analysed(&opus), 0);
        assert!(keys.is_empty());

        // A key sent as Opus audio is decoded and heard.
        let encoder = audiopus::coder::Encoder::new(
            SampleRate::Hz48000,
            Channels::Mono,
            audiopus::Application::Voip,
        )
        .unwrap();
        let press: Vec<f32> = (0..48 * 200)
            .map(|n| {
                let t = n as f32 / 48_000.0;
                0.25 * (2.0 * std::f32::consts::PI * 852.0 * t).sin()
                    + 0.25 * (2.0 * std::f32::consts::PI * 1477.0 * t).sin()
            })
            .collect();
        for (i, frame) in press.chunks(960).enumerate() {
            let mut packet = [0u8; 1500];
            let n = encoder.encode_float(frame, &mut packet).unwrap();
            opus.handle(&header(111, 960 * i as u32, &packet[..n]), &mut keys);
        }
        assert_eq!(keys, [(Key::Digit(9), KeyChannel::InBand)]);
        assert!(opus.inband.as_ref().unwrap().opus_decoded >= 10);
    }

    #[test]
    fn ways_turned_off_are_not_heard() {
        let rfc_only = KeyListening {
            rfc4733: true,
            inband: false,
        };
        let mut listener = KeyListener::new(
            rfc_only,
            Codec::Pcmu,
            PayloadType(0),
            Some(PayloadType(101)),
        )
        .unwrap();
        let mut keys = Vec::new();
        for (i, frame) in tone((770.0, 1336.0), 800).chunks(160).enumerate() {
            listener.handle(&header(0, 160 * i as u32, frame), &mut keys);
        }
        assert!(keys.is_empty());
        // No telephone-event negotiated and no in-band: nothing to listen to.
        assert!(KeyListener::new(rfc_only, Codec::Pcmu, PayloadType(0), None).is_none());
        assert!(
            KeyListener::new(
                KeyListening::default(),
                Codec::Opus,
                PayloadType(111),
                Some(PayloadType(101)),
            )
            .is_none()
        );
    }
}
