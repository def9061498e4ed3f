//! OAuth `state`: 256 random bits, shown once to the browser, stored
//! server-side (under its SHA-256) with what it is bound to — org, user,
//! session, provider, PKCE verifier, return path — and a TTL. A callback
//! consumes it in one atomic step (Redis GETDEL; one locked remove in the
//! in-process store), so it works exactly once, and error callbacks spend it
//! too.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// What a state is bound to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateRecord {
    /// The org that started the flow.
    pub org: String,
    /// The user who started it.
    pub user: String,
    /// Their session, if the request had one.
    pub session: Option<String>,
    /// The provider.
    pub provider: String,
    /// The PKCE verifier (absent only under the `oauth-no-pkce` flaw).
    pub verifier: Option<String>,
    /// Where to send the browser afterwards (an allow-listed relative path).
    pub return_to: Option<String>,
}

/// A fresh state token: 32 random bytes, base64url.
pub fn new_state() -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(crate::ids::random_bytes::<32>())
}

/// The store key for `state`: never the state itself.
pub fn store_key(state: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, state.as_bytes());
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("oauth:state:{hex}")
}

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
#[error("state store: {0}")]
pub struct StateStoreError(pub String);

/// The in-process store's clock: [`Instant::now`] in service; tests and
/// the fuzzer move time by hand to reach expiry without waiting.
pub type Clock = Arc<dyn Fn() -> Instant + Send + Sync>;

/// Where states live.
pub enum StateStore {
    /// Shared by every instance.
    Redis(redis::aio::ConnectionManager),
    /// This process only: key -> (expiry, record), and the clock expiry is
    /// judged by.
    Memory(Mutex<HashMap<String, (Option<Instant>, String)>>, Clock),
}

impl std::fmt::Debug for StateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StateStore::Redis(_) => "StateStore::Redis",
            StateStore::Memory(..) => "StateStore::Memory",
        })
    }
}

/// How the store behaves (flaws only; the clean store has one behaviour).
#[derive(Debug, Clone, Copy, Default)]
pub struct Behaviour {
    /// `oauth-state-no-ttl`.
    pub no_ttl: bool,
    /// `oauth-state-reusable`.
    pub reusable: bool,
    /// `oauth-state-race`: read, then delete in a second step.
    pub check_then_delete: bool,
}

impl StateStore {
    /// An in-process store.
    pub fn memory() -> Self {
        Self::memory_with_clock(Arc::new(Instant::now))
    }

    /// An in-process store whose expiry follows `clock`.
    pub fn memory_with_clock(clock: Clock) -> Self {
        StateStore::Memory(Mutex::new(HashMap::new()), clock)
    }

    /// A Redis store at `url`.
    pub async fn redis(url: &str) -> Result<Self, StateStoreError> {
        let client = redis::Client::open(url).map_err(|e| StateStoreError(e.to_string()))?;
        let manager = redis::aio::ConnectionManager::new(client)
            .await
            .map_err(|e| StateStoreError(e.to_string()))?;
        Ok(StateStore::Redis(manager))
    }

    /// Stores `record` under `state` for `ttl`.
    pub async fn put(
        &self,
        state: &str,
        record: &StateRecord,
        ttl: Duration,
        how: Behaviour,
    ) -> Result<(), StateStoreError> {
        let value = serde_json::to_string(record).map_err(|e| StateStoreError(e.to_string()))?;
        let key = store_key(state);
        match self {
            StateStore::Redis(manager) => {
                let mut c = manager.clone();
                let mut cmd = redis::cmd("SET");
                cmd.arg(&key).arg(value);
                if !how.no_ttl {
                    cmd.arg("PX").arg(ttl.as_millis() as u64);
                }
                cmd.query_async::<()>(&mut c)
                    .await
                    .map_err(|e| StateStoreError(e.to_string()))
            }
            StateStore::Memory(map, clock) => {
                let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
                let now = clock();
                // Expired entries go when the map grows; states are small and short-lived.
                if map.len() > 10_000 {
                    map.retain(|_, (expires, _)| expires.is_none_or(|e| e > now));
                }
                let expires = (!how.no_ttl).then(|| now + ttl);
                map.insert(key, (expires, value));
                Ok(())
            }
        }
    }

    /// Takes the record of `state` out of the store, if it is there and
    /// unexpired: at most one caller ever gets it.
    pub async fn consume(&self, state: &str, how: Behaviour) -> Result<Option<StateRecord>, StateStoreError> {
        let key = store_key(state);
        let value: Option<String> = match self {
            StateStore::Redis(manager) => {
                let mut c = manager.clone();
                if how.reusable || how.check_then_delete {
                    let value: Option<String> = redis::cmd("GET")
                        .arg(&key)
                        .query_async(&mut c)
                        .await
                        .map_err(|e| StateStoreError(e.to_string()))?;
                    if how.check_then_delete && value.is_some() {
                        // The window between the check and the delete (the
                        // flawed code validates the record in between).
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        let _: i64 = redis::cmd("DEL")
                            .arg(&key)
                            .query_async(&mut c)
                            .await
                            .map_err(|e| StateStoreError(e.to_string()))?;
                    }
                    value
                } else {
                    redis::cmd("GETDEL")
                        .arg(&key)
                        .query_async(&mut c)
                        .await
                        .map_err(|e| StateStoreError(e.to_string()))?
                }
            }
            StateStore::Memory(map, clock) => {
                if how.reusable || how.check_then_delete {
                    let value = {
                        let map = map.lock().unwrap_or_else(|p| p.into_inner());
                        map.get(&key).cloned()
                    };
                    if how.check_then_delete {
                        // The window between the check and the delete (the
                        // flawed code validates the record in between).
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        map.lock().unwrap_or_else(|p| p.into_inner()).remove(&key);
                    }
                    value
                        .filter(|(e, _)| e.is_none_or(|e| e > clock()))
                        .map(|(_, v)| v)
                } else {
                    let taken = map.lock().unwrap_or_else(|p| p.into_inner()).remove(&key);
                    taken
                        .filter(|(e, _)| e.is_none_or(|e| e > clock()))
                        .map(|(_, v)| v)
                }
            }
        };
        match value {
            Some(v) => serde_json::from_str(&v)
                .map(Some)
                .map_err(|e| StateStoreError(format!("corrupt state record: {e}"))),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> StateRecord {
        StateRecord {
            org: "org_a".into(),
            user: "user_a".into(),
            session: Some("sess_a".into()),
            provider: "shopify".into(),
            verifier: Some("v".into()),
            return_to: None,
        }
    }

    #[tokio::test]
    async fn memory_states_are_single_use_and_expire() {
        let store = StateStore::memory();
        let clean = Behaviour::default();
        let s = new_state();
        assert_eq!(s.len(), 43);
        store
            .put(&s, &record(), Duration::from_secs(60), clean)
            .await
            .unwrap();
        assert_eq!(store.consume(&s, clean).await.unwrap(), Some(record()));
        assert_eq!(store.consume(&s, clean).await.unwrap(), None);
        assert_eq!(store.consume("unknown", clean).await.unwrap(), None);
        assert!(!store_key(&s).contains(&s));
    }

    #[tokio::test]
    async fn a_state_redeems_until_its_ttl_and_not_at_it() {
        use std::sync::atomic::{AtomicU64, Ordering};
        let elapsed_ms = Arc::new(AtomicU64::new(0));
        let (base, hand) = (Instant::now(), elapsed_ms.clone());
        let store = StateStore::memory_with_clock(Arc::new(move || {
            base + Duration::from_millis(hand.load(Ordering::SeqCst))
        }));
        let clean = Behaviour::default();
        let ttl = Duration::from_secs(600);
        let (early, late) = (new_state(), new_state());
        for s in [&early, &late] {
            store.put(s, &record(), ttl, clean).await.unwrap();
        }
        elapsed_ms.store(599_999, Ordering::SeqCst);
        assert_eq!(store.consume(&early, clean).await.unwrap(), Some(record()));
        elapsed_ms.store(600_000, Ordering::SeqCst);
        assert_eq!(store.consume(&late, clean).await.unwrap(), None);
        // A zero TTL never redeems, and without a TTL (the flaw) a state
        // outlives any wait.
        let (zero, forever) = (new_state(), new_state());
        store.put(&zero, &record(), Duration::ZERO, clean).await.unwrap();
        assert_eq!(store.consume(&zero, clean).await.unwrap(), None);
        let no_ttl = Behaviour {
            no_ttl: true,
            ..clean
        };
        store.put(&forever, &record(), ttl, no_ttl).await.unwrap();
        elapsed_ms.store(u64::from(u32::MAX), Ordering::SeqCst);
        assert_eq!(store.consume(&forever, clean).await.unwrap(), Some(record()));
    }
}
