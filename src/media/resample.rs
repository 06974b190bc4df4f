//! STUB (helper D).
#[derive(Debug, thiserror::Error)]
pub enum ResampleError {
    #[error("stub")]
    Stub,
}
pub struct Resampler;
impl Resampler {
    pub fn new(_from_hz: u32, _to_hz: u32) -> Result<Self, ResampleError> {
        unimplemented!()
    }
    pub fn push(&mut self, _samples: &[f32]) {}
    pub fn pop_frame(&mut self, _out: &mut [f32]) -> bool {
        false
    }
    pub fn finish(&mut self) {}
}
