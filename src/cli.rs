//! (lead)
