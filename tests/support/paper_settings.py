"""The paper's settings as config-group overrides (docs/config-groups.md), by the names of the resolved copies kept
in tests/data/resolved_configs/ (what the `_base_` overlays resolved to before conf/ replaced them)."""

SETTINGS = {
    "thumos14_75_25": ["dataset=thumos14"],
    "thumos14_50_50": ["dataset=thumos14", "split=50-50"],
    "activitynet_75_25": ["dataset=activitynet"],
    "activitynet_50_50": ["dataset=activitynet", "split=50-50"],
    "charades_sta": ["dataset=charades"],
}
