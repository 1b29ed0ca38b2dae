//! What content rules read of a post, beyond the facts every request needs: its text with
//! the HTML stripped, links, hashtags, all mentions, attachments and whether it is public.
//! Read in the same single pass as the other facts, and only when a loaded content rule
//! needs it (`Facts::parse_with_content`), so requests pay nothing while none is loaded.

/// Mention `href`s kept for content rules (`mentions_local_at_least` looks at their hosts);
/// `Content::mentions` counts every mention however many there are.
pub const MAX_CONTENT_MENTIONS: usize = 256;
/// Hashtags, links and attachment hashes kept per post; a post stuffed with more is no
/// less matched by a rule that looks at counts.
pub const MAX_CONTENT_ITEMS: usize = 64;

/// The public collection, in the spellings Mastodon accepts (`ActivityPub::TagManager`).
const PUBLIC: [&str; 3] = [
    "https://www.w3.org/ns/activitystreams#Public",
    "as:Public",
    "Public",
];

pub(super) fn is_public(uri: &str) -> bool {
    PUBLIC.contains(&uri)
}

/// What content rules look at.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Content {
    /// `summary`, `name` and `content` (or the first `contentMap` value), HTML stripped and
    /// entities decoded, one per line.
    pub text: String,
    /// Every `Mention` tag, counted whether or not its `href` is kept.
    pub mentions: u32,
    pub mention_hrefs: Vec<String>,
    /// `Hashtag` tag names, lowercased, without `#`.
    pub hashtags: Vec<String>,
    /// `href`s of the links in `content`, mention and hashtag links left out.
    pub links: Vec<String>,
    pub attachments: u32,
    pub blurhashes: Vec<String>,
    /// `digestMultibase` of attachments (FEP-ef61), as written.
    pub digests: Vec<String>,
    /// `to` or `cc` of the object (or, where the object has neither, of the activity)
    /// names the public collection.
    pub public: bool,
}

/// The raw strings of a post, kept while its object is read (last of each key wins).
#[derive(Debug, Default)]
pub(super) struct RawText {
    pub content: Option<String>,
    pub content_map: Option<String>,
    pub summary: Option<String>,
    pub name: Option<String>,
}

impl RawText {
    /// Builds the text and the links once the object is read.
    pub(super) fn finish(self, content: &mut Content) {
        let html = self.content.or(self.content_map);
        let mut text = String::new();
        for part in [&self.summary, &self.name, &html].into_iter().flatten() {
            if !text.is_empty() {
                text.push('\n');
            }
            strip_html(part, &mut text);
        }
        content.text = text;
        if let Some(html) = &html {
            content.links = links(html);
        }
    }
}

pub(super) fn push_capped(list: &mut Vec<String>, value: String, cap: usize) {
    if list.len() < cap {
        list.push(value);
    }
}

/// Appends the text of `html` to `out`: tags dropped (a line break for `<br>` and block
/// ends, so words of two paragraphs do not run together), character references decoded.
pub fn strip_html(html: &str, out: &mut String) {
    let mut rest = html;
    while let Some(pos) = rest.find(['<', '&']) {
        out.push_str(&rest[..pos]);
        rest = &rest[pos..];
        if rest.starts_with('<') {
            let end = rest.find('>').map_or(rest.len(), |e| e + 1);
            let tag = rest[1..end.saturating_sub(1).max(1)].trim_start_matches('/');
            let name: String = tag
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .map(|c| c.to_ascii_lowercase())
                .collect();
            if matches!(name.as_str(), "br" | "p" | "div" | "li" | "blockquote") {
                out.push('\n');
            }
            rest = &rest[end..];
        } else {
            let (decoded, used) = entity(rest);
            out.push_str(&decoded);
            rest = &rest[used..];
        }
    }
    out.push_str(rest);
}

/// Decodes the character reference at the start of `s` (which starts with `&`); an
/// unknown or broken one stays as written.
fn entity(s: &str) -> (String, usize) {
    let Some(semi) = s[..s.len().min(12)].find(';') else {
        return ("&".into(), 1);
    };
    let name = &s[1..semi];
    let c = match name {
        "amp" => Some('&'),
        "lt" => Some('<'),
        "gt" => Some('>'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        "nbsp" => Some(' '),
        _ => name.strip_prefix('#').and_then(|n| {
            let code = match n.strip_prefix(['x', 'X']) {
                Some(hex) => u32::from_str_radix(hex, 16).ok(),
                None => n.parse().ok(),
            };
            code.and_then(char::from_u32)
        }),
    };
    match c {
        Some(c) => (c.to_string(), semi + 1),
        None => ("&".into(), 1),
    }
}

/// The `href` of every `<a>` in `html` whose `class` does not mark a mention or hashtag,
/// entities decoded, at most `MAX_CONTENT_ITEMS`.
pub fn links(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(pos) = rest.find('<') {
        rest = &rest[pos + 1..];
        let end = rest.find('>').unwrap_or(rest.len());
        let tag = &rest[..end];
        rest = &rest[end..];
        let is_anchor = tag.len() > 1
            && tag.as_bytes()[0].eq_ignore_ascii_case(&b'a')
            && tag.as_bytes()[1].is_ascii_whitespace();
        if !is_anchor {
            continue;
        }
        let class = attribute(tag, "class").unwrap_or_default();
        if class.contains("mention") || class.contains("hashtag") {
            continue;
        }
        if let Some(href) = attribute(tag, "href") {
            let mut decoded = String::new();
            strip_html(&href, &mut decoded);
            push_capped(&mut out, decoded, MAX_CONTENT_ITEMS);
        }
    }
    out
}

/// The value of attribute `name` in the inside of a tag (`a href="…" class=x`).
fn attribute(tag: &str, name: &str) -> Option<String> {
    let bytes = tag.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        // Attribute name.
        while i < bytes.len() && (bytes[i].is_ascii_whitespace() || bytes[i] == b'/') {
            i += 1;
        }
        let start = i;
        while i < bytes.len() && !bytes[i].is_ascii_whitespace() && bytes[i] != b'=' {
            i += 1;
        }
        let key = &tag[start..i];
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= bytes.len() || bytes[i] != b'=' {
            continue;
        }
        i += 1;
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let value = match bytes.get(i) {
            Some(&q @ (b'"' | b'\'')) => {
                let from = i + 1;
                let to = tag[from..].find(q as char).map_or(tag.len(), |e| from + e);
                i = to + 1;
                &tag[from..to.min(tag.len())]
            }
            _ => {
                let from = i;
                while i < bytes.len() && !bytes[i].is_ascii_whitespace() {
                    i += 1;
                }
                &tag[from..i]
            }
        };
        if key.eq_ignore_ascii_case(name) {
            return Some(value.to_owned());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_is_stripped_to_its_words() {
        let mut out = String::new();
        strip_html(
            "<p>Join us: <a href=\"https://discord.gg/abc\">discord.gg/abc</a> &amp; win&#33;</p><p>now&nbsp;&#x2764;</p>",
            &mut out,
        );
        assert_eq!(out, "\nJoin us: discord.gg/abc & win!\n\nnow ❤\n");
        let mut out = String::new();
        strip_html("a &bogus; b & c <unclosed", &mut out);
        assert_eq!(out, "a &bogus; b & c ");
    }

    #[test]
    fn links_leave_out_mentions_and_hashtags() {
        let html = r##"<p><span class="h-card"><a href="https://a.example/@x" class="u-url mention">@x</a></span>
            <a href="https://a.example/tags/spam" class="mention hashtag" rel="tag">#spam</a>
            <a href='https://discord.gg/abc' target=_blank>join</a> <A HREF=https://b.example/?a=1&amp;b=2>b</A>
            <abbr title="x">not a link</abbr></p>"##;
        assert_eq!(
            links(html),
            ["https://discord.gg/abc", "https://b.example/?a=1&b=2"]
        );
    }
}
