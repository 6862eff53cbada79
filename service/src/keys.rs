//! Registered evaluation keys, each with the scheduler that evaluates under them, held within a
//! byte bound: beyond it the least recently used are evicted, and a request bound to an
//! evicted id gets an error telling its client to register again.

use std::collections::HashMap;
use std::sync::Arc;

/// One client's keys on the server.
pub(crate) struct Session {
    pub scheduler: hegpu::tensor::Scheduler,
    pub key_set: hegpu::ckks::KeySetId,
}

struct Entry<S> {
    value: Arc<S>,
    bytes: u64,
    used: u64,
}

/// Values by key id within `limit` bytes, the least recently used out first.
pub(crate) struct KeyCache<S> {
    limit: u64,
    held: u64,
    clock: u64,
    entries: HashMap<String, Entry<S>>,
}

impl<S> KeyCache<S> {
    pub fn new(limit: u64) -> Self {
        Self {
            limit,
            held: 0,
            clock: 0,
            entries: HashMap::new(),
        }
    }

    /// The value of `id`, now the most recently used.
    pub fn get(&mut self, id: &str) -> Option<Arc<S>> {
        self.clock += 1;
        let clock = self.clock;
        self.entries.get_mut(id).map(|e| {
            e.used = clock;
            e.value.clone()
        })
    }

    /// Holds `value` of `bytes` under `id` (replacing what `id` held), evicting the least
    /// recently used others until it fits; returns the ids evicted. A value larger than the
    /// whole bound is refused.
    pub fn insert(&mut self, id: String, value: Arc<S>, bytes: u64) -> Result<Vec<String>, String> {
        if bytes > self.limit {
            return Err(format!(
                "evaluation keys of {bytes} bytes in memory exceed the server's key memory ({} bytes)",
                self.limit
            ));
        }
        if let Some(old) = self.entries.remove(&id) {
            self.held -= old.bytes;
        }
        let mut evicted = Vec::new();
        while self.held + bytes > self.limit {
            let oldest = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.used)
                .map(|(k, _)| k.clone())
                .expect("held bytes belong to some entry");
            let old = self.entries.remove(&oldest).expect("just found");
            self.held -= old.bytes;
            evicted.push(oldest);
        }
        self.clock += 1;
        self.held += bytes;
        let used = self.clock;
        self.entries.insert(id, Entry { value, bytes, used });
        Ok(evicted)
    }

    /// Keys held and their bytes.
    pub fn usage(&self) -> (usize, u64) {
        (self.entries.len(), self.held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_recently_used_go_first_and_the_bound_holds() {
        let mut c = KeyCache::new(10);
        assert_eq!(c.insert("a".into(), Arc::new(1), 4), Ok(vec![]));
        assert_eq!(c.insert("b".into(), Arc::new(2), 4), Ok(vec![]));
        assert_eq!(c.get("a").as_deref(), Some(&1)); // b is now the oldest
        assert_eq!(
            c.insert("c".into(), Arc::new(3), 4),
            Ok(vec!["b".to_string()])
        );
        assert_eq!(c.usage(), (2, 8));
        assert!(c.get("b").is_none());
        // Replacing a key frees its old bytes first.
        assert_eq!(c.insert("a".into(), Arc::new(4), 6), Ok(vec![]));
        assert_eq!(c.usage(), (2, 10));
        assert_eq!(
            c.insert("d".into(), Arc::new(5), 10),
            Ok(vec!["c".into(), "a".into()])
        );
        assert!(c.insert("e".into(), Arc::new(6), 11).is_err());
        assert_eq!(c.usage(), (1, 10));
    }
}
