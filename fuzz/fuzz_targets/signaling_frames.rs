//! Any bytes as a client's WebSocket message, text or binary: the decoders never panic,
//! and whatever decodes encodes back to something that decodes the same.
#![no_main]

use isoplane_signaling::protocol::binary::{self, Frame};
use isoplane_signaling::protocol::parse_client_message;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Frame::MoveIntent(intent)) = binary::decode(data) {
        assert_eq!(binary::decode(&binary::encode_move_intent(&intent)), Ok(Frame::MoveIntent(intent)));
    }
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(message) = parse_client_message(text)
    {
        let again = serde_json::to_string(&message).expect("client messages serialise");
        assert_eq!(parse_client_message(&again).expect("a serialised message parses"), message);
    }
});
