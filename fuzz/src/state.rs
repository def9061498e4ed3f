//! OAuth state fuzz input: a pool of states and put/consume operations on a
//! store whose clock the input moves, a consume possibly naming a tampered
//! copy.

use arbitrary::Arbitrary;
use tenantry_reference::oauth::state::StateRecord;

/// A state record as fuzz input.
#[derive(Debug, Arbitrary)]
pub struct Record {
    org: String,
    user: String,
    session: Option<String>,
    provider: String,
    verifier: Option<String>,
    return_to: Option<String>,
}

impl Record {
    /// The library record.
    pub fn record(self) -> StateRecord {
        let Record {
            org,
            user,
            session,
            provider,
            verifier,
            return_to,
        } = self;
        StateRecord {
            org,
            user,
            session,
            provider,
            verifier,
            return_to,
        }
    }
}

/// One store operation.
#[derive(Debug, Arbitrary)]
pub enum Op {
    /// Store a record under pool state `i` for `ttl_ms` (0: expired at once).
    Put {
        /// Pool index.
        i: u8,
        /// The record.
        record: Record,
        /// Its TTL in milliseconds.
        ttl_ms: u16,
    },
    /// Move the store's clock forward.
    Advance {
        /// Milliseconds.
        ms: u16,
    },
    /// Redeem pool state `i`, or a tampered copy of it.
    Consume {
        /// Pool index.
        i: u8,
        /// How the state is tampered with, if at all.
        tamper: Option<Tamper>,
    },
}

/// How a state is tampered with.
#[derive(Debug, Arbitrary)]
pub enum Tamper {
    /// One character's low bit flipped.
    FlipChar(u16),
    /// Cut short.
    Truncate(u16),
    /// Something appended.
    Append(String),
    /// Upper-cased.
    Uppercase,
    /// Every byte percent-encoded.
    PercentEncode,
}

/// `state` tampered with `how`.
pub fn tampered(state: &str, how: &Tamper) -> String {
    match how {
        Tamper::FlipChar(at) => {
            let mut chars: Vec<char> = state.chars().collect();
            if let Some(c) = chars.get_mut(usize::from(*at) % state.chars().count().max(1)) {
                *c = char::from_u32(*c as u32 ^ 1).unwrap_or('?');
            }
            chars.into_iter().collect()
        }
        Tamper::Truncate(n) => state
            .chars()
            .take(usize::from(*n) % (state.chars().count() + 1))
            .collect(),
        Tamper::Append(s) => format!("{state}{s}"),
        Tamper::Uppercase => state.to_uppercase(),
        Tamper::PercentEncode => state.bytes().map(|b| format!("%{b:02X}")).collect(),
    }
}

/// A current-thread runtime for the store's async API (the in-process store
/// never waits).
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a runtime")
    })
}
