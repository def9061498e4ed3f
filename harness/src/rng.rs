//! A small seeded generator (SplitMix64) for the harness's own random
//! choices where proptest does not drive them (HTTP fuzz cases, the bench's
//! request mix): the same seed draws the same sequence on every machine.

/// SplitMix64: the same seed, the same sequence.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded (offset by a fixed constant, so seed 0 does not start from the
    /// all-zero state).
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x6675_7a7a_5f74_6e72)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }

    /// One of `items` (not empty).
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}
