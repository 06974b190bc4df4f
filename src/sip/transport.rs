//! The SIP transport: sip/'s only I/O. (written by lead)
