//! The opt-in tag vocabulary of DESIGN.md. Each parser names the tag and the expected form in
//! its error, so an operator can fix a tag without reading code.

use std::collections::BTreeMap;

pub const TAG_DEPLOY: &str = "autopilot:deploy";
pub const TAG_PIN: &str = "autopilot:pin";
pub const TAG_ROLLBACK: &str = "autopilot:rollback";
pub const TAG_MIN: &str = "autopilot:min";
pub const TAG_MAX: &str = "autopilot:max";
pub const TAG_SCALE: &str = "autopilot:scale";
pub const TAG_STEPS: &str = "autopilot:steps";
pub const TAG_COOLDOWN: &str = "autopilot:cooldown";
pub const TAG_ASG: &str = "autopilot:asg";
pub const TAG_RESTART: &str = "autopilot:restart";

pub const DEFAULT_COOLDOWN_SECONDS: u64 = 300;
pub const DEFAULT_RESTART_LIMIT: u32 = 3;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("tag {tag}={value:?} is not valid: expected {expected}")]
pub struct TagError {
    pub tag: &'static str,
    pub value: String,
    pub expected: String,
    /// The value to write instead, when the parser can tell (an old glob form, say).
    pub suggestion: Option<String>,
}

impl TagError {
    pub fn new(tag: &'static str, value: &str, expected: impl Into<String>) -> Self {
        TagError { tag, value: value.chars().take(256).collect(), expected: expected.into(), suggestion: None }
    }

    pub fn with_suggestion(mut self, value: Option<String>) -> Self {
        self.suggestion = value;
        self
    }
}

fn err(tag: &'static str, value: &str, expected: &'static str) -> TagError {
    TagError::new(tag, value, expected)
}

/// Tags of one resource, by key.
pub type Tags = BTreeMap<String, String>;

pub fn ecs_tags(tags: &[aws_sdk_ecs::types::Tag]) -> Tags {
    tags.iter().filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or_default().to_string()))).collect()
}

// ------------------------------------------------------------------ autopilot:deploy

mod deploy;
pub use deploy::{is_tag, release_version, semver_tag, DeployRule, DeployRules, SemverRange, DEPLOY_EXPECTED};

// ------------------------------------------------------------------ autopilot:pin

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PinMode {
    /// `<registry>/<repo>@sha256:…`: what runs is exactly what was pushed.
    #[default]
    Digest,
    /// `<registry>/<repo>:<tag>`
    Tag,
}

impl PinMode {
    pub fn parse(value: Option<&str>) -> Result<Self, TagError> {
        match value.map(str::trim) {
            None | Some("") | Some("digest") => Ok(PinMode::Digest),
            Some("tag") => Ok(PinMode::Tag),
            Some(other) => Err(err(TAG_PIN, other, "digest or tag")),
        }
    }
}

// ------------------------------------------------------------------ autopilot:rollback

pub fn parse_rollback(value: Option<&str>) -> Result<bool, TagError> {
    match value.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
        None | Some("") | Some("off") | Some("false") => Ok(false),
        Some("on") | Some("true") => Ok(true),
        Some(_) => Err(err(TAG_ROLLBACK, value.unwrap_or_default(), "on or off")),
    }
}

// ------------------------------------------------------------------ autopilot:min / max

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub min: u32,
    pub max: u32,
}

impl Bounds {
    /// Without tags the scaler may go from 0 to ECS's own service limit.
    pub fn parse(min: Option<&str>, max: Option<&str>) -> Result<Self, TagError> {
        let one = |tag, v: Option<&str>, default| match v.map(str::trim) {
            None | Some("") => Ok(default),
            Some(s) => s.parse::<u32>().ok().filter(|n| *n <= 5000).ok_or_else(|| err(tag, s, "a whole number from 0 to 5000")),
        };
        let bounds = Bounds { min: one(TAG_MIN, min, 0)?, max: one(TAG_MAX, max, 5000)? };
        if bounds.min > bounds.max {
            return Err(err(TAG_MAX, max.unwrap_or_default(), "a number not below autopilot:min"));
        }
        Ok(bounds)
    }

    pub fn from_tags(tags: &Tags) -> Result<Self, TagError> {
        Self::parse(tags.get(TAG_MIN).map(String::as_str), tags.get(TAG_MAX).map(String::as_str))
    }

    pub fn clamp(&self, n: i64) -> u32 {
        n.clamp(self.min as i64, self.max as i64) as u32
    }
}

// ------------------------------------------------------------------ autopilot:scale

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScaleTarget {
    pub cluster: String,
    pub service: String,
}

impl ScaleTarget {
    pub fn parse(value: &str) -> Result<Self, TagError> {
        let name_ok = |s: &str| !s.is_empty() && s.len() <= 255 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        match value.trim().split_once('/') {
            Some((c, s)) if name_ok(c) && name_ok(s) => Ok(ScaleTarget { cluster: c.into(), service: s.into() }),
            _ => Err(err(TAG_SCALE, value, "CLUSTER/SERVICE, e.g. stage01/random")),
        }
    }
}

// ------------------------------------------------------------------ autopilot:steps

/// One step adjustment, bounds relative to the alarm threshold (`None` = infinity).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step {
    pub lower: Option<f64>,
    pub upper: Option<f64>,
    pub adjustment: Adjustment,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Adjustment {
    /// ChangeInCapacity: `+N` / `-N`
    Change(i64),
    /// PercentChangeInCapacity: `+Npct` / `-Npct` (or `+N%` / `-N%`)
    Percent(f64),
    /// ExactCapacity: `=N`
    Exact(u32),
}

impl Adjustment {
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        if let Some(n) = s.strip_prefix('=') {
            return n.parse::<u32>().ok().map(Adjustment::Exact);
        }
        let sign = match s.as_bytes().first()? {
            b'+' => 1.0,
            b'-' => -1.0,
            _ => return None,
        };
        let body = &s[1..];
        // `pct` is the spelling ECS-safe tag values allow; `%` stays accepted on alarms.
        if let Some(p) = body.strip_suffix('%').or_else(|| body.strip_suffix("pct")) {
            let v: f64 = p.parse().ok().filter(|v: &f64| v.is_finite() && *v >= 0.0 && *v <= 10_000.0)?;
            return Some(Adjustment::Percent(sign * v));
        }
        body.parse::<u32>().ok().filter(|n| *n <= 5000).map(|n| Adjustment::Change(sign as i64 * n as i64))
    }
}

impl std::fmt::Display for Adjustment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Adjustment::Change(n) => write!(f, "{n:+}"),
            Adjustment::Percent(p) => write!(f, "{p:+}%"),
            Adjustment::Exact(n) => write!(f, "={n}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Steps(pub Vec<Step>);

impl Steps {
    /// Parses and validates the step adjustments as Application Auto Scaling validates a step
    /// scaling policy's StepAdjustments (API reference, "StepAdjustment"): no overlaps, no gaps,
    /// at most one step without a lower bound and one without an upper bound, a negative lower
    /// bound only with a step that has no lower bound, a positive upper bound only with a step
    /// that has no upper bound, never both bounds empty in one step, ExactCapacity not negative.
    /// The one exception is our shortcut, a bare adjustment (`+2`): one step whose interval the
    /// scaler reads in the alarm's direction (`decide::steps_for`).
    pub fn parse(value: &str) -> Result<Self, TagError> {
        const EXPECTED: &str = "LOWER:UPPER:ADJUSTMENT steps separated by spaces or commas (bounds may be empty = infinity; adjustment +N, -N, +Npct, -Npct or =N), or a bare adjustment like +2";
        let bad = || err(TAG_STEPS, value, EXPECTED);
        let rule = |expected: String| TagError::new(TAG_STEPS, value, expected);
        let items: Vec<&str> = value.split(|c: char| c == ',' || c.is_whitespace()).filter(|s| !s.is_empty()).collect();
        if items.is_empty() || items.len() > 20 {
            return Err(bad());
        }
        let bound = |s: &str| -> Result<Option<f64>, TagError> {
            if s.trim().is_empty() {
                Ok(None)
            } else {
                s.trim().parse::<f64>().ok().filter(|f| f.is_finite()).map(Some).ok_or_else(bad)
            }
        };
        let mut steps = Vec::with_capacity(items.len());
        for item in &items {
            let parts: Vec<&str> = item.split(':').collect();
            let step = match parts.as_slice() {
                // The bare shortcut: the only step, so nothing below can contradict it.
                [adj] if items.len() == 1 => return Ok(Steps(vec![Step { lower: None, upper: None, adjustment: Adjustment::parse(adj).ok_or_else(bad)? }])),
                [lo, hi, adj] => Step { lower: bound(lo)?, upper: bound(hi)?, adjustment: Adjustment::parse(adj).ok_or_else(bad)? },
                _ => return Err(bad()),
            };
            match (step.lower, step.upper) {
                (None, None) => return Err(rule(format!("no step with both bounds empty ({item}); one open step is written as a bare adjustment like {}", step.adjustment))),
                (Some(l), Some(u)) if l >= u => return Err(rule(format!("each step's lower bound below its upper bound ({item})"))),
                _ => {}
            }
            steps.push(step);
        }
        if steps.iter().filter(|s| s.lower.is_none()).count() > 1 {
            return Err(rule("at most one step with an empty lower bound (negative infinity)".into()));
        }
        if steps.iter().filter(|s| s.upper.is_none()).count() > 1 {
            return Err(rule("at most one step with an empty upper bound (positive infinity)".into()));
        }
        // Sorted by lower bound (the one empty lower bound first), each step must end where the
        // next begins.
        let mut sorted = steps.clone();
        sorted.sort_by(|a, b| a.lower.unwrap_or(f64::NEG_INFINITY).total_cmp(&b.lower.unwrap_or(f64::NEG_INFINITY)));
        for pair in sorted.windows(2) {
            let upper = pair[0].upper.unwrap_or(f64::INFINITY);
            let lower = pair[1].lower.unwrap_or(f64::NEG_INFINITY);
            if upper > lower {
                return Err(rule(format!("steps whose intervals do not overlap (one ends at {upper}, the next starts at {lower})")));
            }
            if upper < lower {
                return Err(rule(format!("steps without a gap between them (one ends at {upper}, the next starts at {lower})")));
            }
        }
        if steps.iter().any(|s| s.lower.is_some_and(|l| l < 0.0)) && !steps.iter().any(|s| s.lower.is_none()) {
            return Err(rule("a step with an empty lower bound when a lower bound is negative (e.g. :-10:-2 with -10:0:-1)".into()));
        }
        if steps.iter().any(|s| s.upper.is_some_and(|u| u > 0.0)) && !steps.iter().any(|s| s.upper.is_none()) {
            return Err(rule("a step with an empty upper bound when an upper bound is positive (e.g. 10::+2 with 0:10:+1)".into()));
        }
        Ok(Steps(steps))
    }

    /// Whether these are the bare shortcut (`+2`): one step without bounds.
    pub fn bare(&self) -> Option<Step> {
        match self.0.as_slice() {
            [s] if s.lower.is_none() && s.upper.is_none() => Some(*s),
            _ => None,
        }
    }
}

pub fn parse_cooldown(value: Option<&str>) -> Result<u64, TagError> {
    match value.map(str::trim) {
        None | Some("") => Ok(DEFAULT_COOLDOWN_SECONDS),
        Some(s) => s.parse::<u64>().ok().filter(|n| *n <= 86_400).ok_or_else(|| err(TAG_COOLDOWN, s, "seconds from 0 to 86400")),
    }
}

// ------------------------------------------------------------------ autopilot:asg

pub fn parse_asg(value: &str) -> Result<String, TagError> {
    let v = value.trim();
    if v.is_empty() || v.len() > 255 || v.chars().any(|c| c.is_control()) {
        return Err(err(TAG_ASG, value, "the name of an EC2 Auto Scaling group"));
    }
    Ok(v.to_string())
}

// ------------------------------------------------------------------ autopilot:restart

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartPolicy {
    pub max_restarts: u32,
}

impl RestartPolicy {
    pub fn parse(value: &str) -> Result<Self, TagError> {
        const EXPECTED: &str = "on-failure or on-failure:N (N from 1 to 100)";
        match value.trim() {
            "on-failure" => Ok(RestartPolicy { max_restarts: DEFAULT_RESTART_LIMIT }),
            other => other
                .strip_prefix("on-failure:")
                .and_then(|n| n.parse::<u32>().ok())
                .filter(|n| (1..=100).contains(n))
                .map(|max_restarts| RestartPolicy { max_restarts })
                .ok_or_else(|| err(TAG_RESTART, value, EXPECTED)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pin_rollback_bounds_cooldown_scale_asg() {
        assert_eq!(PinMode::parse(None).unwrap(), PinMode::Digest);
        assert_eq!(PinMode::parse(Some("tag")).unwrap(), PinMode::Tag);
        assert!(PinMode::parse(Some("latest")).is_err());
        assert!(parse_rollback(Some("on")).unwrap());
        assert!(!parse_rollback(None).unwrap());
        assert_eq!(parse_rollback(Some("yes please")).unwrap_err().tag, TAG_ROLLBACK);
        assert_eq!(Bounds::parse(Some("2"), Some("12")).unwrap(), Bounds { min: 2, max: 12 });
        assert_eq!(Bounds::parse(Some("5"), Some("2")).unwrap_err().tag, TAG_MAX);
        assert_eq!(Bounds::parse(Some("-1"), None).unwrap_err().tag, TAG_MIN);
        assert_eq!(Bounds::parse(Some("2"), Some("12")).unwrap().clamp(20), 12);
        assert_eq!(parse_cooldown(None).unwrap(), 300);
        assert_eq!(parse_cooldown(Some("abc")).unwrap_err().tag, TAG_COOLDOWN);
        assert_eq!(ScaleTarget::parse("stage01/random").unwrap(), ScaleTarget { cluster: "stage01".into(), service: "random".into() });
        for bad in ["stage01", "/random", "a/b/c", "stage01/"] {
            assert!(ScaleTarget::parse(bad).is_err(), "{bad}");
        }
        assert!(parse_asg(" ").is_err());
    }

    #[test]
    fn steps() {
        let s = Steps::parse("0:15:+1,15::+2").unwrap();
        assert_eq!(s.0[0], Step { lower: Some(0.0), upper: Some(15.0), adjustment: Adjustment::Change(1) });
        assert_eq!(s.0[1], Step { lower: Some(15.0), upper: None, adjustment: Adjustment::Change(2) });
        assert_eq!(Steps::parse("+2").unwrap().0, vec![Step { lower: None, upper: None, adjustment: Adjustment::Change(2) }]);
        assert_eq!(Steps::parse(":-10:-25%").unwrap().0[0].adjustment, Adjustment::Percent(-25.0));
        assert_eq!(Steps::parse("0::=6").unwrap().0[0].adjustment, Adjustment::Exact(6));
        // The spelling an ECS-safe value can carry: spaces between steps, pct for percent.
        assert_eq!(Steps::parse("0:15:+1 15::+2").unwrap(), s);
        assert_eq!(Steps::parse(" 0:15:+1 ,  15::+2 ").unwrap(), s);
        assert_eq!(Steps::parse(":-10:-25pct").unwrap().0[0].adjustment, Adjustment::Percent(-25.0));
        assert_eq!(Steps::parse("+50pct").unwrap().0[0].adjustment, Adjustment::Percent(50.0));
        for bad in ["abc", "", "+2,+3", "+2 +3", "0:10", "10:0:+1", "0:10:+1,5:20:+2", "0:10:2", "0:x:+1", "0:10:+1%%", "0:10:+1pctpct", "0:10:+pct"] {
            let e = Steps::parse(bad).unwrap_err();
            assert_eq!(e.tag, TAG_STEPS, "{bad}");
        }
        assert_eq!(Steps::parse("+2").unwrap().bare().map(|s| s.adjustment), Some(Adjustment::Change(2)));
        assert_eq!(Steps::parse("0::+2").unwrap().bare(), None);
        assert_eq!(Adjustment::Change(2).to_string(), "+2");
        assert_eq!(Adjustment::Percent(-25.0).to_string(), "-25%");
    }

    /// Application Auto Scaling's StepAdjustment rules (API reference, "StepAdjustment"), one row
    /// per rule: what AAS refuses, the parser refuses naming the rule; what AAS accepts, it accepts.
    #[test]
    fn steps_are_validated_as_aas_validates_step_adjustments() {
        // (value, accepted, a word of the error's expected form)
        let cases: &[(&str, bool, &str)] = &[
            // "The ranges of your step adjustments can't overlap or have a gap."
            ("0:10:+1 10::+2", true, ""),
            ("0:10:+1 20::+2", false, "gap"),
            (":-10:-2 -5:0:-1", false, "gap"),
            ("0:10:+1 5::+2", false, "overlap"),
            ("10::+2 0:20:+1", false, "overlap"),
            // "At most one step adjustment can have a null lower bound." (and upper)
            (":-10:-2 :0:-1", false, "lower bound (negative infinity)"),
            ("0::+1 10::+2", false, "upper bound (positive infinity)"),
            // "If one step adjustment has a negative lower bound, then there must be a step
            // adjustment with a null lower bound."
            ("-10:0:-1", false, "empty lower bound when a lower bound is negative"),
            ("-10:0:-1 :-10:-2", true, ""),
            ("-10::+1", false, "empty lower bound when a lower bound is negative"),
            // "If one step adjustment has a positive upper bound, then there must be a step
            // adjustment with a null upper bound."
            ("0:10:+1", false, "empty upper bound when an upper bound is positive"),
            (":10:-1", false, "empty upper bound when an upper bound is positive"),
            (":10:-1 10::+1", true, ""),
            // Non-negative lower / non-positive upper bounds need no open step.
            ("10::+2", true, ""),
            ("0::+2", true, ""),
            (":0:-1", true, ""),
            (":-10:-1", true, ""),
            ("0:10:+0pct 10:20:+10pct 20::+30pct", true, ""),
            ("-10:0:-0pct -20:-10:-10pct :-20:-30pct", true, ""),
            // "The upper and lower bound can't be null in the same step adjustment." Our bare
            // shortcut is the one exception; written out, it is refused.
            ("::+2", false, "both bounds empty"),
            ("+2", true, ""),
            ("-1", true, ""),
            ("=3", true, ""),
            ("::+2 0::+1", false, "both bounds empty"),
            // "For exact capacity, you must specify a non-negative value."
            ("0::=-1", false, "ADJUSTMENT"),
            ("0::=0", true, ""),
            // The upper bound must be greater than the lower bound.
            ("10:10:+1 :10:-1 10::+2", false, "lower bound below its upper bound"),
        ];
        for (value, accepted, word) in cases {
            match Steps::parse(value) {
                Ok(_) => assert!(*accepted, "{value:?} was accepted; AAS refuses it ({word})"),
                Err(e) => {
                    assert!(!*accepted, "{value:?} was refused: {e}");
                    assert_eq!(e.tag, TAG_STEPS, "{value:?}");
                    assert!(e.expected.contains(word), "{value:?}: {e} does not name the rule {word:?}");
                }
            }
        }
    }

    #[test]
    fn restart_policy() {
        assert_eq!(RestartPolicy::parse("on-failure").unwrap().max_restarts, 3);
        assert_eq!(RestartPolicy::parse("on-failure:5").unwrap().max_restarts, 5);
        for bad in ["always", "on-failure:0", "on-failure:x", "on-failure:1000"] {
            assert_eq!(RestartPolicy::parse(bad).unwrap_err().tag, TAG_RESTART, "{bad}");
        }
    }
}
