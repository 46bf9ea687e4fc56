//! Decodes arbitrary bytes as an NXT_RESUME continuation. Nothing may panic; a continuation
//! we decode encodes to bytes that decode to the same continuation and actions.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xvs_openflow::packet_in::{pull_continuation, put_continuation};

fuzz_target!(|data: &[u8]| {
    if let Ok((c, actions)) = pull_continuation(data) {
        let mut again = Vec::new();
        put_continuation(&mut again, &c);
        let (c2, actions2) = pull_continuation(&again).expect("re-decodes");
        assert_eq!(c, c2);
        assert_eq!(actions, actions2);
    }
});
