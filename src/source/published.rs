//! The schedule as the background refresher last published it: callers read
//! it, never the network. Publishing swaps one `Arc`, so a call sees either
//! the old schedule or the new one whole, and its audio is already on disk.

use std::sync::{Arc, RwLock};

use super::schedule::Schedule;

/// What callers are offered now; `None` until a first schedule is usable
/// (from the origin or the disk cache).
#[derive(Default)]
pub struct Published {
    current: RwLock<Option<Arc<Schedule>>>,
}

impl Published {
    pub fn get(&self) -> Option<Arc<Schedule>> {
        // A panic elsewhere cannot leave a half-written Arc behind.
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Replaces what callers are offered. Every service's `file` must be a
    /// path to audio that has been checked to play.
    pub fn publish(&self, schedule: Schedule) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(schedule));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_keep_the_schedule_they_got_while_a_new_one_is_published() {
        let published = Published::default();
        assert!(published.get().is_none());
        let first = Schedule::parse(r#"{ "church_name": "A", "services": [] }"#).unwrap();
        published.publish(first);
        let held = published.get().unwrap();
        let second = Schedule::parse(r#"{ "church_name": "B", "services": [] }"#).unwrap();
        published.publish(second);
        assert_eq!(held.church_name, "A");
        assert_eq!(published.get().unwrap().church_name, "B");
    }
}
