//! The event-stream codec: control lines from an agent (or anyone who can
//! write to a stream's socket) as a client classifies them. A control line
//! that parses must encode to a line that parses to the same value.
#![no_main]

use gadgetd_dbus::stream::{Line, classify, encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Line::Control(c)) = classify(data) {
        let line = encode(&c);
        assert_eq!(line.last(), Some(&b'\n'));
        match classify(&line[..line.len() - 1]) {
            Ok(Line::Control(again)) => assert_eq!(again, c),
            other => panic!("{c:?} encoded to a line that classifies as {other:?}"),
        }
    }
});
