//! Request sequences over orgs, two policies and a controlled clock: the
//! in-process store decides exactly as the reference model (admission,
//! remaining, reset), orgs never share a budget (hostile ids included), and
//! no window-long interval ever admits more than the algorithm's bound.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tenantry_fuzz::limiter::{Model, Run};
use tenantry_reference::ratelimit::{key, MemoryStore};

fuzz_target!(|run: Run| {
    if run.orgs.is_empty() {
        return;
    }
    let policies = [run.policies[0].policy("p0"), run.policies[1].policy("p1")];
    let (store, mut model, mut now) = (MemoryStore::new(), Model::default(), 0u64);
    for step in &run.steps {
        now += step.advance.micros();
        let org = &run.orgs[usize::from(step.org) % run.orgs.len()];
        let policy = &policies[usize::from(step.second)];
        let got = store.decide_at(&key(org, &policy.name), policy, now);
        assert_eq!(
            got,
            model.decide(org, policy, now),
            "{org:?} {policy:?} at {now}us"
        );
        let bound = policy.algorithm.admission_bound(policy.limit);
        assert!(
            model.admitted_in_window(org, policy, now) <= bound,
            "over the bound: {org:?} {policy:?}"
        );
    }
});
