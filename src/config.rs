//! STUB — to be implemented (helper C). Signatures are the contract.
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::media::Codec;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("stub")]
    Stub,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub sip: SipConfig,
    pub media: MediaConfig,
    pub source: SourceConfig,
    pub audio: AudioConfig,
}
#[derive(Debug, Clone)]
pub struct SipConfig {
    pub listen: SocketAddr,
    pub public_address: Option<std::net::IpAddr>,
    pub t1: std::time::Duration,
    pub answer_delay: std::time::Duration,
}
#[derive(Debug, Clone)]
pub struct MediaConfig {
    pub rtp_ports: PortRange,
    pub codecs: Vec<Codec>,
    pub max_cached_tracks: usize,
}
#[derive(Debug, Clone)]
pub struct SourceConfig {
    pub schedule: PathBuf,
    pub audio: PathBuf,
}
#[derive(Debug, Clone)]
pub struct AudioConfig {
    pub apology: PathBuf,
}

impl Config {
    pub fn load(_path: &Path) -> Result<Config, ConfigError> {
        unimplemented!()
    }
}
