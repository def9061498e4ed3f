//! OAuth state against a model map: a stored record comes back intact from
//! its exact state (the JSON codec round-trips any record) and only once;
//! any other string — a tampered, truncated or re-cased state — redeems
//! nothing; a zero TTL never redeems; the store key is the SHA-256 hex of the
//! state and never contains it.
#![no_main]

use std::collections::HashMap;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use tenantry_fuzz::state::{runtime, tampered, Op};
use tenantry_reference::oauth::state::{new_state, store_key, Behaviour, StateStore};

fuzz_target!(|input: (Vec<String>, Vec<Op>)| {
    let (mut pool, ops) = input;
    pool.extend([new_state(), new_state()]);
    let (store, clean, mut model) = (StateStore::memory(), Behaviour::default(), HashMap::new());
    for op in ops {
        match op {
            Op::Put { i, record, expired } => {
                let (state, record) = (&pool[usize::from(i) % pool.len()], record.record());
                let ttl = if expired {
                    Duration::ZERO
                } else {
                    Duration::from_secs(3600)
                };
                runtime()
                    .block_on(store.put(state, &record, ttl, clean))
                    .expect("memory put");
                model.insert(state.clone(), (!expired).then_some(record));
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
            Op::Consume { i, tamper } => {
                let original = &pool[usize::from(i) % pool.len()];
                let state = tamper
                    .as_ref()
                    .map_or_else(|| original.clone(), |t| tampered(original, t));
                let got = runtime()
                    .block_on(store.consume(&state, clean))
                    .expect("memory consume");
                assert_eq!(
                    got,
                    model.remove(&state).flatten(),
                    "state {state:?} (from {original:?})"
                );
            }
        }
    }
});
