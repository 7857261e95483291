//! A write-ahead log of small named records, for the records that change on nearly every request
//! (containers'). A record is saved in three steps: its new bytes written to a temp file beside its file,
//! unsynced; an entry appended here and made durable with one `fdatasync`; the temp file renamed onto the
//! record's file. The log is a file of fixed size, zero-filled when made, so an append changes no
//! metadata: its sync writes the entry's blocks and flushes the disk, with no filesystem journal commit
//! (about 0.2 ms here, where the fsync of a new file costs 2). A removal is logged, then its file unlinked.
//!
//! At start the log is replayed onto the files (see [`Wal::open`]): a record whose file a crash left
//! empty or old, or whose unlink never reached the disk, comes out as its last logged change made it.
//! When the log fills, every save under way finishes its file, the filesystem is synced (`syncfs`: the
//! files are durable), and a fresh log begins: a shared guard over each save, from its entry to its file,
//! and the reset's exclusive one keep a reset from falling between the two.
//!
//! An entry: magic, payload length, sequence number, CRC-32 of the three and the payload; the payload a
//! kind byte (a record, or the record's removal), the name's length and the name, then the record's bytes.
//! Replay reads entries in order and stops at the first that is torn or out of sequence: an append that
//! returned was synced after every earlier one was written (appends are written under one lock), so no
//! entry a caller was told is durable lies after a gap. Syncs are taken in turn, as the kernel reports a
//! failed writeback to one sync of a file only: after a failed one, every save of that log fails, and
//! the next begins a fresh log first.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use crate::json;

/// The size of a log: thousands of container records (a few hundred bytes each, compact JSON).
pub const LOG_SIZE: u64 = 4 << 20;
const MAGIC: u32 = 0x4c57_4b42; // "BKWL", little-endian
const HEADER: usize = 4 + 4 + 8 + 4;
const PUT: u8 = 1;
const REMOVE: u8 = 2;

/// What an entry says of the record `name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// Its record is now these bytes.
    Put { name: String, bytes: Vec<u8> },
    /// It has no record any more.
    Remove { name: String },
}

impl Entry {
    pub fn name(&self) -> &str {
        match self {
            Entry::Put { name, .. } | Entry::Remove { name } => name,
        }
    }
}

/// An open log, appended to by any thread.
pub struct Wal {
    path: PathBuf,
    size: u64,
    /// Held shared by each save from its entry to its file's rename, exclusively by a reset.
    saves: RwLock<()>,
    /// Taken by one sync at a time (after `saves`, before `inner`): see [`Synced`].
    synced: Mutex<Synced>,
    inner: Mutex<Log>,
}

/// How far the current log is durable. The kernel reports a failed writeback once per open file, to
/// whichever sync asks first: syncs are taken in turn here, so a save whose entry an earlier sync
/// covered skips its own, and one after a failed sync fails too (its entry may lie after a gap).
#[derive(Default)]
struct Synced {
    /// The last sequence number a sync returned for.
    seq: u64,
    failed: bool,
}

struct Log {
    file: Arc<File>,
    offset: u64,
    seq: u64,
    /// Counts resets, so that of two saves that found the log full only one begins a fresh one.
    generation: u64,
    /// A write or sync failed: the tail is in doubt until a reset.
    broken: bool,
}

/// What an append under the log's lock came to.
enum Appended {
    /// Written at its place, with this sequence number: to be synced.
    Written(Arc<File>, u64),
    /// No room (or the log is broken): a reset of this generation first.
    Full(u64),
}

impl Wal {
    /// Opens the log at `path`: `apply` is handed the entries the last one held, in order, to write to
    /// the record files; the filesystem is then synced (the files are durable), and a fresh log begins.
    pub fn open(path: &Path, apply: impl FnOnce(Vec<Entry>) -> io::Result<()>) -> io::Result<Wal> {
        Self::open_sized(path, LOG_SIZE, apply)
    }

    fn open_sized(path: &Path, size: u64, apply: impl FnOnce(Vec<Entry>) -> io::Result<()>) -> io::Result<Wal> {
        let entries = match File::open(path) {
            Ok(mut f) => {
                let mut bytes = Vec::new();
                f.read_to_end(&mut bytes)?;
                parse(&bytes)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        if !entries.is_empty() {
            apply(entries)?;
            sync_filesystem(path.parent().unwrap_or(Path::new("/")))?;
        }
        let log = Log { file: Arc::new(fresh(path, size)?), offset: 0, seq: 1, generation: 0, broken: false };
        let (saves, synced, inner) = (RwLock::new(()), Mutex::default(), Mutex::new(log));
        Ok(Wal { path: path.to_path_buf(), size, saves, synced, inner })
    }

    /// Saves record `name` as `bytes` in `file`, durably: temp file, logged entry, rename. Saves and
    /// removals of one name must not run at once (the engine's record lock sees to it): they share the
    /// temp file, and their renames must come in their entries' order.
    pub fn put(&self, name: &str, bytes: &[u8], file: &Path) -> io::Result<()> {
        let tmp = json::temp_path(file);
        // Unsynced: its durable copy is the entry that follows.
        self.logged(PUT, name, bytes, || json::write_private(&tmp, bytes), || std::fs::rename(&tmp, file))
    }

    /// Removes record `name` and its `file`, durably: logged, then unlinked.
    pub fn remove(&self, name: &str, file: &Path) -> io::Result<()> {
        let unlink = || match std::fs::remove_file(file) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            done => done,
        };
        self.logged(REMOVE, name, &[], || Ok(()), unlink)
    }

    /// `before` (nothing is logged if it fails), the entry appended and synced, then `after`, all under
    /// the shared guard. An entry too big for any log is made durable by a sync of the filesystem instead.
    fn logged(
        &self,
        kind: u8,
        name: &str,
        record: &[u8],
        before: impl FnOnce() -> io::Result<()>,
        after: impl FnOnce() -> io::Result<()>,
    ) -> io::Result<()> {
        if name.len() > usize::from(u16::MAX) {
            return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
        }
        if (HEADER + 3 + name.len() + record.len()) as u64 > self.size {
            // Durable by a sync of the filesystem; the log starts afresh after it, so that no older entry
            // of the same name is replayed over it.
            let _all = write(&self.saves);
            before()?;
            after()?;
            return self.restart();
        }
        let mut before = Some(before);
        loop {
            let _shared = read(&self.saves);
            if let Some(before) = before.take() {
                before()?;
            }
            match self.append(kind, name, record)? {
                Appended::Written(file, seq) => {
                    self.sync(&file, seq)?;
                    return after();
                }
                Appended::Full(generation) => {
                    drop(_shared);
                    self.reset(generation)?;
                }
            }
        }
    }

    fn append(&self, kind: u8, name: &str, record: &[u8]) -> io::Result<Appended> {
        let mut log = self.lock();
        let bytes = encode(kind, name, record, log.seq);
        if log.broken || log.offset + bytes.len() as u64 > self.size {
            return Ok(Appended::Full(log.generation));
        }
        if let Err(e) = log.file.write_all_at(&bytes, log.offset) {
            log.broken = true;
            return Err(e);
        }
        log.offset += bytes.len() as u64;
        log.seq += 1;
        Ok(Appended::Written(Arc::clone(&log.file), log.seq - 1))
    }

    /// Makes entry `seq` durable: by a sync that covers it, its own or one that ran meanwhile (appends
    /// go on during a sync, so one sync covers every entry written before it began).
    fn sync(&self, file: &File, seq: u64) -> io::Result<()> {
        let mut synced = self.synced.lock().unwrap_or_else(|e| e.into_inner());
        if synced.failed {
            return Err(io::Error::from_raw_os_error(libc::EIO));
        }
        if synced.seq >= seq {
            return Ok(());
        }
        let upto = self.lock().seq - 1;
        match file.sync_data() {
            Ok(()) => {
                synced.seq = upto;
                Ok(())
            }
            Err(e) => {
                synced.failed = true;
                self.lock().broken = true;
                Err(e)
            }
        }
    }

    /// Once every save under way has its file, syncs the filesystem and begins a fresh log, unless
    /// another save did since the log of `generation` was found full.
    fn reset(&self, generation: u64) -> io::Result<()> {
        let _all = write(&self.saves);
        if self.lock().generation != generation {
            return Ok(());
        }
        self.restart()
    }

    /// Syncs the filesystem and begins a fresh log; under the exclusive guard.
    fn restart(&self) -> io::Result<()> {
        let mut synced = self.synced.lock().unwrap_or_else(|e| e.into_inner());
        let mut log = self.lock();
        sync_filesystem(self.dir())?;
        let file = Arc::new(fresh(&self.path, self.size)?);
        *log = Log { file, offset: 0, seq: 1, generation: log.generation + 1, broken: false };
        *synced = Synced::default();
        Ok(())
    }

    fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("/"))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Log> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn read(l: &RwLock<()>) -> std::sync::RwLockReadGuard<'_, ()> {
    l.read().unwrap_or_else(|e| e.into_inner())
}

fn write(l: &RwLock<()>) -> std::sync::RwLockWriteGuard<'_, ()> {
    l.write().unwrap_or_else(|e| e.into_inner())
}

/// Makes a zero-filled log at `path` in place of any older one, durably: written beside it, synced,
/// renamed over it, and its directory synced.
fn fresh(path: &Path, size: u64) -> io::Result<File> {
    let tmp = json::temp_path(path);
    let mut f = File::options().read(true).write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    // Zeros written, not allocated: a block fallocate leaves unwritten would change metadata at each
    // first write into it, and its sync would then commit the filesystem's journal.
    let zeros = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        let n = left.min(zeros.len() as u64) as usize;
        f.write_all(&zeros[..n])?;
        left -= n as u64;
    }
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(f)
}

fn encode(kind: u8, name: &str, bytes: &[u8], seq: u64) -> Vec<u8> {
    let mut payload = Vec::with_capacity(3 + name.len() + bytes.len());
    payload.push(kind);
    payload.extend_from_slice(&(name.len() as u16).to_le_bytes());
    payload.extend_from_slice(name.as_bytes());
    payload.extend_from_slice(bytes);
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.extend_from_slice(&MAGIC.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    let mut crc = crc32fast::Hasher::new();
    crc.update(&out);
    crc.update(&payload);
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    out.extend_from_slice(&payload);
    out
}

/// The entries of a log's bytes, up to the first that is torn, out of sequence or not an entry.
fn parse(bytes: &[u8]) -> Vec<Entry> {
    let mut entries = Vec::new();
    let mut at = 0usize;
    let mut want = 1u64;
    while let Some(head) = bytes.get(at..at + HEADER) {
        let word = |i: usize| u32::from_le_bytes([head[i], head[i + 1], head[i + 2], head[i + 3]]);
        let seq = u64::from_le_bytes(head[8..16].try_into().unwrap_or_default());
        let len = word(4) as usize;
        let Some(payload) = bytes.get(at + HEADER..(at + HEADER).saturating_add(len)) else { break };
        let mut crc = crc32fast::Hasher::new();
        crc.update(&head[..16]);
        crc.update(payload);
        if word(0) != MAGIC || seq != want || crc.finalize() != word(16) {
            break;
        }
        let Some(entry) = decode(payload) else { break };
        entries.push(entry);
        at += HEADER + len;
        want += 1;
    }
    entries
}

fn decode(payload: &[u8]) -> Option<Entry> {
    let (&kind, rest) = payload.split_first()?;
    let len = u16::from_le_bytes(rest.get(..2)?.try_into().ok()?) as usize;
    let name = std::str::from_utf8(rest.get(2..2 + len)?).ok()?.to_string();
    let bytes = rest.get(2 + len..)?;
    match kind {
        PUT => Some(Entry::Put { name, bytes: bytes.to_vec() }),
        REMOVE if bytes.is_empty() => Some(Entry::Remove { name }),
        _ => None,
    }
}

/// Makes everything written to the filesystem holding `dir` durable (`syncfs`): the record files a log's
/// entries stood for.
fn sync_filesystem(dir: &Path) -> io::Result<()> {
    let d = File::open(dir)?;
    rustix::fs::syncfs(&d).map_err(io::Error::from)
}

#[cfg(test)]
mod tests;
