//! Storage through OpenDAL behind one location string, with a blocking facade.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use opendal::{Operator, Scheme};

use zeroize::Zeroizing;

use crate::Error;
use crate::location::invalid;

/// A storage backend plus the runtime its futures run on.
#[derive(Clone)]
pub(crate) struct Store {
    op: Operator,
    rt: Arc<tokio::runtime::Runtime>,
    /// Local root directory when the location is a path.
    pub(crate) local_root: Option<std::path::PathBuf>,
    /// Credential values this store was configured with, removed from every error.
    secrets: Arc<Vec<Zeroizing<String>>>,
}

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
        // Objects are written to tmp/ and renamed into place, so a crash never leaves a
        // truncated object under its final name (F1).
        let tmp = root.join("tmp");
        std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let b = opendal::services::Fs::default()
            .root(&root.to_string_lossy())
            .atomic_write_dir(&tmp.to_string_lossy());
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
    })
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
    pub(crate) fn read(&self, path: &str) -> Result<Vec<u8>, Error> {
        self.read_opt(path)?
            .ok_or_else(|| Error::integrity(path, "object is missing"))
    }
    /// Writes a whole object; for the local backend it is fsynced and renamed into place.
    pub(crate) fn write(&self, path: &str, data: Vec<u8>) -> Result<(), Error> {
        self.rt
            .block_on(self.op.write(path, data))
            .map(|_| ())
            .map_err(|e| self.storage("write", path, e))
    }
    pub(crate) fn delete(&self, path: &str) -> Result<(), Error> {
        self.rt
            .block_on(self.op.delete(path))
            .map_err(|e| self.storage("delete", path, e))
    }
    /// Names (without the prefix) and sizes of the objects under `prefix` ("data/").
    pub(crate) fn list(&self, prefix: &str) -> Result<Vec<(String, u64)>, Error> {
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
