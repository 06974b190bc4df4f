//! Inputs the fuzz target `endpoint` found, kept as regression tests.

use super::*;

/// Our BYE and the caller's crossed: the call's media was stopped twice,
/// and its port given back twice (a later call's reserved sockets could
/// have gone with it).
#[test]
fn crossing_byes_stop_the_media_once() {
    let mut h = Harness::new(Duration::ZERO);
    let mut uac = Uac::new("crossing");
    h.feed(&uac.request("INVITE", "z9hG4bK-x", 1, &offer("0")));
    uac.to_tag = Some(to_tag_of(&h.take_sent()[1]));
    h.feed(&uac.request("ACK", "z9hG4bK-xa", 1, ""));
    let call = match h.actions[0] {
        Action::StartMedia { call, .. } => call,
        ref other => panic!("{other:?}"),
    };
    h.ep.handle_media_ended(call, EndReason::ContentFinished, h.now);
    h.drain();
    h.feed(&uac.request("BYE", "z9hG4bK-xb", 2, ""));
    let stops = h
        .actions
        .iter()
        .filter(|a| matches!(a, Action::StopMedia { .. }))
        .count();
    let ends: Vec<_> = h
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::CallEnded { reason, .. } => Some(*reason),
            _ => None,
        })
        .collect();
    assert_eq!(stops, 1);
    assert_eq!(ends, vec![EndReason::ContentFinished]);
    // The caller's BYE is still answered.
    assert_eq!(Harness::statuses(&h.take_sent()), vec![200]);
}
