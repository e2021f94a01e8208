//! Storage through OpenDAL behind one location string, with a blocking facade.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use opendal::{Operator, Scheme};

use zeroize::Zeroizing;

use crate::Error;
use crate::location::invalid;
use crate::testing::{Faults, Undo};

/// A storage backend plus the runtime its futures run on.
#[derive(Clone)]
pub(crate) struct Store {
    op: Operator,
    rt: Arc<tokio::runtime::Runtime>,
    /// Local root directory when the location is a path.
    pub(crate) local_root: Option<std::path::PathBuf>,
    /// Credential values this store was configured with, removed from every error.
    secrets: Arc<Vec<Zeroizing<String>>>,
    /// A simulated power cut (crash tests only).
    pub(crate) faults: Option<Arc<Faults>>,
}

/// The folders of a local repository, made at connect so that no write has to create
/// (and make durable) a directory entry later.
const LOCAL_DIRS: [&str; 6] = ["keys", "snapshots", "index", "data", "locks", "tmp"];

fn memory_ops() -> &'static Mutex<HashMap<String, Operator>> {
    static M: OnceLock<Mutex<HashMap<String, Operator>>> = OnceLock::new();
    M.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Builds the operator for a location (FORMAT.md "Locations").
/// `create` makes a local directory if it is missing.
pub(crate) fn connect(location: &str, create: bool) -> Result<Store, Error> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::io("tokio runtime", e))?;
    let rt = Arc::new(rt);
    let mut local_root = None;
    let mut secrets = Vec::new();
    let op = if let Some(name) = location.strip_prefix("memory://") {
        let mut m = memory_ops().lock().map_err(|_| Error::Internal {
            detail: "memory registry poisoned".into(),
        })?;
        match m.get(name) {
            Some(op) => op.clone(),
            None => {
                let op = Operator::new(opendal::services::Memory::default())
                    .map_err(|e| invalid(location, e.to_string()))?
                    .finish();
                m.insert(name.to_string(), op.clone());
                op
            }
        }
    } else if location.contains("://") {
        let remote = crate::location::parse(location)?;
        secrets = remote.secrets;
        if !Scheme::enabled().contains(&remote.scheme) {
            return Err(invalid(
                location,
                format!(
                    "this build has no OpenDAL {} service; enable the opendal feature \
                     \"services-{}\" in the root Cargo.toml and rebuild",
                    remote.scheme, remote.scheme
                ),
            ));
        }
        // Remote objects are written with one whole-object PUT each: S3, GCS, Azure Blob,
        // WebDAV and Drive make an object visible only once its upload completed, which is
        // what the local tmp/ rename gives a folder (F1).
        Operator::via_iter(remote.scheme, remote.options).map_err(|e| {
            let detail = scrub(&e.to_string(), &secrets);
            invalid(
                location,
                format!("{detail}; see docs/STORAGE.md for the options of this backend"),
            )
        })?
    } else {
        let root = std::path::PathBuf::from(location);
        if create {
            std::fs::create_dir_all(&root).map_err(|e| Error::io(&root, e))?;
        } else if !root.is_dir() {
            return Err(Error::NotFound {
                location: location.into(),
            });
        }
        let root = root.canonicalize().map_err(|e| Error::io(&root, e))?;
        // Objects are written to tmp/ and renamed into place by `write_local`, so a crash
        // never leaves a truncated object under its final name (F1).
        let mut made = false;
        for d in LOCAL_DIRS {
            let dir = root.join(d);
            if !dir.is_dir() {
                std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
                made = true;
            }
        }
        if made {
            // The new folders' entries live in the root: durable before any object is
            // renamed into them, or a crash could lose a folder with its objects.
            crate::platform::sync_dir(&root).map_err(|e| Error::io(&root, e))?;
        }
        let b = opendal::services::Fs::default().root(&root.to_string_lossy());
        local_root = Some(root);
        Operator::new(b)
            .map_err(|e| invalid(location, e.to_string()))?
            .finish()
    };
    Ok(Store {
        op,
        rt,
        local_root,
        secrets: Arc::new(secrets),
        faults: None,
    })
}

/// Bytes `[start, end)` of a file, fewer at its end, into `buf`'s allocation.
fn read_local_range(p: &Path, start: u64, end: u64, mut buf: Vec<u8>) -> std::io::Result<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    let n = end.saturating_sub(start);
    buf.clear();
    buf.reserve_exact(usize::try_from(n).unwrap_or(usize::MAX));
    let mut f = std::fs::File::open(p)?;
    f.seek(SeekFrom::Start(start))?;
    // read_to_end on a Take reads into the spare capacity without zero-filling it first
    // (a fresh zeroed buffer per range was 3% of a restore).
    f.take(n).read_to_end(&mut buf)?;
    Ok(buf)
}

/// An error message with every credential removed: the secret values this store was
/// configured with, and the query string and user info of every URL in it (an Azure SAS
/// signature, for one, travels in the query of each request URL).
pub(crate) fn scrub(message: &str, secrets: &[Zeroizing<String>]) -> String {
    let mut out = message.to_string();
    for s in secrets.iter().filter(|s| s.len() >= 4) {
        out = out.replace(s.as_str(), "***");
    }
    let mut scrubbed = String::with_capacity(out.len());
    let mut rest = out.as_str();
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        scrubbed.push_str(head);
        let end = tail
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | ',' | ')' | '>'))
            .unwrap_or(tail.len());
        let (url, after) = tail.split_at(end);
        let (url, had_query) = match url.split_once('?') {
            Some((u, _)) => (u, true),
            None => (url, false),
        };
        let url = match url.split_once('/') {
            Some((authority, path)) => match authority.rsplit_once('@') {
                Some((_, host)) => format!("***@{host}/{path}"),
                None => url.to_string(),
            },
            None => match url.rsplit_once('@') {
                Some((_, host)) => format!("***@{host}"),
                None => url.to_string(),
            },
        };
        scrubbed.push_str(&url);
        if had_query {
            scrubbed.push_str("?***");
        }
        rest = after;
    }
    scrubbed.push_str(rest);
    scrubbed
}

impl Store {
    /// A storage error whose message has been scrubbed of credentials: OpenDAL errors
    /// carry request URLs and service responses as context, so only the kind and the
    /// scrubbed text are kept.
    fn storage(&self, operation: &'static str, object: &str, source: opendal::Error) -> Error {
        let clean = opendal::Error::new(source.kind(), scrub(&source.to_string(), &self.secrets));
        Error::Storage {
            operation,
            object: object.into(),
            source: Box::new(clean),
        }
    }
}

impl Store {
    /// Whole object, or `Ok(None)` if it does not exist.
    pub(crate) fn read_opt(&self, path: &str) -> Result<Option<Vec<u8>>, Error> {
        // Local folders are read directly: one allocation and no async hand-off per pack,
        // which halves restore's system time.
        if let Some(root) = &self.local_root {
            let p = root.join(path);
            if let Some(f) = &self.faults {
                f.alive().map_err(|e| Error::io(&p, e))?;
            }
            return match std::fs::read(&p) {
                Ok(b) => Ok(Some(b)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(Error::io(p, e)),
            };
        }
        match self.rt.block_on(self.op.read(path)) {
            Ok(b) => Ok(Some(b.to_vec())),
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.storage("read", path, e)),
        }
    }
    /// Bytes `[start, end)` of an object; fewer when the object is shorter.
    pub(crate) fn read_range(&self, path: &str, start: u64, end: u64) -> Result<Vec<u8>, Error> {
        self.read_range_into(path, start, end, Vec::new())
    }

    /// [`Store::read_range`] into `buf` (emptied first): a local folder reuses its
    /// allocation, other storage hands back its own.
    pub(crate) fn read_range_into(
        &self,
        path: &str,
        start: u64,
        end: u64,
        buf: Vec<u8>,
    ) -> Result<Vec<u8>, Error> {
        if let Some(root) = &self.local_root {
            let p = root.join(path);
            if let Some(f) = &self.faults {
                f.alive().map_err(|e| Error::io(&p, e))?;
            }
            return read_local_range(&p, start, end, buf).map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => Error::integrity(path, "object is missing"),
                _ => Error::io(p, e),
            });
        }
        match self
            .rt
            .block_on(self.op.read_with(path).range(start..end).into_future())
        {
            Ok(b) => Ok(b.to_vec()),
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => {
                Err(Error::integrity(path, "object is missing"))
            }
            // A range past the end of a shorter object: the caller reports it as short.
            Err(e) if e.kind() == opendal::ErrorKind::RangeNotSatisfied => Ok(Vec::new()),
            Err(e) => Err(self.storage("read", path, e)),
        }
    }
    pub(crate) fn read(&self, path: &str) -> Result<Vec<u8>, Error> {
        self.read_opt(path)?
            .ok_or_else(|| Error::integrity(path, "object is missing"))
    }
    /// Writes a whole object, durably: when this returns, a crash can no longer lose it.
    pub(crate) fn write(&self, path: &str, data: Vec<u8>) -> Result<(), Error> {
        if let Some(root) = &self.local_root {
            return self
                .write_local(root, path, &data, false)
                .map_err(|e| self.local_error("write", path, e));
        }
        self.rt
            .block_on(self.op.write(path, data))
            .map(|_| ())
            .map_err(|e| self.storage("write", path, e))
    }

    /// [`Store::write`] for a pack: gives `data` back when the storage did not need to
    /// keep it (a local folder), so a pack buffer serves the next pack; `direct` writes it
    /// past the page cache where the platform and file system allow
    /// ([`crate::platform::direct`]).
    pub(crate) fn write_pack(
        &self,
        path: &str,
        data: Vec<u8>,
        direct: bool,
    ) -> Result<Option<Vec<u8>>, Error> {
        if let Some(root) = &self.local_root {
            self.write_local(root, path, &data, direct)
                .map_err(|e| self.local_error("write", path, e))?;
            return Ok(Some(data));
        }
        self.write(path, data).map(|()| None)
    }

    /// Deletes an object, durably (a crash cannot bring it back once this returned).
    pub(crate) fn delete(&self, path: &str) -> Result<(), Error> {
        if let Some(root) = &self.local_root {
            return self
                .delete_local(root, path)
                .map_err(|e| self.local_error("delete", path, e));
        }
        self.rt
            .block_on(self.op.delete(path))
            .map_err(|e| self.storage("delete", path, e))
    }

    fn step(&self) -> std::io::Result<()> {
        match &self.faults {
            Some(f) => f.step(),
            None => Ok(()),
        }
    }

    fn record(&self, u: impl FnOnce() -> Undo) {
        if let Some(f) = &self.faults {
            f.record(u());
        }
    }

    /// Local write: tmp file, fsync, rename, fsync of the directory. The write order of
    /// FORMAT.md F1 (pack, then index, then snapshot) holds on disk only if each object is
    /// durable before the next is written; `testing::Faults` checks these steps.
    fn write_local(
        &self,
        root: &Path,
        path: &str,
        data: &[u8],
        direct: bool,
    ) -> std::io::Result<()> {
        let dest = root.join(path);
        let dir = dest.parent().unwrap_or(root).to_path_buf();
        let mut rnd = [0u8; 16];
        crate::keys::fill_random(&mut rnd);
        let tmp = root.join("tmp").join(format!("{}.tmp", hex::encode(rnd)));
        let result = (|| {
            self.step()?;
            let direct = if direct {
                crate::platform::direct::create(&tmp, data)?
            } else {
                None
            };
            let f = match direct {
                Some(f) => f,
                None => {
                    let mut f = std::fs::File::create(&tmp)?;
                    f.write_all(data)?;
                    f
                }
            };
            self.record(|| Undo::Data(tmp.clone()));
            // Data before name: without this fsync a crash after the rename can leave the
            // object's name pointing at a truncated or empty file.
            self.step()?;
            f.sync_all()?;
            if let Some(fl) = &self.faults {
                fl.synced_file(&tmp);
            }
            drop(f);
            let prev = self.faults.as_ref().and_then(|_| std::fs::read(&dest).ok());
            self.step()?;
            std::fs::rename(&tmp, &dest)?;
            self.record(|| Undo::Created {
                dir: dir.clone(),
                path: dest.clone(),
                prev,
            });
            // The rename lives in the directory: until it is synced a crash can undo it,
            // and the next object (an index naming this pack, a snapshot naming this
            // index's blobs) could survive while this one is lost.
            self.sync_dir_step(&dir)
        })();
        if result.is_err() && self.faults.as_ref().is_none_or(|f| !f.crashed()) {
            // A failed write (full disk) must not keep its partial copy: it is space the
            // user needs back. A killed process leaves it; prune removes it later.
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    fn delete_local(&self, root: &Path, path: &str) -> std::io::Result<()> {
        let p = root.join(path);
        let dir = p.parent().unwrap_or(root).to_path_buf();
        let content = self.faults.as_ref().and_then(|_| std::fs::read(&p).ok());
        self.step()?;
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        }
        if let Some(content) = content {
            self.record(|| Undo::Removed {
                dir: dir.clone(),
                path: p.clone(),
                content,
            });
        }
        // Deletions are ordered too (prune removes an index before its pack): each is
        // durable before the next, so a crash never keeps an index whose pack is gone.
        self.sync_dir_step(&dir)
    }

    /// Fsyncs `dir` as one counted step, telling the fault layer that its renames and
    /// unlinks are now durable.
    fn sync_dir_step(&self, dir: &Path) -> std::io::Result<()> {
        self.step()?;
        crate::platform::sync_dir(dir)?;
        if let Some(fl) = &self.faults {
            fl.synced_dir(dir);
        }
        Ok(())
    }

    /// A local storage failure; a full disk gets its own error, which says what to do.
    fn local_error(&self, operation: &'static str, object: &str, e: std::io::Error) -> Error {
        // ENOSPC on Unix, ERROR_DISK_FULL / ERROR_HANDLE_DISK_FULL on Windows.
        if e.kind() == std::io::ErrorKind::StorageFull {
            return Error::StorageFull {
                object: object.into(),
            };
        }
        Error::Storage {
            operation,
            object: object.into(),
            source: Box::new(opendal::Error::new(
                opendal::ErrorKind::Unexpected,
                e.to_string(),
            )),
        }
    }

    /// Files in `tmp/` (local folders only) last written more than `older_than` ago:
    /// partial objects of killed processes. Returns their names.
    pub(crate) fn stale_tmp(&self, older_than: Duration) -> Result<Vec<String>, Error> {
        let Some(root) = &self.local_root else {
            return Ok(vec![]);
        };
        let dir = root.join("tmp");
        let rd = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(Error::io(&dir, e)),
        };
        let mut out = Vec::new();
        for e in rd.flatten() {
            let old = e
                .metadata()
                .ok()
                .and_then(|m| m.modified().ok())
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > older_than);
            if old {
                out.push(e.file_name().to_string_lossy().into_owned());
            }
        }
        out.sort();
        Ok(out)
    }
    /// Names (without the prefix) and sizes of the objects under `prefix` ("data/").
    pub(crate) fn list(&self, prefix: &str) -> Result<Vec<(String, u64)>, Error> {
        if let Some(f) = &self.faults {
            f.alive().map_err(|e| self.local_error("list", prefix, e))?;
        }
        let entries = match self.rt.block_on(self.op.list(prefix)) {
            Ok(e) => e,
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(self.storage("list", prefix, e)),
        };
        let mut out = Vec::new();
        for e in entries {
            if e.metadata().is_dir() {
                continue;
            }
            let name = e.name().to_string();
            if name.is_empty() {
                continue;
            }
            let size = e.metadata().content_length();
            out.push((name, size));
        }
        out.sort();
        Ok(out)
    }
    /// Deletes every object (destroy).
    pub(crate) fn remove_everything(&self) -> Result<(), Error> {
        for p in ["keys/", "snapshots/", "index/", "data/", "locks/", "tmp/"] {
            self.rt
                .block_on(self.op.remove_all(p))
                .map_err(|e| self.storage("delete", p, e))?;
        }
        Ok(())
    }
}

impl Store {
    /// Size of an object, or `None` if it does not exist.
    pub(crate) fn stat_len(&self, path: &str) -> Result<Option<u64>, Error> {
        match self.rt.block_on(self.op.stat(path)) {
            Ok(m) => Ok(Some(m.content_length())),
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.storage("stat", path, e)),
        }
    }
}
