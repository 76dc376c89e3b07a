//! Per-entity rules: debounce and ordering, configured per source or plugin.
//!
//! ```toml
//! [[entities]]
//! source = "servicetrade"   # and/or plugin = "..."
//! debounce_ms = 2000        # one plugin run per burst, with the latest event
//! ordered = true            # one job at a time per entity, in arrival order
//! ```
//!
//! An entity is the vendor's record (`job` 123) an event is about; events
//! without one are never debounced or ordered.

use serde::Deserialize;

/// One `[[entities]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntityRule {
    /// Applies to events of this source (any when absent).
    pub source: Option<String>,
    /// Applies to jobs of this plugin (any when absent).
    pub plugin: Option<String>,
    /// Quiet time that ends a burst, ms; 0 = no debounce.
    #[serde(default)]
    pub debounce_ms: u64,
    /// Run an entity's jobs one at a time, in arrival order.
    #[serde(default)]
    pub ordered: bool,
}

/// An `[[entities]]` entry that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntityRuleError {
    /// The rule would apply to everything.
    #[error("an [[entities]] entry needs `source` or `plugin` (or both)")]
    Unscoped,
    /// A debounce window longer than an hour.
    #[error("[[entities]] debounce_ms is over an hour; a burst window is seconds")]
    DebounceTooLong,
}

/// Checks `[[entities]]` entries; an error names the entry to fix.
pub fn validate(rules: &[EntityRule]) -> Result<(), EntityRuleError> {
    for r in rules {
        if r.source.is_none() && r.plugin.is_none() {
            return Err(EntityRuleError::Unscoped);
        }
        if r.debounce_ms > 3_600_000 {
            return Err(EntityRuleError::DebounceTooLong);
        }
    }
    Ok(())
}

/// The first rule that applies to a plugin's job for an event of `source`.
pub fn rule_for<'a>(rules: &'a [EntityRule], source: &str, plugin: &str) -> Option<&'a EntityRule> {
    rules.iter().find(|r| {
        r.source.as_deref().is_none_or(|s| s == source)
            && r.plugin.as_deref().is_none_or(|p| p == plugin)
    })
}

/// The key one entity's jobs for one plugin share.
pub fn entity_key(plugin: &str, source: &str, entity_kind: &str, entity_id: &str) -> String {
    format!("{plugin}\u{1f}{source}\u{1f}{entity_kind}\u{1f}{entity_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_matching_rule_wins_and_a_rule_needs_a_scope() {
        let rules = vec![
            EntityRule {
                source: Some("st".into()),
                plugin: None,
                debounce_ms: 2000,
                ordered: false,
            },
            EntityRule {
                source: None,
                plugin: Some("p".into()),
                debounce_ms: 0,
                ordered: true,
            },
        ];
        assert_eq!(
            rule_for(&rules, "st", "p").map(|r| r.debounce_ms),
            Some(2000)
        );
        assert!(rule_for(&rules, "hcp", "p").is_some_and(|r| r.ordered));
        assert!(rule_for(&rules, "hcp", "q").is_none());
        assert!(
            validate(&[EntityRule {
                source: None,
                plugin: None,
                debounce_ms: 1,
                ordered: false
            }])
            .is_err()
        );
    }
}
