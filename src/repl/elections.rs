//! What replSetGetStatus reports of the last election this node won
//! (`electionCandidateMetrics`) or saw another member win (`electionParticipantMetrics`),
//! noted when the topology changes.

use bson::{doc, Document};
use parking_lot::Mutex;

/// The election this node won last.
#[derive(Clone)]
struct Won {
    reason: &'static str,
    term: u64,
    at: bson::DateTime,
    optime: Document,
    votes_needed: i32,
    priority: f64,
    election_timeout_millis: i64,
}

/// The election another member won last, as this node saw it.
#[derive(Clone)]
struct Seen {
    term: u64,
    at: bson::DateTime,
    candidate: u64,
    voted_for_it: bool,
    optime: Document,
    priority: f64,
}

#[derive(Default)]
pub(crate) struct Elections {
    won: Mutex<Option<Won>>,
    seen: Mutex<Option<Seen>>,
    /// A replSetStepUp asked for in this term, and mongod's name for its reason.
    step_up: Mutex<Option<(u64, &'static str)>>,
}

/// A change of topology, as far as the election record needs it.
pub(crate) struct Observed<'a> {
    pub term: u64,
    pub primary_is_me: bool,
    /// The member id of the primary, when another member is.
    pub other_primary: Option<u64>,
    /// This node's Raft vote names the primary in that term.
    pub voted_for_it: bool,
    pub optime: &'a Document,
    pub votes_needed: i32,
    pub priority: f64,
    pub election_timeout_millis: i64,
}

impl Elections {
    /// A replSetStepUp in `term`: the election it starts is won for that reason.
    pub(crate) fn step_up_requested(&self, term: u64, skip_dry_run: bool) {
        let reason = if skip_dry_run {
            "stepUpRequestSkipDryRun"
        } else {
            "stepUpRequest"
        };
        *self.step_up.lock() = Some((term, reason));
    }

    pub(crate) fn observe(&self, o: Observed<'_>) {
        let now = bson::DateTime::now();
        if o.primary_is_me {
            let mut won = self.won.lock();
            if won.as_ref().is_none_or(|w| w.term != o.term) {
                // The step-up asked for in the term before this one started this election.
                let reason = match self.step_up.lock().take() {
                    Some((asked, reason)) if asked < o.term => reason,
                    _ => "electionTimeout",
                };
                *won = Some(Won {
                    reason,
                    term: o.term,
                    at: now,
                    optime: o.optime.clone(),
                    votes_needed: o.votes_needed,
                    priority: o.priority,
                    election_timeout_millis: o.election_timeout_millis,
                });
            }
        } else if let Some(candidate) = o.other_primary {
            let mut seen = self.seen.lock();
            if seen.as_ref().is_none_or(|s| s.term != o.term) {
                *seen = Some(Seen {
                    term: o.term,
                    at: now,
                    candidate,
                    voted_for_it: o.voted_for_it,
                    optime: o.optime.clone(),
                    priority: o.priority,
                });
            }
        }
    }

    /// mongod's `electionCandidateMetrics`, while this node is the primary it elected.
    pub(crate) fn candidate_metrics(&self, term: u64) -> Option<Document> {
        let won = self.won.lock().clone().filter(|w| w.term == term)?;
        Some(doc! {
            "lastElectionReason": won.reason,
            "lastElectionDate": won.at,
            "electionTerm": won.term as i64,
            "lastCommittedOpTimeAtElection": won.optime.clone(),
            "lastSeenOpTimeAtElection": won.optime.clone(),
            "numVotesNeeded": won.votes_needed,
            "priorityAtElection": won.priority,
            "electionTimeoutMillis": won.election_timeout_millis,
            "numCatchUpOps": 0i64,
            "newTermStartDate": won.at,
            "wMajorityWriteAvailabilityDate": won.at,
        })
    }

    /// mongod's `electionParticipantMetrics`, once this node has seen another win.
    pub(crate) fn participant_metrics(&self) -> Option<Document> {
        let seen = self.seen.lock().clone()?;
        Some(doc! {
            "votedForCandidate": seen.voted_for_it,
            "electionTerm": seen.term as i64,
            "lastVoteDate": seen.at,
            "electionCandidateMemberId": seen.candidate as i32,
            "voteReason": "",
            "lastAppliedOpTimeAtElection": seen.optime.clone(),
            "maxAppliedOpTimeInSet": seen.optime,
            "priorityAtElection": seen.priority,
        })
    }
}
