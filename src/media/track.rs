//! STUB (helper D).
use std::path::Path;
use std::sync::Arc;

use super::Codec;
use super::decode::DecodeError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameRead {
    Ready,
    Pending,
    End,
    Failed,
}

pub struct Track;
impl Track {
    pub fn complete(_codec: Codec, _label: &str, _frames: Vec<Vec<u8>>) -> Arc<Track> {
        unimplemented!()
    }
    pub fn from_pcm(
        _codec: Codec,
        _label: &str,
        _samples: &[f32],
        _rate_hz: u32,
    ) -> Result<Arc<Track>, DecodeError> {
        unimplemented!()
    }
    pub fn codec(&self) -> Codec {
        unimplemented!()
    }
    pub fn label(&self) -> &str {
        unimplemented!()
    }
    pub fn read_frame(&self, _index: usize, _out: &mut Vec<u8>) -> FrameRead {
        unimplemented!()
    }
}

#[derive(Clone)]
pub struct Playlist {
    pub items: Vec<Arc<Track>>,
    pub on_failure: Option<Arc<Track>>,
}

pub struct TrackCache;
impl TrackCache {
    pub fn new(_capacity: usize) -> Self {
        TrackCache
    }
    pub fn open(&self, _path: &Path, _codec: Codec) -> Result<Arc<Track>, DecodeError> {
        unimplemented!()
    }
}
