//! Pure planning: what a reconciler should do next, from what it observed. No I/O; the async
//! reconcilers execute the plans. Table-tested.

pub mod controlplane;
pub mod drain;
pub mod health;
pub mod machineset;
pub mod remediation;
pub mod rollout;

/// An IntOrString limit (`3` or `"25%"`) resolved against a total: percentages round up for
/// surge and down for unavailability, as upstream does. Malformed values resolve to `None`.
pub fn resolve_limit(v: &str, total: i32, round_up: bool) -> Option<i32> {
    match v.strip_suffix('%') {
        Some(p) => {
            let pct: i64 = p.trim().parse().ok()?;
            let n = i64::from(total) * pct;
            let r = if round_up { (n + 99) / 100 } else { n / 100 };
            i32::try_from(r).ok()
        }
        None => v.trim().parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_resolve_integers_and_percentages() {
        assert_eq!(resolve_limit("1", 10, true), Some(1));
        assert_eq!(resolve_limit("25%", 10, true), Some(3));
        assert_eq!(resolve_limit("25%", 10, false), Some(2));
        assert_eq!(resolve_limit("0%", 10, true), Some(0));
        assert_eq!(resolve_limit("many", 10, true), None);
    }
}
