//! Tools every agent can use.

use std::sync::Arc;

use schemars::JsonSchema;
use serde::Deserialize;

use super::{Tool, tool};

/// The arguments of `get_current_time`.
#[derive(Deserialize, JsonSchema)]
pub struct TimeArgs {
    /// The IANA time zone to give the time in, e.g. "Asia/Tokyo", "Europe/Paris" or "America/New_York".
    /// Leave it out for the server's own time zone.
    #[serde(default)]
    pub timezone: Option<String>,
}

/// `get_current_time`: the date and time now, ISO-8601 with its UTC offset, in the time zone asked
/// for (the reference takes no zone and gives no offset, which leaves the model guessing).
pub fn get_current_time() -> Arc<dyn Tool> {
    tool(
        "get_current_time",
        "Get the current date and time, in a given IANA time zone (such as \"Asia/Tokyo\") or the server's own.",
        current_time,
    )
}

async fn current_time(args: TimeArgs) -> Result<String, String> {
    let now = jiff::Timestamp::now();
    let zoned = match args.timezone.as_deref().map(str::trim).filter(|z| !z.is_empty()) {
        None => now.to_zoned_datetime(jiff::tz::TimeZone::system()),
        Some(zone) => now.in_tz(zone).map_err(|_| {
            format!("unknown time zone {zone:?}: give an IANA name such as \"Asia/Tokyo\" or \"Europe/London\"")
        })?,
    };
    let zone = zoned.time_zone().iana_name().unwrap_or("local");
    Ok(format!("{} ({zone}, {})", zoned.strftime("%Y-%m-%dT%H:%M:%S%:z"), zoned.strftime("%A")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    async fn call(args: serde_json::Value) -> Result<String, String> {
        get_current_time().call(args, Default::default()).await.map_err(|e| e.to_string())
    }

    /// The time in the output, checked against now in that zone (within a few seconds).
    fn assert_now(out: &str, zone: &str) {
        let stamp = out.split(' ').next().unwrap();
        let parsed = chrono::DateTime::parse_from_rfc3339(stamp).unwrap();
        let age = chrono::Utc::now().signed_duration_since(parsed);
        assert!(age.num_seconds().abs() < 5, "{out}");
        assert!(out.contains(&format!("({zone}, ")), "{out}");
    }

    #[tokio::test]
    async fn the_time_is_given_in_the_zone_asked_for_with_its_offset() {
        let tokyo = call(json!({"timezone": "Asia/Tokyo"})).await.unwrap();
        assert!(tokyo.contains("+09:00 (Asia/Tokyo"), "{tokyo}");
        assert_now(&tokyo, "Asia/Tokyo");
        let new_york = call(json!({"timezone": "America/New_York"})).await.unwrap();
        assert!(new_york.contains("-05:00 (") || new_york.contains("-04:00 ("), "{new_york}");
        let local = call(json!({})).await.unwrap();
        assert!(chrono::DateTime::parse_from_rfc3339(local.split(' ').next().unwrap()).is_ok(), "{local}");
    }

    #[tokio::test]
    async fn an_unknown_zone_is_an_error_that_says_what_to_give() {
        let error = call(json!({"timezone": "Mars/Olympus"})).await.unwrap_err();
        assert!(error.contains("Asia/Tokyo"), "{error}");
    }
}
