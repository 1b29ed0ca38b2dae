//! The `Digest` header parser, through `signature::prepare` with a signature that covers
//! `digest`. Each input line is one `Digest` header (repeated headers are part of the game).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "request.rs"]
mod request;

const SIGNATURE: &str = "keyId=\"https://remote.example/users/a#main-key\",\
    algorithm=\"rsa-sha256\",headers=\"(request-target) host date digest\",signature=\"AAAA\"";

fuzz_target!(|data: &[u8]| {
    let mut headers = request::base_headers(request::BODY);
    headers.remove("digest");
    for line in data.split(|b| *b == b'\n') {
        if let Ok(value) = http::HeaderValue::from_bytes(line) {
            headers.append("digest", value);
        }
    }
    headers.insert("signature", http::HeaderValue::from_static(SIGNATURE));
    request::exercise(&headers, request::BODY);
});
