//! The master key ring: `STRONGROOM_MASTER_KEY` (and crypto-envelope's other variables),
//! or, when none is configured, a development key generated once into a 0600 file in the
//! data directory, with a loud warning.

use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use crypto_envelope::backend::local::ENV_MASTER_KEY;
use crypto_envelope::{LocalKeyRing, MasterKey};
use zeroize::Zeroizing;

/// The file name of the development key in the data directory.
pub(crate) const DEV_KEY_FILE: &str = "dev-master.key";

/// Why the key ring could not be loaded. Names the variable or file, never a key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum KeyError {
    /// The environment's key settings were refused (crypto-envelope names the variable).
    #[error(transparent)]
    Config(#[from] crypto_envelope::ConfigError),
    /// The development key file could not be read or written.
    #[error("development master key file {path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// What failed.
        reason: &'static str,
    },
    /// No randomness.
    #[error("could not generate a master key")]
    Random,
    /// A remote key-encryption backend (`STRONGROOM_KEK`) could not be reached or holds
    /// no usable key.
    #[error("key-encryption backend: {0}")]
    Backend(#[from] crypto_envelope::BackendError),
}

/// Where the key ring came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeySource {
    /// `STRONGROOM_MASTER_KEY`.
    Environment,
    /// A development key file (created now or earlier).
    DevelopmentFile,
}

/// Loads the key ring from the environment, or from (creating if needed) the development
/// key file in `data_dir`.
///
/// With `production` (`STRONGROOM_ENV=production`) there is no development key: without
/// `STRONGROOM_MASTER_KEY` (or its `_FILE`) the ring is refused, and no file is created.
pub(crate) fn load(
    data_dir: &Path,
    production: bool,
) -> Result<(LocalKeyRing, KeySource), KeyError> {
    let env = crate::config::var;
    if env(ENV_MASTER_KEY).is_some_and(|v| !v.is_empty()) {
        return Ok((LocalKeyRing::from_lookup(env)?, KeySource::Environment));
    }
    if production {
        return Err(KeyError::Config(crypto_envelope::ConfigError::Invalid {
            field: ENV_MASTER_KEY.to_owned(),
            reason: "required with STRONGROOM_ENV=production (the generated development key is refused)",
        }));
    }
    let path = data_dir.join(DEV_KEY_FILE);
    let text = read_or_create(&path)?;
    let ring = LocalKeyRing::from_lookup(|name| {
        if name == ENV_MASTER_KEY {
            Some(text.as_str().to_owned())
        } else {
            env(name)
        }
    })?;
    warn_dev_key(&path);
    Ok((ring, KeySource::DevelopmentFile))
}

fn warn_dev_key(path: &Path) {
    let line = "=".repeat(78);
    eprintln!(
        "{line}\nWARNING: no STRONGROOM_MASTER_KEY configured. Using a DEVELOPMENT master key\n\
         stored next to the data in {}.\n\
         Anyone who can read that file can decrypt every stored exchange credential.\n\
         For production run `trading-backend gen-master-key`, keep the key in a secret\n\
         manager and pass it as STRONGROOM_MASTER_KEY.\n{line}",
        path.display()
    );
    tracing::warn!(
        code = "master_key.development",
        "no STRONGROOM_MASTER_KEY configured: using the development key file"
    );
}

fn file_error(path: &Path, reason: &'static str) -> KeyError {
    KeyError::File {
        path: path.to_path_buf(),
        reason,
    }
}

fn read_or_create(path: &Path) -> Result<Zeroizing<String>, KeyError> {
    match fs::read_to_string(path) {
        Ok(text) => {
            let text = Zeroizing::new(text);
            let mode = fs::metadata(path)
                .map_err(|_| file_error(path, "cannot read its permissions"))?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                return Err(file_error(
                    path,
                    "is readable by group or others (expected mode 0600)",
                ));
            }
            Ok(Zeroizing::new(text.trim_end_matches('\n').to_owned()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => create(path),
        Err(_) => Err(file_error(path, "cannot be read")),
    }
}

/// Creates `dir` (and its parents) readable by the owner only (0700) if it does not exist.
pub(crate) fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

fn create(path: &Path) -> Result<Zeroizing<String>, KeyError> {
    if let Some(dir) = path.parent() {
        create_private_dir(dir).map_err(|_| file_error(path, "cannot create its directory"))?;
    }
    let key = MasterKey::generate().map_err(|_| KeyError::Random)?;
    let hex = key.to_hex();
    // Written to a temporary 0600 file, then renamed: never a half-written key file.
    let tmp = path.with_extension("key.tmp");
    let _ = fs::remove_file(&tmp);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|_| file_error(path, "cannot be created"))?;
    let written = file
        .write_all(hex.as_bytes())
        .and_then(|()| file.write_all(b"\n"))
        .and_then(|()| file.sync_all());
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
        return Err(file_error(path, "cannot be written"));
    }
    // Another process may have created the key first: keep theirs.
    if fs::hard_link(&tmp, path).is_err() {
        let _ = fs::remove_file(&tmp);
        return read_or_create(path);
    }
    let _ = fs::remove_file(&tmp);
    tracing::warn!(
        code = "master_key.generated",
        fingerprint = %key.fingerprint(),
        "generated a development master key"
    );
    Ok(Zeroizing::new(hex.as_str().to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_key_is_created_0600_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DEV_KEY_FILE);
        let first = read_or_create(&path).unwrap();
        assert_eq!(first.len(), 64);
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let second = read_or_create(&path).unwrap();
        assert_eq!(*first, *second);
    }

    #[test]
    fn data_dir_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("a/b");
        create_private_dir(&data).unwrap();
        assert_eq!(
            fs::metadata(&data).unwrap().permissions().mode() & 0o777,
            0o700
        );
    }

    #[test]
    fn group_readable_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DEV_KEY_FILE);
        read_or_create(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = read_or_create(&path).unwrap_err();
        assert!(err.to_string().contains("0600"));
    }
}
