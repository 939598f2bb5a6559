//! Where the workspace and its credentials come from, in the Databricks SDKs' order: the environment
//! first, then a profile of `~/.databrickscfg` (`DATABRICKS_CONFIG_PROFILE`, `DATABRICKS_CONFIG_FILE`)
//! for what the environment leaves out.
//!
//! As the Go SDK does (and unlike Python's configparser), a named profile is read alone, never merged
//! with `[DEFAULT]`, and values are taken verbatim: no quote or escape processing, so secrets with `"`
//! or `\` come through unchanged.

use std::path::{Path, PathBuf};

use crate::config::DatabricksArgs;
use crate::secret::Secret;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the Databricks config file {path}: {message}")]
    File { path: String, message: String },
    #[error("profile `{profile}` is not in {path} (profiles there: {available})")]
    NoProfile { profile: String, path: String, available: String },
    #[error("DATABRICKS_AUTH_TYPE `{0}` is not supported: use pat, oauth-m2m or databricks-cli")]
    AuthType(String),
}

/// What the environment says (the `DATABRICKS_*` variables and flags, [`DatabricksArgs`]), blank
/// values counting as unset.
#[derive(Debug, Clone, Default)]
pub struct EnvConfig {
    pub host: Option<String>,
    pub token: Option<Secret>,
    pub client_id: Option<String>,
    pub client_secret: Option<Secret>,
    pub profile: Option<String>,
    pub config_file: Option<PathBuf>,
    pub auth_type: Option<String>,
}

impl From<&DatabricksArgs> for EnvConfig {
    fn from(args: &DatabricksArgs) -> Self {
        let text = |v: &Option<String>| v.clone().filter(|s| !s.trim().is_empty());
        let secret = |v: &Option<Secret>| v.clone().filter(|s| !s.expose().trim().is_empty());
        Self {
            host: text(&args.host),
            token: secret(&args.token),
            client_id: text(&args.client_id),
            client_secret: secret(&args.client_secret),
            profile: text(&args.profile),
            config_file: args.config_file.clone(),
            auth_type: text(&args.auth_type),
        }
    }
}

/// How calls are authenticated, once resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthType {
    /// A personal access token (`token`).
    Pat,
    /// A service principal's client credentials (`client_id` + `client_secret`).
    OAuthM2m,
    /// `databricks auth token`: the user's OAuth login (U2M) kept by the Databricks CLI.
    DatabricksCli,
}

impl AuthType {
    pub fn name(self) -> &'static str {
        match self {
            AuthType::Pat => "pat",
            AuthType::OAuthM2m => "oauth-m2m",
            AuthType::DatabricksCli => "databricks-cli",
        }
    }

    fn parse(name: &str) -> Result<Self, ConfigError> {
        match name.trim().to_ascii_lowercase().as_str() {
            "pat" => Ok(AuthType::Pat),
            "oauth-m2m" => Ok(AuthType::OAuthM2m),
            "databricks-cli" => Ok(AuthType::DatabricksCli),
            other => Err(ConfigError::AuthType(other.to_string())),
        }
    }
}

/// The workspace and its credentials, merged from the environment and the profile.
#[derive(Debug, Clone, Default)]
pub struct WorkspaceConfig {
    /// `https://…`, no trailing slash.
    pub host: Option<String>,
    pub token: Option<Secret>,
    pub client_id: Option<String>,
    pub client_secret: Option<Secret>,
    /// The profile the values came from (also what `databricks auth token --profile` is given).
    pub profile: Option<String>,
    pub auth_type: Option<AuthType>,
}

impl WorkspaceConfig {
    /// Environment first, then the profile for what the environment leaves out.
    pub fn resolve(env: &EnvConfig, home: Option<&Path>) -> Result<Self, ConfigError> {
        let direct =
            env.host.is_some() && (env.token.is_some() || (env.client_id.is_some() && env.client_secret.is_some()));
        let explicit_file = env.config_file.clone();
        let file = explicit_file.clone().or_else(|| home.map(|h| h.join(".databrickscfg")));
        // The file is read when a profile or file is named, or a host is given without credentials.
        // Not otherwise: with nothing configured the app stays on its offline default even if the
        // machine has a `[DEFAULT]` profile, and auth configured directly wins (as in the SDKs).
        let wanted = env.profile.is_some() || (!direct && (explicit_file.is_some() || env.host.is_some()));
        let profile = match (&file, wanted) {
            (Some(path), true) => read_profile(path, env.profile.as_deref(), explicit_file.is_some())?,
            _ => None,
        };
        let (profile_name, section) = profile.unzip();
        let get = |key: &str| {
            section.as_ref().and_then(|s: &Vec<(String, String)>| {
                s.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone()).filter(|v| !v.is_empty())
            })
        };
        let auth_type = match env.auth_type.clone().or_else(|| get("auth_type")) {
            Some(name) => Some(AuthType::parse(&name)?),
            None => None,
        };
        Ok(Self {
            host: env.host.clone().or_else(|| get("host")).map(|h| normalise_host(&h)),
            token: env.token.clone().or_else(|| get("token").map(Secret::new)),
            client_id: env.client_id.clone().or_else(|| get("client_id")),
            client_secret: env.client_secret.clone().or_else(|| get("client_secret").map(Secret::new)),
            profile: profile_name,
            auth_type,
        })
    }
}

/// `https://` added when missing (some platforms give a bare hostname), no trailing slash, and no
/// `user:password@` (never how a workspace is signed in to; shown in `/agent/info` and logs
/// otherwise).
pub fn normalise_host(host: &str) -> String {
    let host = host.trim().trim_end_matches('/');
    let (scheme, rest) = host.split_once("://").unwrap_or(("https", host));
    let rest = match rest.split_once('/') {
        Some((authority, path)) => format!("{}/{path}", authority.rsplit('@').next().unwrap_or(authority)),
        None => rest.rsplit('@').next().unwrap_or(rest).to_string(),
    };
    format!("{scheme}://{rest}")
}

/// A profile's name and its keys.
type Profile = (String, Vec<(String, String)>);

/// The chosen profile's name and its keys: the one asked for (an error if absent), else
/// `[__settings__] default_profile`, else `[DEFAULT]` when it has keys. A missing file is an error
/// only when it was named or a profile was asked for.
fn read_profile(path: &Path, asked: Option<&str>, file_named: bool) -> Result<Option<Profile>, ConfigError> {
    let file_error = |message: String| ConfigError::File { path: path.display().to_string(), message };
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !file_named && asked.is_none() => return Ok(None),
        Err(e) => return Err(file_error(e.to_string())),
    };
    let options = ini::ParseOption { enabled_quote: false, enabled_escape: false, ..Default::default() };
    let ini = ini::Ini::load_from_str_opt(&text, options).map_err(|e| file_error(e.to_string()))?;
    let section = |name: &str| {
        ini.section(Some(name))
            .map(|s| s.iter().map(|(k, v)| (k.trim().to_string(), v.trim().to_string())).collect::<Vec<_>>())
    };
    let name = match asked {
        Some(name) => name.to_string(),
        None => match ini.section(Some("__settings__")).and_then(|s| s.get("default_profile")) {
            Some(name) if !name.trim().is_empty() => name.trim().to_string(),
            _ => "DEFAULT".to_string(),
        },
    };
    match section(&name) {
        Some(keys) if !keys.is_empty() || asked.is_some() => Ok(Some((name, keys))),
        Some(_) => Ok(None),
        None if asked.is_none() && name == "DEFAULT" => Ok(None),
        None => {
            let available: Vec<&str> = ini.sections().flatten().filter(|s| *s != "__settings__").collect();
            Err(ConfigError::NoProfile {
                profile: name,
                path: path.display().to_string(),
                available: if available.is_empty() { "none".into() } else { available.join(", ") },
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_normalised_without_credentials() {
        assert_eq!(normalise_host("adb-1.azuredatabricks.net"), "https://adb-1.azuredatabricks.net");
        assert_eq!(normalise_host(" https://w.cloud.databricks.com/ "), "https://w.cloud.databricks.com");
        assert_eq!(normalise_host("http://127.0.0.1:9"), "http://127.0.0.1:9");
        assert_eq!(normalise_host("https://token:dapi-secret@w.example.com"), "https://w.example.com");
        assert_eq!(normalise_host("me:pw@w.example.com"), "https://w.example.com");
    }

    fn write(text: &str) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), text).unwrap();
        file
    }

    fn env_with(file: &tempfile::NamedTempFile, profile: Option<&str>) -> EnvConfig {
        EnvConfig {
            config_file: Some(file.path().to_path_buf()),
            profile: profile.map(str::to_string),
            ..Default::default()
        }
    }

    const FILE: &str = "[DEFAULT]\nhost = https://default.example.com\ntoken = dapi-default\n\n\
        [dev]\nhost = dev.example.com/\nclient_id = sp-id\nclient_secret = \"s3\\cr;et\"\n\n\
        [cli]\nhost = https://cli.example.com\nauth_type = databricks-cli\n";

    #[test]
    fn a_named_profile_is_read_alone_and_verbatim() {
        let file = write(FILE);
        let config = WorkspaceConfig::resolve(&env_with(&file, Some("dev")), None).unwrap();
        assert_eq!(config.host.as_deref(), Some("https://dev.example.com"));
        assert_eq!(config.client_id.as_deref(), Some("sp-id"));
        // Quotes and backslashes are part of the secret; [DEFAULT]'s token is not inherited.
        assert_eq!(config.client_secret.as_ref().unwrap().expose(), "\"s3\\cr;et\"");
        assert!(config.token.is_none());
        assert_eq!(config.profile.as_deref(), Some("dev"));
        let config = WorkspaceConfig::resolve(&env_with(&file, Some("cli")), None).unwrap();
        assert_eq!(config.auth_type, Some(AuthType::DatabricksCli));
    }

    #[test]
    fn default_profile_then_settings_default_then_environment_wins() {
        let file = write(FILE);
        let config = WorkspaceConfig::resolve(&env_with(&file, None), None).unwrap();
        assert_eq!(config.token.as_ref().unwrap().expose(), "dapi-default");
        assert_eq!(config.profile.as_deref(), Some("DEFAULT"));
        let file = write(&format!("[__settings__]\ndefault_profile = dev\n{FILE}"));
        let config = WorkspaceConfig::resolve(&env_with(&file, None), None).unwrap();
        assert_eq!(config.profile.as_deref(), Some("dev"));
        // The environment wins over the profile, key by key.
        let mut env = env_with(&file, Some("dev"));
        env.client_id = Some("env-id".into());
        let config = WorkspaceConfig::resolve(&env, None).unwrap();
        assert_eq!(config.client_id.as_deref(), Some("env-id"));
        assert_eq!(config.host.as_deref(), Some("https://dev.example.com"));
    }

    #[test]
    fn direct_auth_skips_the_file_and_missing_profiles_are_errors() {
        let file = write(FILE);
        let mut env = env_with(&file, None);
        env.host = Some("https://env.example.com".into());
        env.token = Some(Secret::new("dapi-env"));
        let config = WorkspaceConfig::resolve(&env, None).unwrap();
        assert!(config.profile.is_none());
        let error = WorkspaceConfig::resolve(&env_with(&file, Some("prod")), None).unwrap_err().to_string();
        assert!(error.contains("profile `prod` is not in") && error.contains("DEFAULT, dev, cli"), "{error}");
        let missing = EnvConfig { config_file: Some("/nonexistent/cfg".into()), ..Default::default() };
        assert!(WorkspaceConfig::resolve(&missing, None).unwrap_err().to_string().contains("/nonexistent/cfg"));
        // No file at home and nothing asked: simply nothing configured.
        let home = tempfile::tempdir().unwrap();
        let config = WorkspaceConfig::resolve(&EnvConfig::default(), Some(home.path())).unwrap();
        assert!(config.host.is_none());
        let error =
            WorkspaceConfig::resolve(&EnvConfig { auth_type: Some("basic".into()), ..Default::default() }, None)
                .unwrap_err();
        assert!(matches!(error, ConfigError::AuthType(_)));
    }
}
