//! (helper F)
