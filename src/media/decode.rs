//! STUB (helper D).
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("cannot open {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
}

pub struct Decoder;
impl Decoder {
    pub fn open(_path: &std::path::Path) -> Result<Decoder, DecodeError> {
        unimplemented!()
    }
    pub fn sample_rate_hz(&self) -> u32 {
        unimplemented!()
    }
    /// Appends the next decoded mono samples to `out`; `Ok(false)` at the clean end.
    pub fn next_chunk(&mut self, _out: &mut Vec<f32>) -> Result<bool, DecodeError> {
        unimplemented!()
    }
}
