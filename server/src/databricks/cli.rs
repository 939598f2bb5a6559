//! The U2M fallback: the Databricks CLI keeps the user's OAuth login (`databricks auth login`), and
//! `databricks auth token` hands out a fresh access token from it.

use std::time::Duration;

use serde::Deserialize;

use super::oauth::{AccessToken, OAuthError, TokenCache};
use crate::secret::Secret;

pub struct CliTokenSource {
    /// The CLI to run (`databricks`, found on `PATH`, unless `DATABRICKS_CLI_PATH` names one).
    program: String,
    /// `--profile <name>` when the configuration came from a profile, else `--host <host>`.
    args: Vec<String>,
    cache: TokenCache,
}

#[derive(Deserialize)]
struct CliToken {
    access_token: String,
    /// RFC 3339, as the Go CLI prints it.
    #[serde(default)]
    expiry: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

impl CliTokenSource {
    pub fn new(program: &str, host: &str, profile: Option<&str>) -> Self {
        let args = match profile {
            Some(profile) => vec!["auth".into(), "token".into(), "--profile".into(), profile.into()],
            None => vec!["auth".into(), "token".into(), "--host".into(), host.into()],
        };
        Self { program: program.to_string(), args, cache: TokenCache::default() }
    }

    pub async fn token(&self) -> Result<AccessToken, OAuthError> {
        self.cache.get(|| self.fetch()).await
    }

    pub async fn reject(&self, token: &str) {
        self.cache.reject(token).await
    }

    async fn fetch(&self) -> Result<AccessToken, OAuthError> {
        let run = tokio::process::Command::new(&self.program)
            .args(&self.args)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output();
        let output = match tokio::time::timeout(Duration::from_secs(60), run).await {
            Err(_) => return Err(OAuthError::Cli(format!("`{}` did not answer within 60 s", self.command()))),
            Ok(Err(e)) => return Err(OAuthError::Cli(format!("cannot run `{}`: {e}", self.command()))),
            Ok(Ok(output)) => output,
        };
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let reason: String = stderr.trim().chars().take(300).collect();
            return Err(OAuthError::Cli(format!(
                "`{}` exited with {}: {reason} (log in with `databricks auth login`)",
                self.command(),
                output.status
            )));
        }
        let parsed: CliToken = serde_json::from_slice(&output.stdout)
            .map_err(|e| OAuthError::Cli(format!("`{}` printed something that is not a token: {e}", self.command())))?;
        let lifetime = match (parsed.expires_in, parsed.expiry.as_deref().and_then(seconds_until)) {
            (Some(seconds), _) => Duration::from_secs(seconds),
            (None, Some(left)) => left,
            // No expiry: keep it a few minutes, the CLI refreshes its own.
            (None, None) => Duration::from_secs(300),
        };
        Ok(AccessToken::new(Secret::new(parsed.access_token), lifetime))
    }

    fn command(&self) -> String {
        format!("{} {}", self.program, self.args.join(" "))
    }
}

/// Time left until an RFC 3339 instant (zero if past or unreadable as such).
fn seconds_until(expiry: &str) -> Option<Duration> {
    let at = chrono::DateTime::parse_from_rfc3339(expiry.trim()).ok()?;
    let left = at.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(left.to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiries_in_the_clis_format() {
        let soon = (chrono::Utc::now() + chrono::Duration::seconds(600)).to_rfc3339();
        let left = seconds_until(&soon).unwrap();
        assert!(left > Duration::from_secs(590) && left <= Duration::from_secs(600), "{left:?}");
        assert_eq!(seconds_until("2020-01-01T00:00:00.123456+01:00"), Some(Duration::ZERO));
        assert!(seconds_until("tomorrow").is_none());
    }
}
