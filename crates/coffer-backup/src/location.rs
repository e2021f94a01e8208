//! Remote location strings (`s3://bucket/prefix?region=..`) mapped to OpenDAL options,
//! with credentials taken from the query or the environment and never shown again
//! (docs/STORAGE.md).

use opendal::Scheme;
use zeroize::Zeroizing;

use crate::Error;

/// A parsed remote location.
pub(crate) struct Remote {
    pub(crate) scheme: Scheme,
    /// OpenDAL configuration pairs, credentials included.
    pub(crate) options: Vec<(String, String)>,
    /// Every credential value in `options` (and in the environment variables OpenDAL reads
    /// itself), scrubbed from error messages.
    pub(crate) secrets: Vec<Zeroizing<String>>,
}

/// Query keys whose values are safe to print; every other value is shown as `***`.
const PUBLIC_KEYS: &[&str] = &[
    "region",
    "endpoint",
    "enable_virtual_host_style",
    "default_storage_class",
    "server_side_encryption",
    "allow_anonymous",
    "disable_config_load",
    "disable_ec2_metadata",
    "checksum_algorithm",
    "role_arn",
    "role_session_name",
    "credential_path",
    "service_account",
    "scope",
    "predefined_acl",
    "disable_vm_metadata",
    "account_name",
    "username",
    "client_id",
    "tls",
];

/// Query keys that carry a credential.
const SECRET_KEYS: &[&str] = &[
    "access_key_id",
    "secret_access_key",
    "session_token",
    "external_id",
    "server_side_encryption_aws_kms_key_id",
    "credential",
    "token",
    "account_key",
    "sas_token",
    "access_token",
    "refresh_token",
    "client_secret",
    "password",
];

/// Environment variables read by OpenDAL itself (or by us) that hold a credential.
const SECRET_ENV: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AZURE_STORAGE_ACCOUNT_KEY",
    "AZURE_STORAGE_KEY",
    "AZURE_STORAGE_SAS_TOKEN",
    "AZURE_CLIENT_SECRET",
    "COFFER_GDRIVE_ACCESS_TOKEN",
    "COFFER_GDRIVE_REFRESH_TOKEN",
    "COFFER_GDRIVE_CLIENT_SECRET",
    "COFFER_WEBDAV_PASSWORD",
    "COFFER_WEBDAV_TOKEN",
];

const SCHEMES: &str = "a folder path, memory://NAME, s3://, gcs:// (or gs://), azblob://, \
                       gdrive://, webdav:// or webdav+http://";

/// The location with user info and every non-public query value replaced by `***`:
/// what error messages, `Debug` and [`crate::Repository::location`] show.
pub(crate) fn redact(location: &str) -> String {
    let Some((scheme, rest)) = location.split_once("://") else {
        return location.to_string();
    };
    let (main, query) = match rest.split_once('?') {
        Some((m, q)) => (m, Some(q)),
        None => (rest, None),
    };
    let (authority, path) = main.split_once('/').unwrap_or((main, ""));
    let authority = match authority.rsplit_once('@') {
        Some((_, host)) => format!("***@{host}"),
        None => authority.to_string(),
    };
    let mut out = format!("{scheme}://{authority}");
    if !path.is_empty() || main.contains('/') {
        out.push('/');
        out.push_str(path);
    }
    if let Some(q) = query {
        let pairs: Vec<String> = q
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, v)) if PUBLIC_KEYS.contains(&k) => format!("{k}={v}"),
                Some((k, _)) => format!("{k}=***"),
                None => kv.to_string(),
            })
            .collect();
        out.push('?');
        out.push_str(&pairs.join("&"));
    }
    out
}

/// A location the user must fix, shown redacted.
pub(crate) fn invalid(location: &str, reason: impl Into<String>) -> Error {
    Error::InvalidLocation {
        location: redact(location),
        reason: reason.into(),
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// RFC 3986 percent-decoding of a query value (`+` stays `+`, as in base64 keys).
fn percent_decode(location: &str, s: &str) -> Result<String, Error> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| {
                    invalid(
                        location,
                        "bad percent-encoding in the query; write % as %25",
                    )
                })?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| invalid(location, "a query value is not UTF-8"))
}

/// Builds the OpenDAL options of a remote location (docs/STORAGE.md).
pub(crate) fn parse(location: &str) -> Result<Remote, Error> {
    let Some((scheme_str, rest)) = location.split_once("://") else {
        return Err(invalid(location, format!("expected {SCHEMES}")));
    };
    let (scheme, http) = match scheme_str {
        "s3" => (Scheme::S3, false),
        "gcs" | "gs" => (Scheme::Gcs, false),
        "azblob" => (Scheme::Azblob, false),
        "gdrive" => (Scheme::Gdrive, false),
        "webdav" | "webdav+https" => (Scheme::Webdav, false),
        "webdav+http" => (Scheme::Webdav, true),
        other => {
            return Err(invalid(
                location,
                format!("unknown storage scheme {other:?}; use {SCHEMES}"),
            ));
        }
    };
    let (main, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (host, path) = main.split_once('/').unwrap_or((main, ""));
    if host.contains('@') {
        return Err(invalid(
            location,
            "credentials do not go before the host; use the query (?username=..) or the \
             environment variables in docs/STORAGE.md",
        ));
    }
    let path = path.trim_end_matches('/');

    let mut q: Vec<(String, String)> = Vec::new();
    for kv in query.split('&').filter(|s| !s.is_empty()) {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        let allowed = allowed_keys(scheme);
        if !allowed.contains(&k) {
            return Err(invalid(
                location,
                format!(
                    "unknown option {k:?} for {scheme_str}://; accepted: {}",
                    allowed.join(", ")
                ),
            ));
        }
        q.push((k.to_string(), percent_decode(location, v)?));
    }
    let has = |q: &[(String, String)], k: &str| q.iter().any(|(key, _)| key == k);
    let get = |q: &[(String, String)], k: &str| {
        q.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone())
    };

    let mut options: Vec<(String, String)> = Vec::new();
    let root = format!("/{path}");
    match scheme {
        Scheme::S3 | Scheme::Gcs => {
            if host.is_empty() {
                return Err(invalid(
                    location,
                    format!("no bucket: write {scheme_str}://BUCKET/PREFIX"),
                ));
            }
            options.push(("bucket".into(), host.into()));
            options.push(("root".into(), root));
            if scheme == Scheme::S3 && !has(&q, "region") && env("AWS_REGION").is_none() {
                // OpenDAL reads AWS_REGION but not AWS_DEFAULT_REGION; S3-compatible
                // servers (MinIO, Ceph, moto) accept any region name.
                let endpoint = has(&q, "endpoint") || env("AWS_ENDPOINT_URL").is_some();
                match env("AWS_DEFAULT_REGION") {
                    Some(r) => options.push(("region".into(), r)),
                    None if endpoint => options.push(("region".into(), "us-east-1".into())),
                    None => {
                        return Err(invalid(
                            location,
                            "S3 needs a region: add ?region=eu-west-1 (for example) or set \
                             AWS_REGION",
                        ));
                    }
                }
            }
        }
        Scheme::Azblob => {
            if host.is_empty() {
                return Err(invalid(
                    location,
                    "no container: write azblob://CONTAINER/PREFIX?account_name=ACCOUNT",
                ));
            }
            options.push(("container".into(), host.into()));
            options.push(("root".into(), root));
            let account = get(&q, "account_name").or_else(|| env("AZURE_STORAGE_ACCOUNT_NAME"));
            if !has(&q, "endpoint") {
                let Some(account) = &account else {
                    return Err(invalid(
                        location,
                        "Azure Blob needs the storage account: add ?account_name=ACCOUNT, set \
                         AZURE_STORAGE_ACCOUNT_NAME, or give ?endpoint=https://..",
                    ));
                };
                options.push((
                    "endpoint".into(),
                    format!("https://{account}.blob.core.windows.net"),
                ));
            }
            if let Some(a) = account.filter(|_| !has(&q, "account_name")) {
                options.push(("account_name".into(), a));
            }
            if !has(&q, "account_key") && !has(&q, "sas_token") {
                if let Some(k) =
                    env("AZURE_STORAGE_ACCOUNT_KEY").or_else(|| env("AZURE_STORAGE_KEY"))
                {
                    options.push(("account_key".into(), k));
                } else if let Some(t) = env("AZURE_STORAGE_SAS_TOKEN") {
                    options.push(("sas_token".into(), t));
                }
            }
        }
        Scheme::Gdrive => {
            // Drive has no bucket: host and path together name the folder.
            let folder = [host, path]
                .iter()
                .filter(|s| !s.is_empty())
                .copied()
                .collect::<Vec<_>>()
                .join("/");
            options.push(("root".into(), format!("/{folder}")));
            if !has(&q, "access_token") && !has(&q, "refresh_token") {
                if let Some(t) = env("COFFER_GDRIVE_ACCESS_TOKEN") {
                    options.push(("access_token".into(), t));
                } else if let Some(t) = env("COFFER_GDRIVE_REFRESH_TOKEN") {
                    options.push(("refresh_token".into(), t));
                    for (k, e) in [
                        ("client_id", "COFFER_GDRIVE_CLIENT_ID"),
                        ("client_secret", "COFFER_GDRIVE_CLIENT_SECRET"),
                    ] {
                        if let Some(v) = env(e).filter(|_| !has(&q, k)) {
                            options.push((k.into(), v));
                        }
                    }
                } else {
                    return Err(invalid(
                        location,
                        "Google Drive needs an OAuth token: set COFFER_GDRIVE_ACCESS_TOKEN, or \
                         COFFER_GDRIVE_REFRESH_TOKEN with COFFER_GDRIVE_CLIENT_ID and \
                         COFFER_GDRIVE_CLIENT_SECRET",
                    ));
                }
            }
        }
        _ => {
            // WebDAV.
            if host.is_empty() {
                return Err(invalid(
                    location,
                    "no server: write webdav://HOST[:PORT]/PATH",
                ));
            }
            let tls = match get(&q, "tls").as_deref() {
                None | Some("true") => !http,
                Some("false") => false,
                Some(_) => return Err(invalid(location, "tls= takes true or false")),
            };
            q.retain(|(k, _)| k != "tls");
            if !tls {
                let h = host.rsplit_once(':').map_or(host, |(h, _)| h);
                if !matches!(h, "127.0.0.1" | "localhost" | "[::1]") {
                    tracing::warn!(
                        host = h,
                        "WebDAV over plain HTTP to a non-loopback host: the password travels \
                         unencrypted (pack contents stay encrypted)"
                    );
                }
            }
            let proto = if tls { "https" } else { "http" };
            options.push(("endpoint".into(), format!("{proto}://{host}")));
            options.push(("root".into(), root));
            for (k, e) in [
                ("username", "COFFER_WEBDAV_USERNAME"),
                ("password", "COFFER_WEBDAV_PASSWORD"),
                ("token", "COFFER_WEBDAV_TOKEN"),
            ] {
                if let Some(v) = env(e).filter(|_| !has(&q, k)) {
                    options.push((k.into(), v));
                }
            }
        }
    }

    let mut secrets: Vec<Zeroizing<String>> = SECRET_ENV
        .iter()
        .filter_map(|e| env(e))
        .map(Zeroizing::new)
        .collect();
    options.extend(q);
    for (k, v) in &options {
        if SECRET_KEYS.contains(&k.as_str()) {
            secrets.push(Zeroizing::new(v.clone()));
        }
    }
    Ok(Remote {
        scheme,
        options,
        secrets,
    })
}

fn allowed_keys(scheme: Scheme) -> &'static [&'static str] {
    match scheme {
        Scheme::S3 => &[
            "region",
            "endpoint",
            "access_key_id",
            "secret_access_key",
            "session_token",
            "role_arn",
            "role_session_name",
            "external_id",
            "enable_virtual_host_style",
            "default_storage_class",
            "server_side_encryption",
            "server_side_encryption_aws_kms_key_id",
            "allow_anonymous",
            "disable_config_load",
            "disable_ec2_metadata",
            "checksum_algorithm",
        ],
        Scheme::Gcs => &[
            "endpoint",
            "credential",
            "credential_path",
            "service_account",
            "token",
            "scope",
            "predefined_acl",
            "default_storage_class",
            "allow_anonymous",
            "disable_vm_metadata",
            "disable_config_load",
        ],
        Scheme::Azblob => &["account_name", "account_key", "sas_token", "endpoint"],
        Scheme::Gdrive => &[
            "access_token",
            "refresh_token",
            "client_id",
            "client_secret",
        ],
        _ => &["username", "password", "token", "tls"],
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn opts(location: &str) -> Vec<(String, String)> {
        parse(location).map(|r| r.options).unwrap()
    }

    #[test]
    fn maps_each_scheme() {
        let o = opts(
            "s3://bkt/a/b?endpoint=http://127.0.0.1:9000&access_key_id=AK&secret_access_key=S%2Bk",
        );
        assert!(o.contains(&("bucket".into(), "bkt".into())));
        assert!(o.contains(&("root".into(), "/a/b".into())));
        assert!(o.contains(&("secret_access_key".into(), "S+k".into())));
        assert!(o.iter().any(|(k, _)| k == "region"));
        let o = opts("gs://bkt/p");
        assert!(o.contains(&("bucket".into(), "bkt".into())));
        let o = opts("azblob://c/p?account_name=acct");
        assert!(o.contains(&(
            "endpoint".into(),
            "https://acct.blob.core.windows.net".into()
        )));
        let o = opts("gdrive://Backups/phone?access_token=tok");
        assert!(o.contains(&("root".into(), "/Backups/phone".into())));
        let o = opts("webdav://dav.example.org/remote.php/dav?username=me");
        assert!(o.contains(&("endpoint".into(), "https://dav.example.org".into())));
        assert!(o.contains(&("root".into(), "/remote.php/dav".into())));
        let o = opts("webdav+http://127.0.0.1:8080/repo");
        assert!(o.contains(&("endpoint".into(), "http://127.0.0.1:8080".into())));
        let o = opts("webdav://127.0.0.1:8080/repo?tls=false");
        assert!(o.contains(&("endpoint".into(), "http://127.0.0.1:8080".into())));
    }

    #[test]
    fn bad_locations_say_what_to_do_and_hide_secrets() {
        let e = parse("ftp://x/y").err().unwrap().to_string();
        assert!(e.contains("s3://"), "{e}");
        let e = parse("s3://b/p?secret_access_key=TOPSECRET&colour=red")
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("accepted:") && !e.contains("TOPSECRET"), "{e}");
        let e = parse("webdav://me:hunter22@host/p")
            .err()
            .unwrap()
            .to_string();
        assert!(!e.contains("hunter22"), "{e}");
        let e = parse("azblob://c/p?sas_token=sv%3DSECRET").err();
        // Either accepted (account from the environment) or refused without the token.
        if let Some(e) = e {
            assert!(!e.to_string().contains("SECRET"));
        }
        assert_eq!(
            redact("s3://b/p?region=x&secret_access_key=abc&token=t"),
            "s3://b/p?region=x&secret_access_key=***&token=***"
        );
    }

    #[test]
    fn scrub_removes_secrets_and_url_queries() {
        let s = vec![Zeroizing::new("hunter22".to_string())];
        let m = crate::storage::scrub(
            "PUT https://a.blob.core.windows.net/c/x?sv=1&sig=abc failed: auth hunter22 \
             (url: http://u:pw@h/p)",
            &s,
        );
        assert!(
            !m.contains("sig=abc") && !m.contains("hunter22") && !m.contains("pw@"),
            "{m}"
        );
        assert!(m.contains("https://a.blob.core.windows.net/c/x?***"), "{m}");
    }
}
