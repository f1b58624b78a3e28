//! `mongod.lock`: one server per dbpath. The lock is an advisory `flock` held as long as
//! the process lives, so a crashed server never leaves a stale lock behind.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

pub const LOCK_FILE: &str = "mongod.lock";

#[derive(Debug)]
pub struct DbPathLock {
    _file: File,
    pub path: PathBuf,
}

impl DbPathLock {
    /// Takes the lock or says, as mongod does, that another server holds the directory.
    pub fn acquire(dbpath: &Path) -> Result<DbPathLock, String> {
        let path = dbpath.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| {
                format!(
                    "Unable to create/open the lock file: {} ({e})",
                    path.display()
                )
            })?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(format!(
                    "DBPathInUse: Unable to lock the lock file: {} (Resource temporarily unavailable). \
                     Another mongod instance is already running on the {} directory",
                    path.display(),
                    dbpath.display()
                ))
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(format!("Unable to lock the lock file: {} ({e})", path.display()))
            }
        }
        // Like mongod, the file names the process that holds it.
        file.set_len(0)
            .and_then(|_| writeln!(file, "{}", std::process::id()))
            .map_err(|e| format!("Unable to write the lock file: {} ({e})", path.display()))?;
        Ok(DbPathLock { _file: file, path })
    }
}
