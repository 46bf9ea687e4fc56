//! Decodes arbitrary bytes as a stream of OpenFlow messages. Nothing may panic, and every
//! message we decode must encode to bytes that decode to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xvs_openflow::{decode, encode, DecodeError};

fuzz_target!(|data: &[u8]| {
    let mut buf = data;
    loop {
        match decode(buf) {
            Ok((msg, used)) => {
                let mut out = Vec::new();
                encode(&msg, &mut out);
                match decode(&out) {
                    Ok((again, n)) => {
                        assert_eq!(n, out.len());
                        assert_eq!(again, msg);
                    }
                    Err(e) => panic!("re-decode failed: {e}"),
                }
                buf = &buf[used..];
            }
            Err(DecodeError::Invalid { len, .. }) => buf = &buf[len..],
            Err(DecodeError::Incomplete { .. } | DecodeError::BadFraming(_)) => break,
        }
    }
});
