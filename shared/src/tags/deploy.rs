//! `autopilot:deploy`: which pushed image tags roll a service (DESIGN.md, "Opt-in lives on the
//! resources").
//!
//! The value lives on an ECS service, and ECS refuses tag values outside
//! `[\p{L}\p{Z}\p{N}_.:/=+\-@]*` (the `TagValue` shape of ECS in botocore's model; CloudFormation's
//! `AWS::ECS::Service Tag` page says the same). So the grammar has no `*`, `?`, `,` or `%`: rules
//! are keywords separated by spaces, and every value this parser accepts is one ECS accepts.
//!
//! | rule           | deploys a pushed tag T when                                        |
//! |----------------|--------------------------------------------------------------------|
//! | `TAG`          | T is exactly TAG (a re-push of it with a new digest deploys)       |
//! | `prefix:TEXT`  | T starts with TEXT                                                 |
//! | `semver`       | T is a release version (`v` allowed, `v2` = 2.0.0, no pre-release) |
//! | `semver:2`     | … within major 2; `semver:2.4` within 2.4                          |
//! | `any`          | always                                                             |
//!
//! "Newer than what runs" is decided by the deployer against the running image (semver order
//! for version tags, push time otherwise); the rules only say which tags are candidates.

use std::fmt;

use super::{TagError, TAG_DEPLOY};

/// The form, as an error message states it.
pub const DEPLOY_EXPECTED: &str =
    "space-separated rules: a tag (latest, main, v2.1.0), prefix:TEXT, semver, semver:MAJOR, semver:MAJOR.MINOR or any";

/// Longest image tag Docker and ECR accept in a reference (`[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`).
const TAG_MAX: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SemverRange {
    /// `semver`
    Any,
    /// `semver:2`
    Major(u64),
    /// `semver:2.4`
    Minor(u64, u64),
}

impl SemverRange {
    pub fn contains(&self, v: &semver::Version) -> bool {
        match *self {
            SemverRange::Any => true,
            SemverRange::Major(major) => v.major == major,
            SemverRange::Minor(major, minor) => v.major == major && v.minor == minor,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DeployRule {
    /// Exactly this tag.
    Tag(String),
    /// Tags starting with this text.
    Prefix(String),
    /// Release versions in the range.
    Semver(SemverRange),
    /// Every tag.
    Any,
}

impl DeployRule {
    pub fn matches(&self, tag: &str) -> bool {
        match self {
            DeployRule::Tag(t) => t == tag,
            DeployRule::Prefix(p) => tag.starts_with(p.as_str()),
            DeployRule::Semver(range) => release_version(tag).is_some_and(|v| range.contains(&v)),
            DeployRule::Any => true,
        }
    }

    /// Whether the rule is about versions: its candidates are ordered by semver.
    pub fn is_semver(&self) -> bool {
        matches!(self, DeployRule::Semver(_))
    }
}

impl fmt::Display for DeployRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeployRule::Tag(t) => f.write_str(t),
            DeployRule::Prefix(p) => write!(f, "prefix:{p}"),
            DeployRule::Semver(SemverRange::Any) => f.write_str("semver"),
            DeployRule::Semver(SemverRange::Major(m)) => write!(f, "semver:{m}"),
            DeployRule::Semver(SemverRange::Minor(m, n)) => write!(f, "semver:{m}.{n}"),
            DeployRule::Any => f.write_str("any"),
        }
    }
}

/// The parsed value of `autopilot:deploy`: at least one rule, in the order written, without
/// duplicates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployRules(Vec<DeployRule>);

impl DeployRules {
    pub fn parse(value: &str) -> Result<Self, TagError> {
        if value.contains(['*', '?', ',']) {
            let (message, instead) = migration(value);
            return Err(TagError::new(TAG_DEPLOY, value, message).with_suggestion(instead));
        }
        if let Some(c) = value.chars().find(|c| c.is_control()) {
            return Err(TagError::new(TAG_DEPLOY, value, format!("{DEPLOY_EXPECTED}, separated by spaces (found the control character {c:?})")));
        }
        let mut rules: Vec<DeployRule> = Vec::new();
        for word in value.split(|c: char| c.is_whitespace()).filter(|w| !w.is_empty()) {
            let rule = parse_rule(word).map_err(|why| TagError::new(TAG_DEPLOY, value, format!("{DEPLOY_EXPECTED}; {why}")))?;
            if !rules.contains(&rule) {
                rules.push(rule);
            }
        }
        if rules.is_empty() {
            return Err(TagError::new(TAG_DEPLOY, value, format!("{DEPLOY_EXPECTED} (the value is empty)")));
        }
        Ok(DeployRules(rules))
    }

    /// The first rule that lets `tag` deploy.
    pub fn matching(&self, tag: &str) -> Option<&DeployRule> {
        self.0.iter().find(|r| r.matches(tag))
    }

    pub fn matches(&self, tag: &str) -> bool {
        self.matching(tag).is_some()
    }

    pub fn rules(&self) -> &[DeployRule] {
        &self.0
    }
}

impl fmt::Display for DeployRules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

fn parse_rule(word: &str) -> Result<DeployRule, String> {
    match word {
        "any" => return Ok(DeployRule::Any),
        "semver" => return Ok(DeployRule::Semver(SemverRange::Any)),
        _ => {}
    }
    if let Some(range) = word.strip_prefix("semver:") {
        return parse_range(range).map(DeployRule::Semver).ok_or_else(|| format!("{word:?} is not semver:MAJOR or semver:MAJOR.MINOR (e.g. semver:2, semver:2.4)"));
    }
    if let Some(text) = word.strip_prefix("prefix:") {
        return if is_tag(text) {
            Ok(DeployRule::Prefix(text.to_string()))
        } else {
            Err(format!("{word:?}: the text after prefix: must be the start of an image tag (letters, digits, _ . -, not starting with . or -)"))
        };
    }
    if is_tag(word) {
        return Ok(DeployRule::Tag(word.to_string()));
    }
    if let Some((head, _)) = word.split_once(':') {
        return Err(format!("{word:?}: {head}: is not a rule (image tags cannot contain ':')"));
    }
    Err(format!("{word:?} is not an image tag (1 to {TAG_MAX} of letters, digits, _ . -, not starting with . or -)"))
}

fn parse_range(s: &str) -> Option<SemverRange> {
    let number = |n: &str| (!n.is_empty() && n.len() <= 18 && n.bytes().all(|b| b.is_ascii_digit())).then(|| n.parse::<u64>().ok()).flatten();
    match s.split_once('.') {
        None => number(s).map(SemverRange::Major),
        Some((major, minor)) => Some(SemverRange::Minor(number(major)?, number(minor)?)),
    }
}

/// An image tag as Docker's reference grammar and ECR accept it.
pub fn is_tag(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= TAG_MAX
        && s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

/// The error for a value written in the old glob grammar (`v*`, `release-*,main`, `*`), and the
/// value to write instead when there is one.
fn migration(value: &str) -> (String, Option<String>) {
    let mut rules: Vec<String> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    for item in value.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let stem = item.strip_suffix('*');
        if item == "*" {
            rules.push("any".into());
        } else if item.starts_with("sha256") {
            notes.push(format!("{item:?} matched untagged pushes, which never deploy now"));
        } else if let Some(stem) = stem.filter(|s| is_tag(s)) {
            rules.push(format!("prefix:{stem}"));
            if stem == "v" || stem == "V" {
                notes.push("semver deploys only version tags newer than the running one".into());
            }
        } else if is_tag(item) {
            rules.push(item.to_string());
        } else {
            notes.push(format!("{item:?} has no equivalent: use a tag, prefix:TEXT, semver or any"));
        }
    }
    rules.dedup();
    let suggestion = (!rules.is_empty()).then(|| rules.join(" "));
    let instead = if rules.is_empty() {
        String::from("rules such as semver, prefix:release- or any")
    } else {
        format!("autopilot:deploy=\"{}\"", rules.join(" "))
    };
    let mut out = format!(
        "{DEPLOY_EXPECTED}. This is the old glob form, which ECS refuses in tag values ('*', '?' and ',' are not allowed); write {instead} instead"
    );
    if !notes.is_empty() {
        out.push_str(" (");
        out.push_str(&notes.join("; "));
        out.push(')');
    }
    (out, suggestion)
}

/// Lenient semantic version of an image tag: optional leading `v`, missing minor and patch are 0
/// (`v2` = 2.0.0, `2.1` = 2.1.0), pre-release and build parts as semver writes them.
pub fn semver_tag(tag: &str) -> Option<semver::Version> {
    let t = tag.strip_prefix('v').or_else(|| tag.strip_prefix('V')).unwrap_or(tag);
    if let Ok(v) = semver::Version::parse(t) {
        return Some(v);
    }
    let (core, rest) = match t.find(['-', '+']) {
        Some(i) => (&t[..i], &t[i..]),
        None => (t, ""),
    };
    let parts: Vec<&str> = core.split('.').collect();
    if parts.is_empty() || parts.len() > 3 || parts.iter().any(|p| p.is_empty() || !p.chars().all(|c| c.is_ascii_digit())) {
        return None;
    }
    let mut padded = parts.clone();
    padded.resize(3, "0");
    semver::Version::parse(&format!("{}{rest}", padded.join("."))).ok()
}

/// A release version: a semver tag without a pre-release part (`v3.1.0-rc.1` is not one).
pub fn release_version(tag: &str) -> Option<semver::Version> {
    semver_tag(tag).filter(|v| v.pre.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(v: &str) -> DeployRules {
        DeployRules::parse(v).unwrap_or_else(|e| panic!("{v:?}: {e}"))
    }

    #[test]
    fn every_rule_kind_parses_and_prints_back() {
        let cases: &[(&str, &[DeployRule], &str)] = &[
            ("latest", &[DeployRule::Tag("latest".into())], "latest"),
            ("v2.1.0", &[DeployRule::Tag("v2.1.0".into())], "v2.1.0"),
            ("prefix:release-", &[DeployRule::Prefix("release-".into())], "prefix:release-"),
            ("semver", &[DeployRule::Semver(SemverRange::Any)], "semver"),
            ("semver:2", &[DeployRule::Semver(SemverRange::Major(2))], "semver:2"),
            ("semver:2.4", &[DeployRule::Semver(SemverRange::Minor(2, 4))], "semver:2.4"),
            ("any", &[DeployRule::Any], "any"),
            ("  main   prefix:hotfix-  ", &[DeployRule::Tag("main".into()), DeployRule::Prefix("hotfix-".into())], "main prefix:hotfix-"),
            ("main main", &[DeployRule::Tag("main".into())], "main"),
            // U+00A0 is a \p{Z} space: ECS accepts it, so the parser separates on it too.
            ("main\u{a0}latest", &[DeployRule::Tag("main".into()), DeployRule::Tag("latest".into())], "main latest"),
        ];
        for (value, want, printed) in cases {
            let r = rules(value);
            assert_eq!(r.rules(), *want, "{value:?}");
            assert_eq!(r.to_string(), *printed, "{value:?}");
            assert_eq!(rules(printed), r, "round trip of {value:?}");
        }
    }

    #[test]
    fn which_tags_each_rule_deploys() {
        let cases: &[(&str, &str, bool)] = &[
            ("latest", "latest", true),
            ("latest", "latest2", false),
            ("v2.1.0", "v2.1.0", true),
            ("v2.1.0", "v2.1.1", false),
            ("prefix:release-", "release-42", true),
            ("prefix:release-", "main", false),
            ("prefix:release-", "release", false),
            ("semver", "v2", true),
            ("semver", "2.1", true),
            ("semver", "v3.1.0", true),
            ("semver", "v3.1.0-rc.1", false),
            ("semver", "v3.1.0+build.7", true),
            ("semver", "latest", false),
            ("semver", "v", false),
            ("semver", "sha256-0123.sig", false),
            ("semver:2", "v2.5.0", true),
            ("semver:2", "v3.0.0", false),
            ("semver:2", "v2.0.0-beta", false),
            ("semver:2.4", "v2.4.9", true),
            ("semver:2.4", "v2.5.0", false),
            ("semver:2.4", "2.4", true),
            ("any", "anything-at.all", true),
            ("main prefix:release- semver:1", "v1.2", true),
            ("main prefix:release- semver:1", "v2.0", false),
            ("main prefix:release- semver:1", "main", true),
        ];
        for (value, tag, want) in cases {
            assert_eq!(rules(value).matches(tag), *want, "{value:?} vs {tag:?}");
        }
        assert!(rules("main semver").matching("v2").is_some_and(DeployRule::is_semver));
        assert!(!rules("v2 semver").matching("v2").is_some_and(DeployRule::is_semver), "the first rule that matches counts");
    }

    #[test]
    fn refusals_name_the_tag_the_value_and_the_form() {
        let cases: &[(&str, &str)] = &[
            ("", "the value is empty"),
            ("   ", "the value is empty"),
            ("semver:x", "semver:MAJOR or semver:MAJOR.MINOR"),
            ("semver:2.4.1", "semver:MAJOR or semver:MAJOR.MINOR"),
            ("semver:", "semver:MAJOR or semver:MAJOR.MINOR"),
            ("prefix:", "the text after prefix:"),
            ("prefix:-x", "the text after prefix:"),
            ("regex:v", "is not a rule"),
            ("v2/x", "is not an image tag"),
            (".hidden", "is not an image tag"),
            ("main\tlatest", "control character"),
            ("a=b", "is not an image tag"),
        ];
        for (value, want) in cases {
            let e = DeployRules::parse(value).expect_err(value);
            assert_eq!(e.tag, TAG_DEPLOY);
            let text = e.to_string();
            assert!(text.contains(want), "{value:?}: {text}");
            assert!(text.contains("space-separated rules"), "{value:?}: {text}");
        }
    }

    #[test]
    fn old_globs_get_the_value_to_write_instead() {
        let cases: &[(&str, &str)] = &[
            ("*", "write autopilot:deploy=\"any\" instead"),
            ("v*", "write autopilot:deploy=\"prefix:v\" instead (semver deploys only version tags newer"),
            ("release-*,main", "write autopilot:deploy=\"prefix:release- main\" instead"),
            ("v*, release-*", "write autopilot:deploy=\"prefix:v prefix:release-\" instead"),
            ("main,latest", "write autopilot:deploy=\"main latest\" instead"),
            ("sha256:*", "matched untagged pushes, which never deploy now"),
            ("*-prod", "\"*-prod\" has no equivalent"),
            ("release-?.*", "has no equivalent"),
        ];
        for (value, want) in cases {
            let text = DeployRules::parse(value).expect_err(value).to_string();
            assert!(text.contains(want), "{value:?}: {text}");
            assert!(text.contains("ECS refuses"), "{value:?}: {text}");
            assert!(text.starts_with(&format!("tag autopilot:deploy={value:?}")), "{text}");
        }
        let e = DeployRules::parse("release-*,main").unwrap_err();
        assert_eq!(e.suggestion.as_deref(), Some("prefix:release- main"));
        assert_eq!(DeployRules::parse("*-prod").unwrap_err().suggestion, None);
    }

    #[test]
    fn lenient_semver() {
        assert_eq!(semver_tag("v2"), Some(semver::Version::new(2, 0, 0)));
        assert_eq!(semver_tag("1.2"), Some(semver::Version::new(1, 2, 0)));
        assert!(semver_tag("v1.2.3-rc.1").unwrap() < semver_tag("v1.2.3").unwrap());
        assert_eq!(semver_tag("latest"), None);
        assert_eq!(semver_tag("v"), None);
        assert_eq!(semver_tag("1.2.3.4"), None);
        assert_eq!(release_version("v1.2.3-rc.1"), None);
        assert_eq!(release_version("v1.2.3"), Some(semver::Version::new(1, 2, 3)));
    }
}
