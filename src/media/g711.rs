//! STUB (helper D).
pub fn ulaw_encode(_sample: i16) -> u8 {
    unimplemented!()
}
pub fn ulaw_decode(_code: u8) -> i16 {
    unimplemented!()
}
pub fn alaw_encode(_sample: i16) -> u8 {
    unimplemented!()
}
pub fn alaw_decode(_code: u8) -> i16 {
    unimplemented!()
}
