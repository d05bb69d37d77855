//! Small in-memory caches of what nearly every command reads and rarely changes: which desk a
//! surface serves, a member's standing, and a desk's surfaces. Each entry lives at most
//! [`FRESH`]; every change made through the desk forgets what it touches, so a role, channel
//! or join takes effect at once. Each map is cleared when it grows past [`CAPACITY`].

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::core::people::{Surface, SurfaceRef, UserRef};
use crate::core::ticket::DeskId;
use crate::store::Membership;

/// How long a cached entry is trusted.
pub const FRESH: Duration = Duration::from_secs(30);
/// The most entries a map holds before it starts over.
pub const CAPACITY: usize = 100_000;

/// A map whose entries expire.
pub struct Expiring<K, V> {
    map: Mutex<HashMap<K, (V, Instant)>>,
}

impl<K: Eq + Hash, V: Clone> Default for Expiring<K, V> {
    fn default() -> Self {
        Expiring {
            map: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Eq + Hash, V: Clone> Expiring<K, V> {
    pub fn get(&self, key: &K) -> Option<V> {
        let map = self.map.lock().ok()?;
        map.get(key)
            .filter(|(_, at)| at.elapsed() < FRESH)
            .map(|(v, _)| v.clone())
    }

    pub fn put(&self, key: K, value: V) {
        if let Ok(mut map) = self.map.lock() {
            if map.len() >= CAPACITY {
                map.clear();
            }
            map.insert(key, (value, Instant::now()));
        }
    }

    pub fn clear(&self) {
        if let Ok(mut map) = self.map.lock() {
            map.clear();
        }
    }
}

/// The desk's caches.
#[derive(Default)]
pub struct Caches {
    /// Bumped by every [`Caches::forget`]: a value read from the store before a change must not
    /// be stored after it (see [`Caches::epoch`]).
    epoch: std::sync::atomic::AtomicU64,
    pub desk_of: Expiring<SurfaceRef, DeskId>,
    /// A member's standing and the name it was stored with.
    pub members: Expiring<(DeskId, UserRef), (Membership, Option<String>)>,
    pub surfaces: Expiring<DeskId, Vec<Surface>>,
}

impl std::fmt::Debug for Caches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Caches(..)")
    }
}

impl Caches {
    /// The current epoch: read it before reading the store, and cache what was read only if
    /// [`Caches::still`] that epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Whether nothing was forgotten since `epoch`.
    pub fn still(&self, epoch: u64) -> bool {
        self.epoch() == epoch
    }

    /// Forgets everything (after a join, a merge, a role or channel change).
    pub fn forget(&self) {
        self.epoch.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.desk_of.clear();
        self.members.clear();
        self.surfaces.clear();
    }
}
