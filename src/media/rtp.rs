//! STUB (helper E).
