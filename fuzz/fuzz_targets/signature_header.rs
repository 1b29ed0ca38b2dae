//! The `Signature` header parser and everything `signature::prepare` derives from it
//! (parameters, algorithm, headers list, pseudo-headers, window, signing string), on
//! arbitrary header bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "request.rs"]
mod request;

fuzz_target!(|data: &[u8]| {
    // Bytes hyper would refuse (CR, LF, NUL, ...) never reach the parser.
    let Ok(signature) = http::HeaderValue::from_bytes(data) else {
        return;
    };
    let mut headers = request::base_headers(request::BODY);
    headers.insert("signature", signature);
    request::exercise(&headers, request::BODY);
});
