//! Seeded randomness for the property tests: a small deterministic generator, and the seed to
//! use (`STREAM_TEST_SEED`, else the clock), which the tests print so a failure can be replayed.

/// xorshift64*: deterministic per seed.
pub(crate) struct Rng(u64);

impl Rng {
    /// A generator for `seed` (any value; zero is made odd).
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed | 1)
    }
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    /// An index below `len`.
    pub(crate) fn index(&mut self, len: usize) -> usize {
        self.below(len as u64) as usize
    }
    pub(crate) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.index(items.len())]
    }
    pub(crate) fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    pub(crate) fn signed(&mut self, bits: u32) -> i64 {
        let v = self.next() >> (64 - bits);
        ((v << (64 - bits)) as i64) >> (64 - bits)
    }
    pub(crate) fn unsigned(&mut self, bits: u32) -> u64 {
        self.next() >> (64 - bits)
    }
    pub(crate) fn digits(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b'0' + self.below(10) as u8))
            .collect()
    }
    pub(crate) fn text(&mut self, alphabet: &[char], max: u64) -> String {
        (0..self.below(max + 1))
            .map(|_| *self.pick(alphabet))
            .collect()
    }
}

/// `STREAM_TEST_SEED`, or one from the clock.
pub(crate) fn seed() -> u64 {
    std::env::var("STREAM_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0x5eed, |d| d.as_nanos() as u64)
                | 1
        })
}
