//! The tags Trimtab reads and writes, in one place.

/// Tag that keeps Trimtab's hands off a resource (value `true`, as the template's IAM deny
/// reads it).
pub const LOCK_TAG: &str = "trimtab:lock";
/// Tag on Trimtab's own resources.
pub const OWN_TAG: &str = "trimtab:component";

/// Whether tags lock a resource: `trimtab:lock` is `true` (any case).
pub fn is_locked(tags: &std::collections::BTreeMap<String, String>) -> bool {
    tags.get(LOCK_TAG)
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// Whether `name` matches an IAM-style pattern (`*` any run, `?` one character), as the
/// template's `ManagedFunctionPattern` does in the role's resource ARN.
pub fn matches_pattern(pattern: &str, name: &str) -> bool {
    fn go(p: &[u8], n: &[u8]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], n) || (!n.is_empty() && go(p, &n[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &n[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &n[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), name.as_bytes())
}

/// Tag naming the alias a function is served through; provisioned concurrency goes on it.
pub const ALIAS_TAG: &str = "trimtab:alias";
/// `true` opts a function in to canaries on the alias `trimtab:alias` names: its memory is then
/// changed only through a canary's promotion.
pub const CANARY_TAG: &str = "trimtab:canary";

/// Whether the function asked for canaries.
pub fn canary_wanted(tags: &std::collections::BTreeMap<String, String>) -> bool {
    tags.get(CANARY_TAG)
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
}
/// Tag carrying a function's latency objective, in ms (provisioned concurrency advice).
pub const LATENCY_OBJECTIVE_TAG: &str = "trimtab:latency-objective-ms";
/// Tag by which a table hands Trimtab the scaling policies someone else made.
pub const MANAGED_TAG: &str = "trimtab:managed";
/// Tags overriding a table's autoscaling: target utilisation (percent), minimum and maximum
/// capacity units.
pub const TARGET_TAG: &str = "trimtab:target";
pub const MIN_CAPACITY_TAG: &str = "trimtab:min";
pub const MAX_CAPACITY_TAG: &str = "trimtab:max";
/// The IANA time zone a resource's traffic keeps (`Europe/Berlin`): its forecast runs on local
/// hours and its scheduled actions are written in that zone (default UTC).
pub const TIMEZONE_TAG: &str = "trimtab:timezone";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_and_the_managed_pattern_read_as_iam_does() {
        let tags = |v: &str| [(LOCK_TAG.to_owned(), v.to_owned())].into();
        assert!(is_locked(&tags("true")));
        assert!(is_locked(&tags("TRUE")));
        assert!(!is_locked(&tags("false")));
        assert!(matches_pattern("shop-*", "shop-cart"));
        assert!(!matches_pattern("shop-*", "billing-cart"));
        assert!(matches_pattern("*", "anything"));
        assert!(matches_pattern("a?c", "abc"));
    }
}
