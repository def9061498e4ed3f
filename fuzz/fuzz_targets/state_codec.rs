//! OAuth state against a model map: a stored record comes back intact from
//! its exact state (the JSON codec round-trips any record) and only once,
//! while the store's clock (which the input moves) is before its expiry;
//! at or after expiry, and for any other string — a tampered, truncated or
//! re-cased state — it redeems nothing. The store key is the SHA-256 hex of
//! the state and never contains it.
#![no_main]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use tenantry_fuzz::state::{runtime, tampered, Op};
use tenantry_reference::oauth::state::{new_state, store_key, Behaviour, StateStore};

fuzz_target!(|input: (Vec<String>, Vec<Op>)| {
    let (mut pool, ops) = input;
    pool.extend([new_state(), new_state()]);
    let elapsed_ms = Arc::new(AtomicU64::new(0));
    let (base, hand) = (Instant::now(), elapsed_ms.clone());
    let store = StateStore::memory_with_clock(Arc::new(move || {
        base + Duration::from_millis(hand.load(Ordering::SeqCst))
    }));
    let (clean, mut model) = (Behaviour::default(), HashMap::new());
    for op in ops {
        let now = elapsed_ms.load(Ordering::SeqCst);
        match op {
            Op::Put { i, record, ttl_ms } => {
                let (state, record) = (&pool[usize::from(i) % pool.len()], record.record());
                runtime()
                    .block_on(store.put(state, &record, Duration::from_millis(ttl_ms.into()), clean))
                    .expect("memory put");
                model.insert(state.clone(), (now + u64::from(ttl_ms), record));
                let key = store_key(state);
                let hex = key.strip_prefix("oauth:state:").expect("prefix");
                assert!(
                    hex.len() == 64
                        && hex
                            .bytes()
                            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
                );
                assert!(
                    state.len() < 16 || !key.contains(state.as_str()),
                    "the key holds the state"
                );
            }
            Op::Advance { ms } => {
                elapsed_ms.fetch_add(ms.into(), Ordering::SeqCst);
            }
            Op::Consume { i, tamper } => {
                let original = &pool[usize::from(i) % pool.len()];
                let state = tamper
                    .as_ref()
                    .map_or_else(|| original.clone(), |t| tampered(original, t));
                let got = runtime()
                    .block_on(store.consume(&state, clean))
                    .expect("memory consume");
                let live = model
                    .remove(&state)
                    .and_then(|(expires, record)| (now < expires).then_some(record));
                assert_eq!(got, live, "state {state:?} (from {original:?}) at {now} ms");
            }
        }
    }
});
