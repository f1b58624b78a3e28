//! Elections asked for by commands or shutdown: replSetStepDown, handing over to a
//! caught-up successor, replSetStepUp and replSetFreeze.

use super::*;

impl ReplCoordinator {
    /// replSetStepDown: stop being primary and keep out of elections for `step_down`.
    pub async fn step_down(
        &self,
        server: &dyn ReplHost,
        step_down: Duration,
        catch_up: Duration,
        force: bool,
    ) -> CommandResult {
        if self.my_state(server) != MemberState::Primary {
            return Err(not_writable_primary("not primary so can't step down"));
        }
        let config = self.config().ok_or_else(not_yet_initialized)?;
        let raft = self.raft().ok_or_else(not_yet_initialized)?;
        // As mongod, wait (up to secondaryCatchUpPeriodSecs) for an electable secondary
        // that holds everything this primary has; forced, take the best there is.
        let deadline = Instant::now() + catch_up;
        let successor = loop {
            let best = self.best_successor(&config, &raft);
            match best {
                Some(s) if s.caught_up => break Some(s),
                _ if force => break best,
                _ => {}
            }
            if Instant::now() >= deadline {
                return Err(CommandError::new(
                    Code::ExceededTimeLimit,
                    format!(
                        "No electable secondaries caught up as of {}. Please use the replSetStepDown command with the argument {{force: true}} to force node to step down.",
                        chrono::Local::now().format("%Y-%m-%dT%H:%M:%S%.3f%:z")
                    ),
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        self.hand_to(&raft, step_down, successor, false).await;
        Ok(Document::new())
    }

    /// Stops being primary: no elections here for `freeze`, no heartbeats, and asks
    /// `successor` to run at once (with `priority_takeover`, it says so in its log).
    pub(super) async fn hand_to(
        &self,
        raft: &Raft,
        freeze: Duration,
        successor: Option<Successor>,
        priority_takeover: bool,
    ) {
        *self.no_elect_until.lock() = Some(Instant::now() + freeze);
        self.stepping_down.store(true, Ordering::Release);
        raft.runtime_config().elect(false);
        *self.elect_enabled.lock() = Some(false);
        // Without heartbeats from us the secondaries time out and elect one of themselves;
        // ask an electable one to run at once.
        raft.runtime_config().heartbeat(false);
        self.topology_counter.send_modify(|c| *c += 1);
        tracing::info!(target: "REPL", id = 21343, ctx = "ReplCoord", "Starting an election due to step up request");
        if let Some(Successor {
            host,
            matched,
            caught_up,
        }) = successor
        {
            tracing::info!(target: "REPL", id = 7_000_032, ctx = "ReplCoord", member = %host,
                matchedIndex = matched as i64, caughtUp = caught_up,
                "Asking the most caught-up electable secondary to step up");
            let mut cmd = doc! {"replSetStepUp": 1, "skipDryRun": true, "$db": "admin"};
            if priority_takeover {
                cmd.insert(PRIORITY_TAKEOVER_FIELD, true);
            }
            let _ = self
                .transport
                .run_command(&host, cmd, Duration::from_secs(2))
                .await;
        }
    }

    /// The electable secondary (priority above 0, a vote, not hidden) that answers
    /// heartbeats and holds the most of this primary's log; higher priority breaks ties.
    pub(super) fn best_successor(&self, config: &ReplSetConfig, raft: &Raft) -> Option<Successor> {
        let metrics = raft.metrics().borrow().clone();
        let last = metrics.last_log_index.unwrap_or(0);
        let matched = metrics.replication.unwrap_or_default();
        let health = self.health.lock();
        config
            .members
            .iter()
            .filter(|m| m.id != metrics.id && m.is_electable())
            .filter(|m| {
                health
                    .get(&m.id)
                    .is_some_and(|h| h.healthy && h.state == MemberState::Secondary.code())
            })
            .map(|m| {
                let index = matched.get(&m.id).copied().flatten().map_or(0, |l| l.index);
                (index, m.priority, m)
            })
            .max_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)))
            .map(|(index, _, m)| Successor {
                host: m.host.clone(),
                matched: index,
                caught_up: index >= last,
            })
    }

    /// At shutdown: a primary steps down and waits (at most `within`) until a caught-up
    /// secondary has taken over, so that clients see a new primary at once instead of
    /// after an election timeout. The successor wins at once when this primary was
    /// elected longer ago than openraft's leader lease (0.575 x electionTimeoutMillis):
    /// this node then grants it its vote (see raft_config).
    pub async fn hand_over(&self, server: &dyn ReplHost, within: Duration) {
        if self.my_state(server) != MemberState::Primary {
            return;
        }
        tracing::info!(target: "REPL", id = 21328, ctx = "SignalHandler", "Stepping down from primary in response to shutdown");
        let started = Instant::now();
        if let Err(e) = self
            .step_down(server, Duration::from_secs(60), within, false)
            .await
        {
            tracing::info!(target: "REPL", id = 7_000_030, ctx = "SignalHandler", error = %e.message,
                "No secondary to hand over to; shutting down as primary");
            return;
        }
        let me = self
            .config()
            .and_then(|c| self.self_member(server, &c))
            .map(|m| m.host);
        while started.elapsed() < within {
            if let Some(primary) = self.primary_host(server) {
                if Some(&primary) != me.as_ref() {
                    tracing::info!(target: "REPL", id = 7_000_031, ctx = "SignalHandler",
                        primary = %primary, tookMillis = started.elapsed().as_millis() as i64,
                        "Handed over to a new primary");
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Notes why the next election is run, for replSetGetStatus.
    pub fn note_step_up_request(&self, skip_dry_run: bool) {
        self.elections.step_up_requested(self.term(), skip_dry_run);
    }

    /// replSetStepUp: run for election now.
    pub async fn step_up(&self, server: &dyn ReplHost) -> CommandResult {
        let config = self.config().ok_or_else(not_yet_initialized)?;
        let me = self
            .self_member(server, &config)
            .ok_or_else(removed_error)?;
        if !me.is_electable() {
            return Err(CommandError::new(Code::CommandFailed, "Election failed."));
        }
        if self
            .no_elect_until
            .lock()
            .is_some_and(|t| Instant::now() < t)
        {
            return Err(CommandError::new(
                Code::CommandFailed,
                "Election failed: this node is frozen",
            ));
        }
        let raft = self.raft().ok_or_else(not_yet_initialized)?;
        raft.trigger()
            .elect()
            .await
            .map_err(|e| CommandError::new(Code::CommandFailed, format!("Election failed: {e}")))?;
        Ok(doc! {"message": "Successfully stepped up."})
    }

    /// replSetFreeze.
    pub fn freeze(&self, server: &dyn ReplHost, secs: i64) -> CommandResult {
        self.config().ok_or_else(not_yet_initialized)?;
        let state = self.my_state(server);
        if state == MemberState::Primary {
            return Err(CommandError::new(
                Code::NotSecondary,
                "cannot freeze node when primary or running for election. state: Primary",
            ));
        }
        if secs <= 0 {
            *self.no_elect_until.lock() = None;
            return Ok(doc! {"info": "unfreezing"});
        }
        *self.no_elect_until.lock() = Some(Instant::now() + Duration::from_secs(secs as u64));
        let mut reply = Document::new();
        if secs == 1 {
            reply.insert("warning", "you really want to freeze for only 1 second?");
        }
        Ok(reply)
    }
}
