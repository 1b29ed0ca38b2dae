//! The `Signature` header's parameter list, read the way Mastodon's `SignatureParser` reads
//! it: `key=value` pairs, tokens or quoted strings, no repeats, borrowed from the header bytes.

use super::SigError;

/// More parameters than this is not a signature any implementation sends.
pub(crate) const MAX_PARAMETERS: usize = 16;
/// The parameters of one `Signature` header, borrowed from its bytes. Quoted values are
/// kept verbatim between the quotes: like Mastodon, `\"` is not unescaped.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Params<'a> {
    pub key_id: Option<&'a [u8]>,
    pub signature: Option<&'a [u8]>,
    pub headers: Option<&'a [u8]>,
    pub algorithm: Option<&'a [u8]>,
    pub created: Option<&'a [u8]>,
    pub expires: Option<&'a [u8]>,
}

/// Ruby's `\s`.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b'\x0b' | b'\x0c')
}

/// RFC 7230 `tchar`, as one range test per byte (a search of the symbol list cost a loop
/// for every `-` of `rsa-sha256`).
fn is_tchar(b: u8) -> bool {
    matches!(b, b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9'
        | b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~' | b'-')
}

/// A cursor over the header bytes; every step is bounds-checked, so no input can panic.
struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    fn skip_space(&mut self) {
        while self.s.get(self.i).is_some_and(|&b| is_space(b)) {
            self.i += 1;
        }
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.s.get(self.i) == Some(&b) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn token(&mut self) -> Option<&'a [u8]> {
        let start = self.i;
        while self.s.get(self.i).is_some_and(|&b| is_tchar(b)) {
            self.i += 1;
        }
        (self.i > start).then(|| &self.s[start..self.i])
    }

    /// `"( [^\\"] | \\. )*"`, the quoted-string form Mastodon's parser matches.
    fn quoted(&mut self) -> Option<&'a [u8]> {
        if !self.eat(b'"') {
            return None;
        }
        let start = self.i;
        loop {
            // Jump to the next quote or backslash: the base64 signature makes this the longest
            // run of the header, and a byte-by-byte loop was most of the parse.
            self.i += memchr::memchr2(b'"', b'\\', self.s.get(self.i..)?)?;
            if self.s[self.i] == b'"' {
                let value = &self.s[start..self.i];
                self.i += 1;
                return Some(value);
            }
            // Ruby's `.` does not match a newline.
            match self.s.get(self.i + 1) {
                Some(&b) if b != b'\n' => self.i += 2,
                _ => return None,
            }
        }
    }
}

/// Parses `key=value` pairs (value: token or quoted-string) separated by `\s*,\s*`.
/// A literal `Signature ` prefix is dropped first: old node-http-signature sends one.
pub(crate) fn parse_params(value: &[u8]) -> Result<Params<'_>, SigError> {
    let value = value.strip_prefix(b"Signature ").unwrap_or(value);
    let mut params = Params::default();
    // Names seen so far, to refuse any repeated parameter (known or not) without allocating.
    let mut seen: [&[u8]; MAX_PARAMETERS] = [&[]; MAX_PARAMETERS];
    let mut count = 0;
    let mut cur = Cursor { s: value, i: 0 };
    loop {
        let key = cur.token().ok_or(SigError::Malformed)?;
        cur.skip_space();
        if !cur.eat(b'=') {
            return Err(SigError::Malformed);
        }
        cur.skip_space();
        let val = if cur.s.get(cur.i) == Some(&b'"') {
            cur.quoted()
        } else {
            cur.token()
        }
        .ok_or(SigError::Malformed)?;

        if seen[..count].contains(&key) {
            return Err(SigError::DuplicateParameter);
        }
        if count == MAX_PARAMETERS {
            return Err(SigError::TooManyParameters);
        }
        seen[count] = key;
        count += 1;
        match key {
            b"keyId" => params.key_id = Some(val),
            b"signature" => params.signature = Some(val),
            b"headers" => params.headers = Some(val),
            b"algorithm" => params.algorithm = Some(val),
            b"created" => params.created = Some(val),
            b"expires" => params.expires = Some(val),
            // Unknown parameters are allowed and ignored, as in Mastodon.
            _ => {}
        }

        cur.skip_space();
        if cur.i == cur.s.len() {
            return Ok(params);
        }
        if !cur.eat(b',') {
            return Err(SigError::Malformed);
        }
        cur.skip_space();
    }
}
