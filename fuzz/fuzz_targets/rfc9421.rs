//! The RFC 9421 parsers (`Signature-Input` and `Signature` as structured-field dictionaries,
//! covered components and their parameters, `Content-Digest`) and the signature base, through
//! `signature::prepare`. Input lines: `Signature-Input`, `Signature`, then optionally
//! `Content-Digest` (otherwise the body's correct one).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "request.rs"]
mod request;

fuzz_target!(|data: &[u8]| {
    let mut lines = data.splitn(3, |b| *b == b'\n');
    let (Some(input), Some(signature)) = (lines.next(), lines.next()) else {
        return;
    };
    let mut headers = request::base_headers(request::BODY);
    headers.remove("digest");
    // Bytes hyper would refuse (CR, LF, NUL, ...) never reach the parsers.
    let (Ok(input), Ok(signature)) = (
        http::HeaderValue::from_bytes(input),
        http::HeaderValue::from_bytes(signature),
    ) else {
        return;
    };
    headers.insert("signature-input", input);
    headers.insert("signature", signature);
    let digest = match lines.next() {
        Some(raw) => match http::HeaderValue::from_bytes(raw) {
            Ok(value) => value,
            Err(_) => return,
        },
        None => http::HeaderValue::from_str(&request::sha256_content_digest(request::BODY))
            .expect("a digest is a header value"),
    };
    headers.insert("content-digest", digest);
    request::exercise(&headers, request::BODY);
});
