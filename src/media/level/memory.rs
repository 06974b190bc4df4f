//! The integrated loudness of sources already decoded to the end, so the
//! next time one is opened (the next refresh, a later codec, after
//! eviction) it gets one static gain from its first sample. Keyed by what
//! the caller says identifies the source (for files: path, length and
//! modification time, so a replaced file is measured anew) and the rate
//! it was measured at: a service measured at 8 kHz has lost the treble
//! that the K-weighting counts at 48 kHz.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::{Mutex, PoisonError};

use super::Lufs;

/// Far more sources than a parish's menu and cache ever hold; a bound all
/// the same, as files come and go for years.
const CAPACITY: usize = 1024;

pub struct LoudnessMemory<K> {
    inner: Mutex<Inner<K>>,
}

struct Inner<K> {
    measured: HashMap<K, Lufs>,
    /// Oldest first, to forget the oldest beyond [`CAPACITY`].
    order: VecDeque<K>,
}

impl<K> Default for LoudnessMemory<K> {
    fn default() -> Self {
        LoudnessMemory {
            inner: Mutex::new(Inner {
                measured: HashMap::new(),
                order: VecDeque::new(),
            }),
        }
    }
}

impl<K: Hash + Eq + Clone> LoudnessMemory<K> {
    pub fn get(&self, key: &K) -> Option<Lufs> {
        self.lock().measured.get(key).copied()
    }

    pub fn remember(&self, key: K, loudness: Lufs) {
        let mut inner = self.lock();
        if inner.measured.insert(key.clone(), loudness).is_none() {
            inner.order.push_back(key);
        }
        while inner.order.len() > CAPACITY {
            if let Some(oldest) = inner.order.pop_front() {
                inner.measured.remove(&oldest);
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<K>> {
        // Whole entries only: usable after a panic elsewhere.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
