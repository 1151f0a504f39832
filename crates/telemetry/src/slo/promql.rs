//! The PromQL of an SLO: its error ratio over a rate window, and the multi-window
//! multi-burn-rate tiers of the Google SRE workbook (chapter 5, "Alerting on SLOs").

use super::config::{Severity, Sli, Slo};

/// Rate windows every SLO's error ratio is recorded over.
pub const WINDOWS: [&str; 7] = ["5m", "30m", "1h", "2h", "6h", "1d", "3d"];

/// One alerting tier: fires when both the long and the short window burn faster than `factor`
/// times the budget rate. The short window makes the alert stop soon after the burn stops.
#[derive(Debug, Clone, Copy)]
pub struct Tier {
    pub long: &'static str,
    pub short: &'static str,
    pub factor: f64,
}

/// 2% of a 30-day budget in 1h, or 5% in 6h.
pub const FAST: [Tier; 2] = [
    Tier {
        long: "1h",
        short: "5m",
        factor: 14.4,
    },
    Tier {
        long: "6h",
        short: "30m",
        factor: 6.0,
    },
];

/// 10% of a 30-day budget in 1d, or 10% in 3d.
pub const SLOW: [Tier; 2] = [
    Tier {
        long: "1d",
        short: "2h",
        factor: 3.0,
    },
    Tier {
        long: "3d",
        short: "6h",
        factor: 1.0,
    },
];

/// The recorded error-ratio series name for a window.
#[must_use]
pub fn ratio_record(window: &str) -> String {
    format!("slo:sli_error:ratio_rate{window}")
}

/// The recorded series of the error budget left over the SLO window (1 = untouched, 0 = spent,
/// negative = overspent).
pub const BUDGET_REMAINING: &str = "slo:error_budget_remaining:ratio";

fn sum_by(by: &[String], inner: &str) -> String {
    if by.is_empty() {
        format!("sum({inner})")
    } else {
        format!("sum by ({}) ({inner})", by.join(", "))
    }
}

fn rate(selector: &str, window: &str) -> String {
    format!("rate({selector}[{window}])")
}

/// `name{matchers, extra}` with either part possibly empty.
fn series(name: &str, matchers: &str, extra: &str) -> String {
    let parts: Vec<&str> = [matchers, extra]
        .into_iter()
        .filter(|p| !p.is_empty())
        .collect();
    if parts.is_empty() {
        name.to_owned()
    } else {
        format!("{name}{{{}}}", parts.join(", "))
    }
}

/// The SLI's error ratio over `window`, aggregated by the SLO's `by` labels.
#[must_use]
pub fn error_ratio(slo: &Slo, window: &str) -> String {
    let by = &slo.by;
    match &slo.sli {
        Sli::Errors { errors, total } => {
            let total = sum_by(by, &rate(total, window));
            // With no error series at all the sum is empty; `or 0 * total` makes it 0 so the
            // ratio (and the budget series) exist while everything is fine.
            format!(
                "(\n  {} or 0 * {total}\n)\n/\n{total}",
                sum_by(by, &rate(errors, window))
            )
        }
        Sli::Good { good, total } => {
            let total = sum_by(by, &rate(total, window));
            // A total outage has no good series: count that as 0 good, i.e. ratio 1.
            format!(
                "1 - (\n  (\n    {} or 0 * {total}\n  )\n  /\n  {total}\n)",
                sum_by(by, &rate(good, window))
            )
        }
        Sli::Latency {
            histogram,
            matchers,
            le,
        } => {
            let bucket = series(
                &format!("{histogram}_bucket"),
                matchers,
                &format!("le=\"{le}\""),
            );
            let count = series(&format!("{histogram}_count"), matchers, "");
            format!(
                "1 - (\n  {}\n  /\n  {}\n)",
                sum_by(by, &rate(&bucket, window)),
                sum_by(by, &rate(&count, window))
            )
        }
    }
}

/// The alert condition for a set of tiers: any tier with both windows over its threshold.
#[must_use]
pub fn burn_condition(slo: &Slo, tiers: &[Tier]) -> String {
    let budget = slo.error_budget();
    let selector = format!("{{slo=\"{}\"}}", slo.name);
    let tier_exprs: Vec<String> = tiers
        .iter()
        .map(|t| {
            let threshold = format!("({} * {budget})", t.factor);
            format!(
                "(\n  {long}{selector} > {threshold}\nand\n  {short}{selector} > {threshold}\n)",
                long = ratio_record(t.long),
                short = ratio_record(t.short),
            )
        })
        .collect();
    tier_exprs.join("\nor\n")
}

/// Burn tiers grouped by who hears about them: `(severity, burn label, tiers)`. Fast and slow
/// burns stay separate alerts even when both go to the same severity, so the `burn` label tells
/// the responder how urgent it is.
#[must_use]
pub fn alert_tiers(slo: &Slo) -> [(Severity, &'static str, &'static [Tier]); 2] {
    [
        (slo.fast_burn, "fast", &FAST),
        (slo.slow_burn, "slow", &SLOW),
    ]
}
