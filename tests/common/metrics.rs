//! Reading the proxy's Prometheus text: one series' value, or a sum over matching series.

/// `inboxguard_requests_total{decision, reason}`, 0 when the series is absent.
pub fn requests(metrics_text: &str, decision: &str, reason: &str) -> f64 {
    metric_value(
        metrics_text,
        &format!("inboxguard_requests_total{{decision=\"{decision}\",reason=\"{reason}\"}}"),
    )
    .unwrap_or(0.0)
}

/// The value of the series `name_with_labels`, e.g.
/// `inboxguard_requests_total{decision="rejected",reason="bad_signature"}` or a bare name.
/// Label order does not matter; the label set must match exactly. `None` if absent.
pub fn metric_value(metrics_text: &str, name_with_labels: &str) -> Option<f64> {
    let (want_name, want_labels) = parse_series(name_with_labels)?;
    series(metrics_text)
        .find(|(name, labels, _)| *name == want_name && *labels == want_labels)
        .map(|(_, _, value)| value)
}

/// Sum over every series of `name` whose labels include the given ones, e.g.
/// `inboxguard_requests_total{decision="rejected"}` across all reasons. 0 if none.
pub fn metric_sum(metrics_text: &str, name_with_labels: &str) -> f64 {
    let Some((want_name, want_labels)) = parse_series(name_with_labels) else {
        return 0.0;
    };
    series(metrics_text)
        .filter(|(name, labels, _)| {
            *name == want_name && want_labels.iter().all(|l| labels.contains(l))
        })
        .map(|(_, _, value)| value)
        .sum()
}

type Labels = Vec<(String, String)>;

fn series(text: &str) -> impl Iterator<Item = (String, Labels, f64)> + '_ {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| {
            // The value is the first field after the series (a timestamp may follow).
            let series_end = match line.find('{') {
                Some(open) if open < line.find(' ').unwrap_or(usize::MAX) => {
                    open + closing_brace(&line[open..])? + 1
                }
                _ => line.find(' ')?,
            };
            let (series, rest) = line.split_at(series_end);
            let value = rest.split_whitespace().next()?;
            let value = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v.parse().ok()?,
            };
            let (name, labels) = parse_series(series)?;
            Some((name, labels, value))
        })
}

/// Index of the `}` closing the label set that starts at `s[0] == '{'`, skipping quoted values.
fn closing_brace(s: &str) -> Option<usize> {
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            '}' if !in_quotes => return Some(i),
            _ => {}
        }
    }
    None
}

/// `name{a="x",b="y"}` -> (name, sorted labels). Values are unescaped.
fn parse_series(s: &str) -> Option<(String, Labels)> {
    let s = s.trim();
    let Some(open) = s.find('{') else {
        return Some((s.to_string(), Vec::new()));
    };
    let name = s[..open].to_string();
    let inner = s[open + 1..].strip_suffix('}')?;
    let mut labels = Vec::new();
    let mut chars = inner.chars().peekable();
    loop {
        while matches!(chars.peek(), Some(',') | Some(' ')) {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if chars.next() != Some('"') {
            return None;
        }
        let mut value = String::new();
        loop {
            match chars.next()? {
                '\\' => match chars.next()? {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                '"' => break,
                c => value.push(c),
            }
        }
        labels.push((key.trim().to_string(), value));
    }
    labels.sort();
    Some((name, labels))
}
