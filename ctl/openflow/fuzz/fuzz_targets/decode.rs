//! Decodes arbitrary bytes as a stream of OpenFlow messages. Nothing may panic; every message
//! we decode must encode to bytes that decode again, and encoding is canonical: the second
//! encode equals the first. (Equality of the decoded messages themselves is too strong for
//! matches: like OVS's `nx_put_match`, the OpenFlow 1.5 encoder normalizes NXM-only forms such
//! as partially masked TOS bits.)
#![no_main]

use libfuzzer_sys::fuzz_target;
use xvs_openflow::{decode, encode, DecodeError};

fuzz_target!(|data: &[u8]| {
    let mut buf = data;
    loop {
        match decode(buf) {
            Ok((msg, used)) => {
                let mut first = Vec::new();
                encode(&msg, &mut first);
                match decode(&first) {
                    Ok((again, n)) => {
                        assert_eq!(n, first.len());
                        let mut second = Vec::new();
                        encode(&again, &mut second);
                        assert_eq!(first, second, "{msg:?}\n{again:?}");
                    }
                    Err(e) => panic!("re-decode failed: {e}: {msg:?}"),
                }
                buf = &buf[used..];
            }
            Err(DecodeError::Invalid { len, .. }) => buf = &buf[len..],
            Err(DecodeError::Incomplete { .. } | DecodeError::BadFraming(_)) => break,
        }
    }
});
