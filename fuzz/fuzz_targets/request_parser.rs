//! The API's request parsing (`/invocations`, `/responses`): any bytes give a request or a
//! validation error, never a panic; a request that parses survives a round trip.
#![no_main]

use app::responses::ResponsesRequest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    if let Ok(request) = ResponsesRequest::from_value(value) {
        let again = serde_json::to_value(&request).expect("a parsed request serialises");
        ResponsesRequest::from_value(again).expect("a serialised request parses again");
        let _ = request.session_id();
    }
});
