//! STUB — to be implemented (helper C). Signatures are the contract.
use std::path::Path;

use chrono::{DateTime, FixedOffset, Utc};

#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    #[error("stub")]
    Stub,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    pub title: Option<String>,
    pub datetime: DateTime<FixedOffset>,
    pub file: String,
}

#[derive(Debug, Clone)]
pub struct Schedule {
    pub church_name: String,
    pub services: Vec<Service>,
    pub problems: Vec<String>,
}

impl Schedule {
    pub fn parse(_json: &str) -> Result<Schedule, ScheduleError> {
        unimplemented!()
    }
    pub fn load(_path: &Path) -> Result<Schedule, ScheduleError> {
        unimplemented!()
    }
    pub fn available(&self, _now: DateTime<Utc>) -> Vec<&Service> {
        unimplemented!()
    }
    pub fn latest(&self, _now: DateTime<Utc>) -> Option<&Service> {
        unimplemented!()
    }
}
