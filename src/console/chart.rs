//! The overview's chart: decisions per minute over the last hour, one stacked bar per minute,
//! drawn as inline SVG on the server (no library, nothing to load). The same numbers follow
//! in a table for screen readers and for copying.

use super::html::{esc, num};
use crate::journal::MINUTES;
use crate::reject::Decision;
use std::fmt::Write;

const WIDTH: u32 = 720;
const HEIGHT: u32 = 200;
const LEFT: u32 = 40;
const BOTTOM: u32 = 20;

/// The class (and so the colour) each decision is drawn in.
fn class(d: Decision) -> &'static str {
    match d {
        Decision::Forwarded => "forwarded",
        Decision::Rejected => "rejected",
        Decision::Dropped => "dropped",
        Decision::WouldReject => "would-reject",
    }
}

/// The chart for `series` (per decision, counts per minute, oldest first), whose last
/// minute is `now_minute` (minutes since the epoch).
pub fn decisions_per_minute(series: &[(Decision, [u32; MINUTES])], now_minute: u64) -> String {
    let peak = (0..MINUTES)
        .map(|m| series.iter().map(|(_, s)| s[m]).sum::<u32>())
        .max()
        .unwrap_or(0)
        .max(1);
    let plot_h = HEIGHT - BOTTOM - 10;
    let bar_w = (WIDTH - LEFT) / MINUTES as u32;
    let mut bars = String::new();
    for m in 0..MINUTES {
        let mut y = HEIGHT - BOTTOM;
        let minute = now_minute + 1 - (MINUTES - m) as u64;
        let at = crate::clock::rfc3339(minute * 60);
        let hhmm = at.get(11..16).unwrap_or("");
        for (d, s) in series {
            if s[m] == 0 {
                continue;
            }
            let h = (s[m] * plot_h).div_ceil(peak).max(1);
            y -= h;
            let x = LEFT + m as u32 * bar_w;
            let _ = write!(
                bars,
                "<rect class=\"{}\" x=\"{x}\" y=\"{y}\" width=\"{}\" height=\"{h}\" data-decision=\"{}\" data-count=\"{}\"><title>{hhmm} UTC: {} {}</title></rect>",
                class(*d),
                bar_w.saturating_sub(1).max(1),
                d.as_str(),
                s[m],
                s[m],
                d.as_str()
            );
        }
    }
    let mut legend = String::new();
    let mut totals = String::new();
    let mut data_head = String::from("<th scope=\"col\">Minute (UTC)</th>");
    for (d, s) in series {
        let total: u64 = s.iter().map(|&c| u64::from(c)).sum();
        let _ = write!(
            legend,
            "<li><span class=\"swatch {}\" aria-hidden=\"true\"></span>{} <strong data-total=\"{}\">{total}</strong></li>",
            class(*d),
            d.as_str(),
            d.as_str()
        );
        let _ = write!(totals, "{}: {total}. ", d.as_str());
        let _ = write!(data_head, "<th scope=\"col\">{}</th>", d.as_str());
    }
    let mut data_rows = String::new();
    for m in 0..MINUTES {
        if series.iter().all(|(_, s)| s[m] == 0) {
            continue;
        }
        let minute = now_minute + 1 - (MINUTES - m) as u64;
        let at = crate::clock::rfc3339(minute * 60);
        let _ = write!(
            data_rows,
            "<tr><th scope=\"row\">{}</th>",
            esc(&at[..16.min(at.len())])
        );
        for (_, s) in series {
            data_rows.push_str(&num(s[m]));
        }
        data_rows.push_str("</tr>");
    }
    let axis = format!(
        "<line class=\"axis\" x1=\"{LEFT}\" y1=\"{b}\" x2=\"{WIDTH}\" y2=\"{b}\"/>\
<text x=\"{tx}\" y=\"14\" text-anchor=\"end\">{peak}</text>\
<text x=\"{tx}\" y=\"{b}\" text-anchor=\"end\">0</text>\
<text x=\"{LEFT}\" y=\"{HEIGHT}\">60 min ago</text>\
<text x=\"{WIDTH}\" y=\"{HEIGHT}\" text-anchor=\"end\">now</text>",
        b = HEIGHT - BOTTOM,
        tx = LEFT - 4,
    );
    format!(
        "<figure class=\"chart\" id=\"chart\"><svg viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" aria-labelledby=\"chart-title chart-desc\" preserveAspectRatio=\"none\">\
<title id=\"chart-title\">Decisions per minute, last hour</title><desc id=\"chart-desc\">Totals over the hour: {totals}</desc>\
{axis}{bars}</svg><figcaption><ul class=\"legend\">{legend}</ul></figcaption></figure>\
<details><summary>The chart's numbers</summary>{}</details>\n",
        super::html::table_with_head(
            "Decisions per minute (minutes with none left out)",
            "chart-data",
            &data_head,
            series.len() + 1,
            &data_rows,
        )
    )
}
