//! Shrinking a failing case: drop one mutation at a time while the case
//! still fails the same way, on a fresh world each round. Every candidate
//! of a round (the case without mutation 1, without mutation 2, …) goes out
//! in one scenario run, so a round costs one world, not one per candidate.
//! The caller runs the candidates; [`Shrinker`] decides.

use super::mutate::Case;
use super::Verdict;

/// The state of one shrink.
#[derive(Debug, Clone)]
pub struct Shrinker {
    case: Case,
    verdict: Verdict,
    rounds: usize,
    max_rounds: usize,
    done: bool,
}

impl Shrinker {
    /// Shrinking `case`, which failed as `verdict`, in at most `max_rounds`
    /// rounds.
    pub fn new(case: Case, verdict: Verdict, max_rounds: usize) -> Self {
        Self {
            case,
            verdict,
            rounds: 0,
            max_rounds,
            done: false,
        }
    }

    /// The next round's candidates (`None`: done).
    pub fn candidates(&self) -> Option<Vec<Case>> {
        if self.done || self.rounds >= self.max_rounds || self.case.mutations.is_empty() {
            return None;
        }
        Some(
            (0..self.case.mutations.len())
                .map(|i| self.case.without(i))
                .collect(),
        )
    }

    /// How each candidate of the round did (`None`: passed); the first one
    /// that fails the same way becomes the case.
    pub fn feed(&mut self, candidates: Vec<Case>, verdicts: &[Option<Verdict>]) {
        self.rounds += 1;
        let verdict = self.verdict;
        match candidates
            .into_iter()
            .zip(verdicts)
            .find(|(_, v)| v.is_some_and(|v| v.same_kind(verdict)))
        {
            Some((smaller, _)) => self.case = smaller,
            None => self.done = true,
        }
    }

    /// The smallest case so far.
    pub fn case(&self) -> &Case {
        &self.case
    }

    /// Rounds run.
    pub fn rounds(&self) -> usize {
        self.rounds
    }
}

#[cfg(test)]
mod tests {
    use super::super::mutate::{Encoding, Mutation, Who};
    use super::*;

    #[test]
    fn drops_every_mutation_the_failure_does_not_need() {
        let needed = Mutation::Method("PUT".into());
        let case = Case {
            who: Who::Bob,
            op: 0,
            mutations: vec![
                Mutation::ForeignId {
                    encoding: Encoding::Plain,
                },
                needed.clone(),
                Mutation::UnknownField { name: "org".into() },
            ],
        };
        let mut s = Shrinker::new(case, Verdict::ServerError(500), 10);
        while let Some(candidates) = s.candidates() {
            let verdicts: Vec<Option<Verdict>> = candidates
                .iter()
                .map(|c| c.mutations.contains(&needed).then_some(Verdict::ServerError(502)))
                .collect();
            s.feed(candidates, &verdicts);
        }
        assert_eq!(s.case().mutations, vec![needed]);
        assert_eq!(s.rounds(), 3);
    }

    #[test]
    fn another_failure_is_not_the_same_failure() {
        let case = Case {
            who: Who::Bob,
            op: 0,
            mutations: vec![Mutation::Method("PUT".into()), Mutation::Method("GET".into())],
        };
        let mut s = Shrinker::new(case.clone(), Verdict::ForeignData, 10);
        let candidates = s.candidates().unwrap();
        s.feed(candidates, &[Some(Verdict::ServerError(500)), None]);
        assert_eq!(s.case(), &case);
        assert!(s.candidates().is_none());
    }
}
