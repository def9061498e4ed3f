//! The campaign's reference model: a pure description of the tenant system
//! (who is in which org with which role, which resources exist and where)
//! and the actions a campaign takes, with proptest-state-machine strategies
//! that generate and shrink action sequences.
//!
//! proptest-state-machine's reference machine is a static trait, so the
//! target's shape (its resources, jobs, cached endpoints, org positions)
//! reaches it through a thread-local set by [`with_shape`] for the duration
//! of a campaign.

use std::cell::RefCell;
use std::sync::Arc;

use proptest::prelude::*;
use proptest::strategy::BoxedStrategy;
use proptest_state_machine::ReferenceStateMachine;

/// The target as the model sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Shape {
    /// Resource types (parents before children).
    pub resources: Vec<ResourceShape>,
    /// Background job count.
    pub jobs: usize,
    /// Cached endpoint count.
    pub cached: usize,
    /// Forgeable org positions (see [`Position`]) the profile declares.
    pub positions: Vec<Position>,
    /// The world's orgs and users.
    pub cast: Cast,
}

/// A resource type as the model sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceShape {
    /// Index of the parent type.
    pub parent: Option<usize>,
    /// Which requests exist.
    pub read: bool,
    /// Update exists.
    pub update: bool,
    /// Delete exists.
    pub delete: bool,
    /// List exists.
    pub list: bool,
    /// Search exists.
    pub search: bool,
    /// Deleting needs the admin role.
    pub admin_delete: bool,
}

/// Where a forged org goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Position {
    /// The profile's n-th org route.
    Route(usize),
    /// The n-th query parameter name.
    Query(usize),
    /// The n-th header name.
    Header(usize),
    /// The n-th cookie name.
    Cookie(usize),
    /// The n-th JSON pointer (writes only).
    Json(usize),
}

/// How the forged org is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// As is.
    Plain,
    /// Upper case.
    Upper,
    /// Surrounded by spaces.
    Padded,
    /// The slug instead of the id.
    Slug,
    /// A Cyrillic look-alike letter.
    Confusable,
    /// Given twice, own org first (query only).
    DuplicateOwnFirst,
    /// Given twice, own org last (query only).
    DuplicateOwnLast,
}

/// Who the campaign's world holds: org keys, and users with their initial
/// memberships as (org, admin). Drawn per campaign by [`cast_strategy`] (so
/// the seed fixes it); every org has an admin, every user an org, and at
/// least one user belongs to two orgs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cast {
    /// Org keys (`a`, `b`, …).
    pub orgs: Vec<String>,
    /// (user key, memberships as (org index, admin)).
    pub users: Vec<(String, Vec<(usize, bool)>)>,
}

impl Default for Cast {
    /// Two orgs; alice admin of a and member of b, bob admin of b, carol
    /// member of a.
    fn default() -> Self {
        Self {
            orgs: vec!["a".into(), "b".into()],
            users: vec![
                ("alice".into(), vec![(0, true), (1, false)]),
                ("bob".into(), vec![(1, true)]),
                ("carol".into(), vec![(0, false)]),
            ],
        }
    }
}

impl Cast {
    /// User `u`'s key.
    pub fn user(&self, u: usize) -> &str {
        &self.users[u].0
    }

    /// Org `o`'s key.
    pub fn org(&self, o: usize) -> &str {
        &self.orgs[o]
    }

    /// One line for people: `a, b; alice (a admin, b member), bob (b admin)`.
    pub fn describe(&self) -> String {
        let users: Vec<String> = self
            .users
            .iter()
            .map(|(name, m)| {
                let roles: Vec<String> = m
                    .iter()
                    .map(|(o, admin)| {
                        format!("{} {}", self.orgs[*o], if *admin { "admin" } else { "member" })
                    })
                    .collect();
                format!("{name} ({})", roles.join(", "))
            })
            .collect();
        format!("orgs {}; users {}", self.orgs.join(", "), users.join(", "))
    }
}

const ORG_KEYS: [&str; 3] = ["a", "b", "c"];
const USER_KEYS: [&str; 5] = ["alice", "bob", "carol", "dave", "erin"];

/// Worlds of 2–3 orgs and 2–5 users with random memberships and roles,
/// repaired so that every org has an admin, every user an org, and some
/// user belongs to two orgs (multi-org users are where switch bugs live).
pub fn cast_strategy() -> impl Strategy<Value = Cast> {
    (2..=ORG_KEYS.len(), 2..=USER_KEYS.len())
        .prop_flat_map(|(orgs, users)| {
            let membership = proptest::collection::vec(proptest::option::of(any::<bool>()), orgs);
            (Just(orgs), proptest::collection::vec(membership, users))
        })
        .prop_map(|(n_orgs, table)| {
            // table[user][org]: Some(admin) when a member.
            let mut table = table;
            for (u, row) in table.iter_mut().enumerate() {
                if row.iter().all(Option::is_none) {
                    row[u % n_orgs] = Some(false);
                }
            }
            for o in 0..n_orgs {
                if !table.iter().any(|row| row[o] == Some(true)) {
                    let u = table
                        .iter()
                        .position(|row| row[o].is_some())
                        .unwrap_or(o % table.len());
                    table[u][o] = Some(true);
                }
            }
            if !table.iter().any(|row| row.iter().flatten().count() > 1) {
                let other = usize::from(table[0][0].is_some());
                table[0][other] = Some(false);
            }
            Cast {
                orgs: ORG_KEYS[..n_orgs].iter().map(|k| k.to_string()).collect(),
                users: table
                    .into_iter()
                    .enumerate()
                    .map(|(u, row)| {
                        let memberships = row
                            .into_iter()
                            .enumerate()
                            .filter_map(|(o, m)| m.map(|admin| (o, admin)))
                            .collect();
                        (USER_KEYS[u].to_string(), memberships)
                    })
                    .collect(),
            }
        })
}

/// One resource the model knows about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// Resource type.
    pub resource: usize,
    /// Owning org.
    pub org: usize,
    /// Parent item.
    pub parent: Option<usize>,
    /// Deleted (or its parent was).
    pub gone: bool,
}

/// The model's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    /// The target's shape.
    pub shape: Arc<Shape>,
    /// Per user: the active org.
    pub active: Vec<Option<usize>>,
    /// Per user: memberships (org, admin).
    pub memberships: Vec<Vec<(usize, bool)>>,
    /// Items created so far (by index).
    pub items: Vec<Item>,
}

impl State {
    fn new(shape: Arc<Shape>) -> Self {
        Self {
            active: shape.cast.users.iter().map(|(_, m)| Some(m[0].0)).collect(),
            memberships: shape.cast.users.iter().map(|(_, m)| m.clone()).collect(),
            items: Vec::new(),
            shape,
        }
    }

    /// `user`'s role in `org`: Some(admin?) if a member.
    pub fn role(&self, user: usize, org: usize) -> Option<bool> {
        self.memberships[user]
            .iter()
            .find(|(o, _)| *o == org)
            .map(|(_, a)| *a)
    }

    /// The org `user` acts in, if it is (still) a member of it.
    pub fn acting_org(&self, user: usize) -> Option<usize> {
        self.active[user].filter(|&o| self.role(user, o).is_some())
    }
}

/// One step of a campaign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Create a resource (under `parent`, an item index, for children).
    Create {
        /// Acting user.
        user: usize,
        /// Resource type.
        resource: usize,
        /// Parent item.
        parent: Option<usize>,
    },
    /// Read item.
    Read {
        /// Acting user.
        user: usize,
        /// Item index.
        item: usize,
    },
    /// Update item.
    Update {
        /// Acting user.
        user: usize,
        /// Item index.
        item: usize,
    },
    /// Delete item.
    Delete {
        /// Acting user.
        user: usize,
        /// Item index.
        item: usize,
    },
    /// List a resource type (children: under `parent`).
    List {
        /// Acting user.
        user: usize,
        /// Resource type.
        resource: usize,
        /// Parent item.
        parent: Option<usize>,
    },
    /// Search for an item's canary.
    Search {
        /// Acting user.
        user: usize,
        /// Item index.
        item: usize,
    },
    /// Run a job to its end.
    Export {
        /// Acting user.
        user: usize,
        /// Job index.
        job: usize,
    },
    /// Read a cached endpoint.
    Cached {
        /// Acting user.
        user: usize,
        /// Endpoint index.
        endpoint: usize,
    },
    /// setActive(org).
    Switch {
        /// User.
        user: usize,
        /// Org.
        org: usize,
    },
    /// Remove a membership.
    RemoveMember {
        /// User.
        user: usize,
        /// Org.
        org: usize,
    },
    /// Change a member's role.
    ChangeRole {
        /// User.
        user: usize,
        /// Org.
        org: usize,
        /// Admin after the change.
        admin: bool,
    },
    /// The acting user's request with another org named somewhere.
    Forge {
        /// Acting user.
        user: usize,
        /// The org named.
        victim: usize,
        /// Resource type whose list (or create) is forged.
        resource: usize,
        /// A create (true) or a list (false).
        write: bool,
        /// Where.
        position: Position,
        /// How.
        encoding: Encoding,
    },
}

impl Action {
    /// The check a failure of this action is reported under.
    pub fn check(&self) -> &'static str {
        match self {
            Action::Create { parent: Some(_), .. } => "ISO-006",
            Action::Create { .. } => "ISO-004",
            Action::Read { .. } => "ISO-001",
            Action::Update { .. } => "ISO-002",
            Action::Delete { .. } => "ISO-003",
            Action::List { .. } => "ISO-004",
            Action::Search { .. } => "ISO-005",
            Action::Export { .. } => "ISO-008",
            Action::Cached { .. } => "ISO-009",
            Action::Switch { .. } => "SES-001",
            Action::RemoveMember { .. } => "SES-003",
            Action::ChangeRole { .. } => "SES-004",
            Action::Forge {
                position, encoding, ..
            } => match (encoding, position) {
                (Encoding::Slug, _) => "ORG-008",
                (Encoding::Plain, Position::Route(_)) => "ORG-001",
                (Encoding::Plain, Position::Query(_)) => "ORG-002",
                (Encoding::Plain, Position::Header(_)) => "ORG-003",
                (Encoding::Plain, Position::Json(_)) => "ORG-004",
                (Encoding::Plain, Position::Cookie(_)) => "ORG-006",
                _ => "ORG-007",
            },
        }
    }
}

thread_local! {
    static SHAPE: RefCell<Arc<Shape>> = RefCell::new(Arc::new(Shape::default()));
}

/// Runs `f` with the model seeing `shape`.
pub fn with_shape<T>(shape: Arc<Shape>, f: impl FnOnce() -> T) -> T {
    let previous = SHAPE.with(|s| std::mem::replace(&mut *s.borrow_mut(), shape));
    let out = f();
    SHAPE.with(|s| *s.borrow_mut() = previous);
    out
}

/// The model.
pub struct Model;

impl ReferenceStateMachine for Model {
    type State = State;
    type Transition = Action;

    fn init_state() -> BoxedStrategy<State> {
        let shape = SHAPE.with(|s| s.borrow().clone());
        Just(State::new(shape)).boxed()
    }

    fn transitions(state: &State) -> BoxedStrategy<Action> {
        let shape = state.shape.clone();
        let n_users = shape.cast.users.len();
        let n_orgs = shape.cast.orgs.len();
        let user = move || 0..n_users;
        let org = move || 0..n_orgs;
        let n_resources = shape.resources.len().max(1);
        let n_items = state.items.len();
        let mut choices: Vec<(u32, BoxedStrategy<Action>)> = Vec::new();
        choices.push((
            6,
            (user(), 0..n_resources, proptest::option::of(0..n_items.max(1)))
                .prop_map(|(user, resource, parent)| Action::Create {
                    user,
                    resource,
                    parent,
                })
                .boxed(),
        ));
        if n_items > 0 {
            let item = 0..n_items;
            choices.push((
                5,
                (user(), item.clone())
                    .prop_map(|(user, item)| Action::Read { user, item })
                    .boxed(),
            ));
            choices.push((
                2,
                (user(), item.clone())
                    .prop_map(|(user, item)| Action::Update { user, item })
                    .boxed(),
            ));
            choices.push((
                2,
                (user(), item.clone())
                    .prop_map(|(user, item)| Action::Delete { user, item })
                    .boxed(),
            ));
            choices.push((
                2,
                (user(), item)
                    .prop_map(|(user, item)| Action::Search { user, item })
                    .boxed(),
            ));
        }
        choices.push((
            3,
            (user(), 0..n_resources, proptest::option::of(0..n_items.max(1)))
                .prop_map(|(user, resource, parent)| Action::List {
                    user,
                    resource,
                    parent,
                })
                .boxed(),
        ));
        if shape.jobs > 0 {
            choices.push((
                1,
                (user(), 0..shape.jobs)
                    .prop_map(|(user, job)| Action::Export { user, job })
                    .boxed(),
            ));
        }
        if shape.cached > 0 {
            choices.push((
                2,
                (user(), 0..shape.cached)
                    .prop_map(|(user, endpoint)| Action::Cached { user, endpoint })
                    .boxed(),
            ));
        }
        choices.push((
            2,
            (user(), org())
                .prop_map(|(user, org)| Action::Switch { user, org })
                .boxed(),
        ));
        choices.push((
            1,
            (user(), org())
                .prop_map(|(user, org)| Action::RemoveMember { user, org })
                .boxed(),
        ));
        choices.push((
            1,
            (user(), org(), any::<bool>())
                .prop_map(|(user, org, admin)| Action::ChangeRole { user, org, admin })
                .boxed(),
        ));
        if !shape.positions.is_empty() {
            let positions = shape.positions.clone();
            let encodings = prop_oneof![
                4 => Just(Encoding::Plain),
                1 => Just(Encoding::Upper),
                1 => Just(Encoding::Padded),
                1 => Just(Encoding::Slug),
                1 => Just(Encoding::Confusable),
                1 => Just(Encoding::DuplicateOwnFirst),
                1 => Just(Encoding::DuplicateOwnLast),
            ];
            choices.push((
                4,
                (
                    user(),
                    org(),
                    0..n_resources,
                    any::<bool>(),
                    proptest::sample::select(positions),
                    encodings,
                )
                    .prop_map(
                        |(user, victim, resource, write, position, encoding)| Action::Forge {
                            user,
                            victim,
                            resource,
                            write,
                            position,
                            encoding,
                        },
                    )
                    .boxed(),
            ));
        }
        proptest::strategy::Union::new_weighted(choices).boxed()
    }

    fn preconditions(state: &State, action: &Action) -> bool {
        let shape = &state.shape;
        let acting = |user: usize| state.acting_org(user).is_some();
        let item_ok = |i: usize| i < state.items.len();
        match *action {
            Action::Create {
                user,
                resource,
                parent,
            } => {
                acting(user)
                    && resource < shape.resources.len()
                    && match (shape.resources[resource].parent, parent) {
                        (None, None) => true,
                        (Some(kind), Some(p)) => item_ok(p) && state.items[p].resource == kind,
                        _ => false,
                    }
            }
            Action::Read { user, item } => {
                acting(user) && item_ok(item) && shape.resources[state.items[item].resource].read
            }
            Action::Update { user, item } => {
                acting(user) && item_ok(item) && shape.resources[state.items[item].resource].update
            }
            Action::Delete { user, item } => {
                acting(user) && item_ok(item) && shape.resources[state.items[item].resource].delete
            }
            Action::Search { user, item } => {
                acting(user) && item_ok(item) && shape.resources[state.items[item].resource].search
            }
            Action::List {
                user,
                resource,
                parent,
            } => {
                acting(user)
                    && resource < shape.resources.len()
                    && shape.resources[resource].list
                    && match (shape.resources[resource].parent, parent) {
                        (None, None) => true,
                        (Some(kind), Some(p)) => item_ok(p) && state.items[p].resource == kind,
                        _ => false,
                    }
            }
            Action::Export { user, job } => acting(user) && job < shape.jobs,
            Action::Cached { user, endpoint } => acting(user) && endpoint < shape.cached,
            Action::Switch { user, org } => {
                state.role(user, org).is_some() && state.active[user] != Some(org)
            }
            Action::RemoveMember { user, org } => {
                // Keep every org with an admin and every user with an org.
                state.role(user, org).is_some()
                    && state.memberships[user].len() > 1
                    && (0..state.memberships.len()).any(|u| u != user && state.role(u, org) == Some(true))
            }
            Action::ChangeRole { user, org, admin } => {
                state.role(user, org).is_some_and(|a| a != admin)
                    && (admin
                        || (0..state.memberships.len())
                            .any(|u| u != user && state.role(u, org) == Some(true)))
            }
            Action::Forge {
                user,
                victim,
                resource,
                write,
                position,
                ..
            } => {
                let Some(own) = state.acting_org(user) else {
                    return false;
                };
                let r = shape.resources.get(resource);
                own != victim
                    && r.is_some_and(|r| r.parent.is_none() && (write || r.list))
                    && shape.positions.contains(&position)
                    && match position {
                        Position::Route(_) => !write,
                        Position::Json(_) => write,
                        _ => true,
                    }
            }
        }
    }

    fn apply(mut state: State, action: &Action) -> State {
        match *action {
            Action::Create {
                user,
                resource,
                parent,
            } => {
                let org = state.acting_org(user).unwrap_or(0);
                let parent_ok = parent.is_none_or(|p| state.items[p].org == org && !state.items[p].gone);
                if parent_ok {
                    state.items.push(Item {
                        resource,
                        org,
                        parent,
                        gone: false,
                    });
                }
            }
            Action::Delete { user, item } => {
                let org = state.acting_org(user);
                let target = &state.items[item];
                let admin_needed = state.shape.resources[target.resource].admin_delete;
                let allowed = Some(target.org) == org
                    && !target.gone
                    && (!admin_needed || org.and_then(|o| state.role(user, o)) == Some(true));
                if allowed {
                    state.items[item].gone = true;
                    // Children go with their parent (or become unreachable).
                    loop {
                        let mut changed = false;
                        for i in 0..state.items.len() {
                            if let Some(p) = state.items[i].parent {
                                if state.items[p].gone && !state.items[i].gone {
                                    state.items[i].gone = true;
                                    changed = true;
                                }
                            }
                        }
                        if !changed {
                            break;
                        }
                    }
                }
            }
            Action::Switch { user, org } => state.active[user] = Some(org),
            Action::RemoveMember { user, org } => {
                state.memberships[user].retain(|(o, _)| *o != org);
                if state.active[user] == Some(org) {
                    state.active[user] = state.memberships[user].first().map(|(o, _)| *o);
                }
            }
            Action::ChangeRole { user, org, admin } => {
                for m in &mut state.memberships[user] {
                    if m.0 == org {
                        m.1 = admin;
                    }
                }
            }
            _ => {}
        }
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    fn shape() -> Arc<Shape> {
        let full = ResourceShape {
            parent: None,
            read: true,
            update: true,
            delete: true,
            list: true,
            search: true,
            admin_delete: true,
        };
        Arc::new(Shape {
            resources: vec![
                full.clone(),
                ResourceShape {
                    parent: Some(0),
                    search: false,
                    admin_delete: false,
                    ..full
                },
            ],
            jobs: 1,
            cached: 1,
            positions: vec![
                Position::Query(0),
                Position::Header(0),
                Position::Route(0),
                Position::Json(0),
            ],
            cast: Cast::default(),
        })
    }

    proptest! {
        #[test]
        fn drawn_worlds_keep_the_invariants_the_model_needs(cast in cast_strategy()) {
            prop_assert!((2..=3).contains(&cast.orgs.len()));
            prop_assert!((2..=5).contains(&cast.users.len()));
            for o in 0..cast.orgs.len() {
                prop_assert!(cast.users.iter().any(|(_, m)| m.contains(&(o, true))), "org {o} has no admin: {cast:?}");
            }
            prop_assert!(cast.users.iter().all(|(_, m)| !m.is_empty()));
            prop_assert!(cast.users.iter().any(|(_, m)| m.len() > 1));
            for (_, m) in &cast.users {
                let mut orgs: Vec<usize> = m.iter().map(|(o, _)| *o).collect();
                orgs.dedup();
                prop_assert_eq!(orgs.len(), m.len());
            }
        }
    }

    #[test]
    fn generated_sequences_respect_preconditions() {
        let mut casts = TestRunner::deterministic();
        for _ in 0..4 {
            let cast = cast_strategy().new_tree(&mut casts).unwrap().current();
            let shape = Arc::new(Shape {
                cast,
                ..(*shape()).clone()
            });
            sequences_respect_preconditions(shape);
        }
        sequences_respect_preconditions(shape());
    }

    fn sequences_respect_preconditions(shape: Arc<Shape>) {
        with_shape(shape, || {
            let mut runner = TestRunner::deterministic();
            let strategy = Model::sequential_strategy(1..30);
            for _ in 0..50 {
                let (mut state, actions, _) = strategy.new_tree(&mut runner).unwrap().current();
                for action in &actions {
                    assert!(Model::preconditions(&state, action), "{action:?} in {state:?}");
                    state = Model::apply(state, action);
                    // Every org keeps an admin; every user keeps an org.
                    for org in 0..state.shape.cast.orgs.len() {
                        assert!((0..state.memberships.len()).any(|u| state.role(u, org) == Some(true)));
                    }
                    assert!(state.memberships.iter().all(|m| !m.is_empty()));
                }
            }
        });
    }

    #[test]
    fn deleting_a_parent_takes_its_children() {
        let mut s = State::new(shape());
        s = Model::apply(
            s,
            &Action::Create {
                user: 0,
                resource: 0,
                parent: None,
            },
        );
        s = Model::apply(
            s,
            &Action::Create {
                user: 0,
                resource: 1,
                parent: Some(0),
            },
        );
        // carol is not an admin: the delete is refused, nothing goes.
        s = Model::apply(s, &Action::Delete { user: 2, item: 0 });
        assert!(!s.items[0].gone);
        s = Model::apply(s, &Action::Delete { user: 0, item: 0 });
        assert!(s.items[0].gone && s.items[1].gone);
        // A child under a foreign parent is not created.
        s = Model::apply(
            s,
            &Action::Create {
                user: 1,
                resource: 1,
                parent: Some(0),
            },
        );
        assert_eq!(s.items.len(), 2);
    }

    #[test]
    fn forged_positions_map_to_their_checks() {
        let forge = |position, encoding| Action::Forge {
            user: 1,
            victim: 0,
            resource: 0,
            write: false,
            position,
            encoding,
        };
        assert_eq!(forge(Position::Route(0), Encoding::Plain).check(), "ORG-001");
        assert_eq!(forge(Position::Query(0), Encoding::Plain).check(), "ORG-002");
        assert_eq!(forge(Position::Query(0), Encoding::Slug).check(), "ORG-008");
        assert_eq!(forge(Position::Header(0), Encoding::Upper).check(), "ORG-007");
    }
}
