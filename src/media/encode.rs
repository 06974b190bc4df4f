//! STUB (helper D).
use super::Codec;
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("stub")]
    Stub,
}
pub trait FrameEncoder: Send {
    fn encode(&mut self, pcm: &[f32], out: &mut Vec<u8>) -> Result<(), EncodeError>;
}
pub fn encoder_for(_codec: Codec) -> Result<Box<dyn FrameEncoder>, EncodeError> {
    unimplemented!()
}
