//! The baseline: a publisher and a subscriber connected straight to each other, no
//! SFU, so the latency they measure is the client stacks' and the loopback's alone.

use crate::load::peer::Peer;

/// Negotiates `publisher` → `subscriber` in process (candidates in the SDP).
pub fn connect(publisher: &mut Peer, subscriber: &mut Peer) -> Result<(), String> {
    let (offer, pending) = publisher.offer_to_publish()?;
    let answer = subscriber.accept_offer(&offer)?;
    publisher.accept_answer(pending, &answer)
}
