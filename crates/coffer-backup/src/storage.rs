//! Storage through OpenDAL behind one location string, with a blocking facade.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use opendal::{Operator, Scheme};

use crate::Error;

/// A storage backend plus the runtime its futures run on.
#[derive(Clone)]
pub(crate) struct Store {
    op: Operator,
    rt: Arc<tokio::runtime::Runtime>,
    /// Local root directory when the location is a path.
    pub(crate) local_root: Option<std::path::PathBuf>,
}

fn memory_ops() -> &'static Mutex<HashMap<String, Operator>> {
    static M: OnceLock<Mutex<HashMap<String, Operator>>> = OnceLock::new();
    M.get_or_init(|| Mutex::new(HashMap::new()))
}

fn invalid(location: &str, reason: impl Into<String>) -> Error {
    Error::InvalidLocation {
        location: location.into(),
        reason: reason.into(),
    }
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
    } else if let Some((scheme, rest)) = location.split_once("://") {
        let scheme: Scheme = scheme
            .parse()
            .map_err(|_| invalid(location, format!("unknown storage scheme {scheme:?}")))?;
        Operator::via_iter(scheme, url_options(scheme, rest))
            .map_err(|e| invalid(location, format!("{e} (is the services feature enabled?)")))?
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
    Ok(Store { op, rt, local_root })
}

/// `s3://bucket/prefix?region=x&endpoint=y`: host is the bucket (s3, gcs) or container
/// (azblob); the path is the root; query pairs are passed to OpenDAL as they are.
fn url_options(scheme: Scheme, rest: &str) -> Vec<(String, String)> {
    let (main, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (host, path) = main.split_once('/').unwrap_or((main, ""));
    let mut v = Vec::new();
    let host_key = match scheme {
        Scheme::Azblob => "container",
        Scheme::Webdav => "endpoint",
        _ => "bucket",
    };
    if !host.is_empty() {
        let value = if scheme == Scheme::Webdav {
            format!("https://{host}")
        } else {
            host.to_string()
        };
        v.push((host_key.to_string(), value));
    }
    v.push(("root".to_string(), format!("/{path}")));
    for kv in query.split('&').filter(|s| !s.is_empty()) {
        let (k, val) = kv.split_once('=').unwrap_or((kv, ""));
        v.push((k.to_string(), val.to_string()));
    }
    v
}

fn storage(operation: &'static str, object: &str, source: opendal::Error) -> Error {
    Error::Storage {
        operation,
        object: object.into(),
        source: Box::new(source),
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
            Err(e) => Err(storage("read", path, e)),
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
            .map_err(|e| storage("write", path, e))
    }
    pub(crate) fn delete(&self, path: &str) -> Result<(), Error> {
        self.rt
            .block_on(self.op.delete(path))
            .map_err(|e| storage("delete", path, e))
    }
    /// Names (without the prefix) and sizes of the objects under `prefix` ("data/").
    pub(crate) fn list(&self, prefix: &str) -> Result<Vec<(String, u64)>, Error> {
        let entries = match self.rt.block_on(self.op.list(prefix)) {
            Ok(e) => e,
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(storage("list", prefix, e)),
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
                .map_err(|e| storage("delete", p, e))?;
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
            Err(e) => Err(storage("stat", path, e)),
        }
    }
}
