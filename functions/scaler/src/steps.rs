//! Application Auto Scaling step-scaling semantics, as pure functions.
//!
//! - The breach is the mean of the alarm's datapoints minus its threshold: the transition's
//!   `recentDatapoints`, or on re-evaluation the metric's newest values (`reevaluate.rs`).
//! - Step intervals are relative to the threshold. When the metric is at or above the threshold
//!   a step's lower bound is inclusive and its upper bound exclusive (`[lower, upper)`); below the
//!   threshold the lower bound is exclusive and the upper inclusive (`(lower, upper]`). A breach of
//!   exactly 0 counts as "below" only when every step lies at or below the threshold (a scale-in
//!   alarm such as `cpu <= 30` with steps `:0:-1`).
//! - PercentChangeInCapacity is rounded as AAS rounds it (> 1 down, 0..1 → 1, -1..0 → -1,
//!   < -1 up), then raised to the minimum magnitude. The tags have no minimum-magnitude field, so
//!   it is [`DEFAULT_MIN_ADJUSTMENT_MAGNITUDE`] = 1, which the rounding already guarantees: a
//!   percentage step of a non-empty service always moves at least one task.
//! - Cooldowns: during a scale-out cooldown a new scale-out applies only the part of its change
//!   that exceeds what the scale-out which started the cooldown already added; scale-in waits for
//!   the scale-in cooldown and also for a running scale-out cooldown (so a scale-out is not undone
//!   before its effect shows); a scale-out is never delayed by a scale-in cooldown, and ends it.
//! - Bounds: a scale-out never lowers desiredCount and a scale-in never raises it, both stop at
//!   `autopilot:min` / `autopilot:max`.

use autopilot::tags::{Adjustment, Bounds, Step, Steps};
use serde::{Deserialize, Serialize};

pub const DEFAULT_MIN_ADJUSTMENT_MAGNITUDE: i64 = 1;

/// Mean of the datapoints minus the threshold; `None` without datapoints.
pub fn breach(datapoints: &[f64], threshold: f64) -> Option<f64> {
    if datapoints.is_empty() {
        return None;
    }
    Some(datapoints.iter().sum::<f64>() / datapoints.len() as f64 - threshold)
}

fn all_below(steps: &Steps) -> bool {
    steps.0.iter().all(|s| s.upper.is_some_and(|u| u <= 0.0))
}

/// The step whose interval contains the breach, with AWS's inclusive/exclusive rules.
pub fn select_step(steps: &Steps, breach: f64) -> Option<Step> {
    let below = breach < 0.0 || (breach == 0.0 && all_below(steps));
    steps.0.iter().copied().find(|s| {
        let lo = s.lower.unwrap_or(f64::NEG_INFINITY);
        let hi = s.upper.unwrap_or(f64::INFINITY);
        if below {
            lo < breach && breach <= hi
        } else {
            lo <= breach && breach < hi
        }
    })
}

/// AAS rounding of a fractional PercentChangeInCapacity, then the minimum magnitude.
pub fn round_percent_change(current: u32, percent: f64, min_magnitude: i64) -> i64 {
    let x = current as f64 * percent / 100.0;
    let n = if x > 1.0 {
        x.floor() as i64
    } else if x > 0.0 {
        1
    } else if x == 0.0 {
        0
    } else if x > -1.0 {
        -1
    } else {
        x.ceil() as i64
    };
    if n != 0 && n.abs() < min_magnitude {
        n.signum() * min_magnitude
    } else {
        n
    }
}

/// Desired count the adjustment asks for, before cooldown and bounds.
pub fn raw_target(current: u32, adjustment: Adjustment) -> i64 {
    match adjustment {
        Adjustment::Change(n) => current as i64 + n,
        Adjustment::Percent(p) => current as i64 + round_percent_change(current, p, DEFAULT_MIN_ADJUSTMENT_MAGNITUDE),
        Adjustment::Exact(n) => n as i64,
    }
}

/// Per-service scaling record (`scale` / `CLUSTER/SERVICE` in the state table). Epoch seconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cooldowns {
    #[serde(default)]
    pub last_scale_out_at: Option<i64>,
    /// Tasks added since the scale-out cooldown began (what a larger step must exceed).
    #[serde(default)]
    pub last_scale_out_added: u32,
    #[serde(default)]
    pub scale_out_cooldown: u64,
    #[serde(default)]
    pub last_scale_in_at: Option<i64>,
    #[serde(default)]
    pub scale_in_cooldown: u64,
}

impl Cooldowns {
    /// Seconds left of the scale-out cooldown at `now` (0 = over).
    pub fn scale_out_remaining(&self, now: i64) -> i64 {
        self.last_scale_out_at.map_or(0, |t| (t + self.scale_out_cooldown as i64 - now).max(0))
    }

    pub fn scale_in_remaining(&self, now: i64) -> i64 {
        self.last_scale_in_at.map_or(0, |t| (t + self.scale_in_cooldown as i64 - now).max(0))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Refusal {
    AtMax,
    AtMin,
    InCooldown,
    RolloutInProgress,
    /// Every task the scale-in would remove is protected from scale-in: ECS would not stop them.
    TasksProtected,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::AtMax => "at-max",
            Refusal::AtMin => "at-min",
            Refusal::InCooldown => "in-cooldown",
            Refusal::RolloutInProgress => "rollout-in-progress",
            Refusal::TasksProtected => "tasks-protected",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Change desiredCount `from` → `to`; `next` is the record to store; `held`: `to` is not what
    /// the step asked for, and why.
    Scale { from: u32, to: u32, next: Cooldowns, held: Option<Held> },
    /// The step asks for no change (a 0 adjustment, or a scale-out already applied in this
    /// cooldown): nothing to do, nothing to say.
    Nothing { reason: String },
    /// A change was asked for and is refused for now.
    Refused { from: u32, wanted: i64, refusal: Refusal, detail: String },
}

/// Why a change stops short of what the step asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    AtMax,
    AtMin,
    /// At this many tasks protected from scale-in (`Input::protected`).
    Protected(u32),
}

pub struct Input {
    pub current: u32,
    pub bounds: Bounds,
    pub adjustment: Adjustment,
    pub cooldown: u64,
    pub state: Cooldowns,
    pub now: i64,
    pub rollout_in_progress: bool,
    /// The service's tasks protected from scale-in now (`decide::protected_tasks`): a scale-in
    /// never goes below them, since ECS does not stop a protected task when desiredCount drops
    /// and a lower count would promise tasks going away that stay.
    pub protected: u32,
}

pub fn decide(i: &Input) -> Decision {
    let cur = i.current;
    let wanted = raw_target(cur, i.adjustment);
    let delta = wanted - cur as i64;
    if delta == 0 {
        return Decision::Nothing { reason: format!("step {} leaves {} at {cur}", i.adjustment, "desiredCount") };
    }
    if delta > 0 {
        let out_left = i.state.scale_out_remaining(i.now);
        let mut effective = delta;
        let in_cooldown = out_left > 0;
        if in_cooldown {
            effective = delta - i.state.last_scale_out_added as i64;
            if effective <= 0 {
                return Decision::Nothing {
                    reason: format!(
                        "in scale-out cooldown ({out_left}s left): the {} already added cover step {}",
                        i.state.last_scale_out_added, i.adjustment
                    ),
                };
            }
        }
        let target = cur as i64 + effective;
        let to = i.bounds.clamp(target).max(cur);
        if to == cur {
            return Decision::Refused {
                from: cur,
                wanted: target,
                refusal: Refusal::AtMax,
                detail: format!("at max {} (autopilot:max)", i.bounds.max),
            };
        }
        let applied = to - cur;
        let next = Cooldowns {
            last_scale_out_at: Some(i.now),
            last_scale_out_added: if in_cooldown { i.state.last_scale_out_added + applied } else { applied },
            scale_out_cooldown: i.cooldown,
            // A scale-out ends a scale-in cooldown.
            last_scale_in_at: None,
            scale_in_cooldown: 0,
        };
        return Decision::Scale { from: cur, to, next, held: (to as i64 != target).then_some(Held::AtMax) };
    }
    // Scale-in.
    if i.rollout_in_progress {
        return Decision::Refused { from: cur, wanted, refusal: Refusal::RolloutInProgress, detail: "a rollout is in progress".into() };
    }
    let left = i.state.scale_in_remaining(i.now).max(i.state.scale_out_remaining(i.now));
    if left > 0 {
        return Decision::Refused { from: cur, wanted, refusal: Refusal::InCooldown, detail: format!("in cooldown, {left}s left") };
    }
    let bounded = i.bounds.clamp(wanted).min(cur);
    if bounded == cur {
        return Decision::Refused { from: cur, wanted, refusal: Refusal::AtMin, detail: format!("at min {} (autopilot:min)", i.bounds.min) };
    }
    let protected = i.protected.min(cur);
    if protected >= cur {
        return Decision::Refused {
            from: cur,
            wanted,
            refusal: Refusal::TasksProtected,
            detail: format!("{protected} task(s) are protected from scale-in"),
        };
    }
    let to = bounded.max(protected);
    let held = if to > bounded {
        Some(Held::Protected(protected))
    } else {
        (to as i64 != wanted).then_some(Held::AtMin)
    };
    let next = Cooldowns { last_scale_in_at: Some(i.now), scale_in_cooldown: i.cooldown, ..i.state.clone() };
    Decision::Scale { from: cur, to, next, held }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steps(s: &str) -> Steps {
        Steps::parse(s).unwrap()
    }

    fn adj(s: &str, b: f64) -> Option<Adjustment> {
        select_step(&steps(s), b).map(|s| s.adjustment)
    }

    /// AAS's StepAdjustment examples (threshold 50): [0,10) above, (-10,0] below.
    #[test]
    fn interval_inclusivity_follows_aws() {
        let out = "0:10:+1,10::+2";
        assert_eq!(adj(out, 0.0), Some(Adjustment::Change(1)), "metric 50 = threshold: lower inclusive");
        assert_eq!(adj(out, 9.99), Some(Adjustment::Change(1)));
        assert_eq!(adj(out, 10.0), Some(Adjustment::Change(2)), "metric 60: upper exclusive");
        assert_eq!(adj(out, -0.1), None, "below the threshold no scale-out step matches");
        let inn = "-10:0:-1,:-10:-2";
        assert_eq!(adj(inn, 0.0), Some(Adjustment::Change(-1)), "metric 50 in a scale-in alarm: upper inclusive");
        assert_eq!(adj(inn, -9.99), Some(Adjustment::Change(-1)));
        assert_eq!(adj(inn, -10.0), Some(Adjustment::Change(-2)), "metric 40: -10:0 excludes its lower bound");
        assert_eq!(adj(inn, 1.0), None);
    }

    /// The user guide's worked example: threshold 50, PercentChangeInCapacity, capacity 10.
    /// Scale-out 0..10 → 0, 10..20 → +10%, 20.. → +30%; scale-in -10..0 → 0, -20..-10 → -10%,
    /// ..-20 → -30%.
    #[test]
    fn user_guide_worked_example() {
        let out = steps("0:10:+0%,10:20:+10%,20::+30%");
        let inn = steps("-10:0:-0%,-20:-10:-10%,:-20:-30%");
        let cases = [
            (&out, 55.0, 10),
            (&out, 60.0, 11),
            (&out, 69.9, 11),
            (&out, 70.0, 13),
            (&out, 100.0, 13),
            (&inn, 45.0, 10),
            (&inn, 40.1, 10),
            (&inn, 40.0, 9),
            (&inn, 30.1, 9),
            (&inn, 30.0, 7),
            (&inn, 10.0, 7),
        ];
        for (s, metric, want) in cases {
            let b = breach(&[metric], 50.0).unwrap();
            let step = select_step(s, b).unwrap_or_else(|| panic!("no step for {metric}"));
            assert_eq!(raw_target(10, step.adjustment), want, "metric {metric}");
        }
    }

    #[test]
    fn seed_alarm_breach() {
        let b = breach(&[85.0, 90.0], 70.0).unwrap();
        assert_eq!(b, 17.5);
        assert_eq!(adj("0:15:+1,15::+2", b), Some(Adjustment::Change(2)));
        assert_eq!(adj("0:15:+1,15::+2", breach(&[75.0, 80.0], 70.0).unwrap()), Some(Adjustment::Change(1)));
        assert_eq!(breach(&[], 70.0), None);
        assert!(steps("+2").bare().is_some());
        assert!(steps("0::+2").bare().is_none());
    }

    #[test]
    fn percent_rounding_and_min_magnitude() {
        // (current, percent, min magnitude, change)
        for (cur, p, m, want) in [
            (10, 127.0, 1, 12),  // 12.7 → 12 (rounded down)
            (3, 22.3, 1, 1),     // 0.67 → 1
            (2, -29.0, 1, -1),   // -0.58 → -1
            (10, -66.7, 1, -6),  // -6.67 → -6 (rounded up)
            (4, 25.0, 2, 2),     // the AAS example: 25% of 4 is 1, MinAdjustmentMagnitude 2 → 2
            (4, 25.0, 1, 1),
            (0, 50.0, 1, 0),     // nothing to take a percentage of
            (8, -50.0, 1, -4),
        ] {
            assert_eq!(round_percent_change(cur, p, m), want, "{cur} {p}% min {m}");
        }
    }

    fn input(current: u32, a: Adjustment, state: Cooldowns, now: i64) -> Input {
        Input { current, bounds: Bounds { min: 2, max: 12 }, adjustment: a, cooldown: 300, state, now, rollout_in_progress: false, protected: 0 }
    }

    #[test]
    fn bounds_hold() {
        let d = decide(&input(4, Adjustment::Change(2), Cooldowns::default(), 1000));
        assert!(matches!(d, Decision::Scale { from: 4, to: 6, held: None, .. }), "{d:?}");
        let d = decide(&input(11, Adjustment::Change(2), Cooldowns::default(), 1000));
        assert!(matches!(d, Decision::Scale { from: 11, to: 12, held: Some(Held::AtMax), .. }), "{d:?}");
        let d = decide(&input(12, Adjustment::Change(2), Cooldowns::default(), 1000));
        assert!(matches!(d, Decision::Refused { refusal: Refusal::AtMax, .. }), "{d:?}");
        // Above max by hand: a scale-out never lowers.
        let d = decide(&input(15, Adjustment::Change(1), Cooldowns::default(), 1000));
        assert!(matches!(d, Decision::Refused { refusal: Refusal::AtMax, .. }), "{d:?}");
        let d = decide(&input(3, Adjustment::Change(-3), Cooldowns::default(), 1000));
        assert!(matches!(d, Decision::Scale { from: 3, to: 2, .. }), "{d:?}");
        let d = decide(&input(2, Adjustment::Change(-1), Cooldowns::default(), 1000));
        assert!(matches!(d, Decision::Refused { refusal: Refusal::AtMin, .. }), "{d:?}");
        // Below min by hand: a scale-in never raises.
        let d = decide(&input(1, Adjustment::Change(-1), Cooldowns::default(), 1000));
        assert!(matches!(d, Decision::Refused { refusal: Refusal::AtMin, .. }), "{d:?}");
        let d = decide(&input(4, Adjustment::Exact(20), Cooldowns::default(), 1000));
        assert!(matches!(d, Decision::Scale { to: 12, .. }), "{d:?}");
        let d = decide(&input(4, Adjustment::Exact(4), Cooldowns::default(), 1000));
        assert!(matches!(d, Decision::Nothing { .. }), "{d:?}");
    }

    /// The AAS cooldown example: +2 starts a cooldown; +3 during it adds only 1; +2 again adds 0.
    #[test]
    fn scale_out_cooldown_applies_only_the_excess() {
        let Decision::Scale { to, next, .. } = decide(&input(4, Adjustment::Change(2), Cooldowns::default(), 1000)) else { panic!() };
        assert_eq!((to, next.last_scale_out_added), (6, 2));
        let Decision::Scale { from, to, next: n2, .. } = decide(&input(6, Adjustment::Change(3), next.clone(), 1100)) else { panic!() };
        assert_eq!((from, to, n2.last_scale_out_added), (6, 7, 3));
        assert!(matches!(decide(&input(6, Adjustment::Change(2), next.clone(), 1100)), Decision::Nothing { .. }));
        // After the cooldown the full step applies again.
        let Decision::Scale { to, .. } = decide(&input(6, Adjustment::Change(2), next, 1300)) else { panic!() };
        assert_eq!(to, 8);
    }

    #[test]
    fn scale_in_waits_scale_out_does_not() {
        let after_in = Cooldowns { last_scale_in_at: Some(1000), scale_in_cooldown: 300, ..Default::default() };
        let d = decide(&input(8, Adjustment::Change(-1), after_in.clone(), 1200));
        assert!(matches!(d, Decision::Refused { refusal: Refusal::InCooldown, .. }), "{d:?}");
        let d = decide(&input(8, Adjustment::Change(-1), after_in.clone(), 1300));
        assert!(matches!(d, Decision::Scale { to: 7, .. }), "{d:?}");
        // A scale-out during a scale-in cooldown acts at once and ends it.
        let Decision::Scale { to, next, .. } = decide(&input(8, Adjustment::Change(1), after_in, 1200)) else { panic!() };
        assert_eq!((to, next.last_scale_in_at), (9, None));
        // Scale-in also waits for a running scale-out cooldown.
        let d = decide(&input(9, Adjustment::Change(-1), next, 1250));
        assert!(matches!(d, Decision::Refused { refusal: Refusal::InCooldown, .. }), "{d:?}");
    }

    #[test]
    fn rollout_blocks_scale_in_only() {
        let mut i = input(6, Adjustment::Change(-2), Cooldowns::default(), 1000);
        i.rollout_in_progress = true;
        assert!(matches!(decide(&i), Decision::Refused { refusal: Refusal::RolloutInProgress, .. }));
        i.adjustment = Adjustment::Change(2);
        assert!(matches!(decide(&i), Decision::Scale { to: 8, .. }));
    }

    /// Protected tasks are a floor under scale-in (task-scale-in-protection.html: ECS does not
    /// stop them on scale-in), never a reason to scale out, and never lift a count above where it is.
    #[test]
    fn scale_in_stops_at_the_protected_tasks() {
        // (current, adjustment, protected, decision as (to, held) or refusal)
        type Want = Result<(u32, Option<Held>), Refusal>;
        let cases: [(u32, i64, u32, Want); 8] = [
            (8, -4, 0, Ok((4, None))),
            (8, -4, 3, Ok((4, None))),                       // the floor is below the target
            (8, -4, 6, Ok((6, Some(Held::Protected(6))))),   // held at the 6 protected
            (8, -7, 5, Ok((5, Some(Held::Protected(5))))),   // protection above autopilot:min 2
            (8, -7, 1, Ok((2, Some(Held::AtMin)))),          // autopilot:min above protection
            (8, -1, 8, Err(Refusal::TasksProtected)),        // every task protected
            (8, -1, 12, Err(Refusal::TasksProtected)),       // more protected than desired (a count lowered by hand)
            (2, -1, 5, Err(Refusal::AtMin)),                 // the bound speaks first
        ];
        for (current, change, protected, want) in cases {
            let mut i = input(current, Adjustment::Change(change), Cooldowns::default(), 1000);
            i.protected = protected;
            let got = match decide(&i) {
                Decision::Scale { to, held, .. } => Ok((to, held)),
                Decision::Refused { refusal, .. } => Err(refusal),
                d => panic!("{d:?}"),
            };
            assert_eq!(got, want, "{current} {change:+} with {protected} protected");
        }
        // A scale-out ignores protection.
        let mut i = input(4, Adjustment::Change(2), Cooldowns::default(), 1000);
        i.protected = 9;
        assert!(matches!(decide(&i), Decision::Scale { to: 6, held: None, .. }));
    }
}
