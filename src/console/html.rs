//! The console's HTML: escaping, the page frame (navigation, skip link, embedded stylesheet
//! and script), and the small pieces every page uses. Everything is escaped where it is
//! written, since domains, actor URIs and activity ids come from remote servers.

use std::fmt::Write;

/// `text` with `& < > " '` escaped, for element content and quoted attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `text` percent-encoded for a path segment or a query value.
pub fn url(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// The console's pages, in the navigation's order: (path, label).
pub const PAGES: [(&str, &str); 4] = [
    ("/admin/", "Overview"),
    ("/admin/console/domains", "Domains"),
    ("/admin/console/rule-changes", "Rule changes"),
    ("/admin/console/explain", "Explain"),
];

/// A whole page: `title` in the tab and as the heading, `current` the navigation entry to
/// mark, `body` already-escaped HTML.
pub fn page(title: &str, current: &str, body: &str) -> String {
    let mut nav = String::new();
    for (path, label) in PAGES {
        let here = if path == current {
            " aria-current=\"page\""
        } else {
            ""
        };
        let _ = write!(nav, "<li><a href=\"{path}\"{here}>{label}</a></li>");
    }
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{title} · inboxguard</title>\
<link rel=\"icon\" href=\"data:,\">\
<link rel=\"stylesheet\" href=\"/admin/console/console.css\">\
<script src=\"/admin/console/console.js\" defer></script></head>\
<body><a class=\"skip\" href=\"#main\">Skip to content</a>\
<header><p class=\"brand\">inboxguard</p><nav aria-label=\"Console\"><ul>{nav}</ul></nav></header>\
<main id=\"main\"><h1>{title}</h1>\n{body}</main>\
<footer><p>Read-only. Each replica shows what it decided itself since it started; the \
rule-change log is kept in its state directory.</p></footer></body></html>\n",
        title = esc(title),
    )
}

/// A `<time>` for Unix seconds: the UTC time as text (the script shows it as "… ago").
pub fn time(unix: u64) -> String {
    if unix == 0 {
        return "never".to_string();
    }
    let t = crate::clock::rfc3339(unix);
    format!("<time datetime=\"{t}\">{}</time>", t.replace('T', " "))
}

/// How long ago `then` was, from `now`: `42 s`, `5 min`, `3 h`, `2 d`.
pub fn age(now: u64, then: u64) -> String {
    let secs = now.saturating_sub(then);
    match secs {
        0..=119 => format!("{secs} s"),
        120..=7199 => format!("{} min", secs / 60),
        7200..=172_799 => format!("{} h", secs / 3600),
        _ => format!("{} d", secs / 86_400),
    }
}

/// A table with a caption and column headers; `rows` are already-escaped `<tr>`s. Wrapped
/// so that a wide table scrolls on its own on a phone instead of widening the page.
pub fn table(caption: &str, id: &str, headers: &[&str], rows: &str) -> String {
    let mut head = String::new();
    for h in headers {
        let _ = write!(head, "<th scope=\"col\">{}</th>", esc(h));
    }
    table_with_head(caption, id, &head, headers.len(), rows)
}

/// [`table`] with the header cells already written (`columns` of them).
pub fn table_with_head(caption: &str, id: &str, head: &str, columns: usize, rows: &str) -> String {
    let empty = if rows.is_empty() {
        format!("<tr><td colspan=\"{columns}\">Nothing recorded yet.</td></tr>")
    } else {
        String::new()
    };
    format!(
        "<div class=\"scroll\" role=\"region\" aria-labelledby=\"{id}-caption\" tabindex=\"0\">\
<table id=\"{id}\"><caption id=\"{id}-caption\">{}</caption><thead><tr>{head}</tr></thead>\
<tbody>{rows}{empty}</tbody></table></div>\n",
        esc(caption)
    )
}

/// A right-aligned number cell.
pub fn num(n: impl std::fmt::Display) -> String {
    format!("<td class=\"num\">{n}</td>")
}

/// A link to a domain's page.
pub fn domain_link(domain: &str) -> String {
    format!(
        "<a href=\"/admin/console/domains/{}\">{}</a>",
        url(domain),
        esc(domain)
    )
}
