//! Maps keyed by execution id, hashed cheaply.
//!
//! The server and the journal stores look executions up by id on every
//! request; SipHash (std's default, built to resist keys chosen by an
//! attacker) was 2% of a served request. Keys here are ids the runtime
//! generates (random UUIDs) or the program's own, never a client's choice
//! (a client only looks ids up, and a lookup cannot degrade a map), so a
//! multiply-rotate hash (FxHash's) is enough.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A `HashMap` keyed by execution id.
pub(crate) type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

/// FxHash over the key's bytes, 8 at a time.
#[derive(Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl IdHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(c.try_into().unwrap_or([0; 8])));
        }
        let mut last = [0u8; 8];
        let rest = chunks.remainder();
        last[..rest.len()].copy_from_slice(rest);
        self.add(u64::from_le_bytes(last) ^ rest.len() as u64);
    }

    fn write_u8(&mut self, n: u8) {
        self.add(n.into());
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    fn hash(s: &str) -> u64 {
        BuildHasherDefault::<IdHasher>::default().hash_one(s)
    }

    #[test]
    fn ids_that_differ_anywhere_hash_apart() {
        let id = "6f1c2a8e-0b3d-4e5f-9a7b-1c2d3e4f5a6b";
        let mut seen = std::collections::HashSet::new();
        seen.insert(hash(id));
        for i in 0..id.len() {
            let mut other = id.as_bytes().to_vec();
            other[i] = if other[i] == b'0' { b'1' } else { b'0' };
            assert!(seen.insert(hash(std::str::from_utf8(&other).unwrap())), "byte {i}");
        }
        assert_ne!(hash("ab"), hash("ab\0"), "length counts");
    }
}
