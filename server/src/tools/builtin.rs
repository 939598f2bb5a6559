//! Tools every agent can use.

use std::convert::Infallible;
use std::sync::Arc;

use super::{NoArgs, Tool, tool};

/// `get_current_time`: the server's local date and time, ISO-8601 with its UTC offset (the reference
/// gives no offset, which leaves the model guessing the time zone).
pub fn get_current_time() -> Arc<dyn Tool> {
    tool("get_current_time", "Get the current date and time.", |_: NoArgs| async {
        Ok::<_, Infallible>(chrono::Local::now().format("%Y-%m-%dT%H:%M:%S%.6f%:z").to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn current_time_is_iso_8601_with_offset() {
        let out = get_current_time().call(serde_json::json!({}), Default::default()).await.unwrap();
        let parsed = chrono::DateTime::parse_from_str(&out, "%Y-%m-%dT%H:%M:%S%.f%:z").unwrap();
        let age = chrono::Local::now().signed_duration_since(parsed);
        assert!(age.num_seconds().abs() < 5, "{out}");
    }
}
