//! Work that would hold one of the async workers for long: CPU-bound work (large
//! decompression and parsing, PBKDF2) and fsync-bound work (catalog commits, the Raft
//! log file). On a small machine one such job on a worker stalls every client it serves.

use std::sync::{Arc, LazyLock};
use tokio::sync::Semaphore;

/// How many CPU-bound jobs may run at once: one core less than the machine has (at
/// least one), so the async workers always keep a core for the other clients.
pub fn cpu_slots() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .saturating_sub(1)
        .max(1)
}

static CPU_SLOTS: LazyLock<Arc<Semaphore>> =
    LazyLock::new(|| Arc::new(Semaphore::new(cpu_slots())));

/// Runs CPU-bound `work` on the blocking pool, at most [`cpu_slots`] at a time; the
/// others wait here, in arrival order, without holding a thread.
pub async fn cpu<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    let permit = CPU_SLOTS
        .clone()
        .acquire_owned()
        .await
        .expect("the semaphore is never closed");
    // The permit goes with the job: a caller that stops waiting does not free the slot
    // while the job still runs.
    join(tokio::task::spawn_blocking(move || {
        let _permit = permit;
        work()
    }))
    .await
}

/// Runs fsync-bound `work` on the blocking pool. Not bounded by [`cpu_slots`]: waiting
/// on the disk leaves the cores free.
pub async fn io<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    join(tokio::task::spawn_blocking(work)).await
}

/// Runs fsync-bound `work` that a synchronous caller must wait for (a catalog commit
/// inside a Raft storage call or a command). On an async worker of the multi-threaded
/// runtime the worker first hands its other tasks to a new worker
/// (`tokio::task::block_in_place`), so only the caller waits; elsewhere (a blocking
/// thread, a single-threaded runtime, no runtime) it simply runs.
pub fn in_place<T>(work: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(work)
        }
        _ => work(),
    }
}

async fn join<T>(job: tokio::task::JoinHandle<T>) -> T {
    match job.await {
        Ok(value) => value,
        // A panic in the job is the caller's, as if it had run inline.
        Err(e) => match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(_) => panic!("blocking job cancelled: the runtime is shutting down"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_more_than_the_cpu_slots_run_at_once() {
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let jobs = (0..8).map(|_| {
            let (running, most) = (running.clone(), most.clone());
            tokio::spawn(cpu(move || {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(std::time::Duration::from_millis(5));
                running.fetch_sub(1, Ordering::SeqCst);
            }))
        });
        for job in jobs.collect::<Vec<_>>() {
            job.await.unwrap();
        }
        assert!(most.load(Ordering::SeqCst) <= cpu_slots());
    }
}
