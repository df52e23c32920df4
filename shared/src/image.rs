//! Container image references: `[registry[:port]/]repository[:tag][@digest]`, with the
//! repository possibly containing slashes (docker's reference grammar).
//!
//! Hand-written rather than a dependency: the grammar is small, and the OCI crates that parse it
//! pull in much more than the Lambda needs (cold start and zip size are product targets).

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// Registry host (with port), lower-cased; `None` means Docker Hub.
    pub registry: Option<String>,
    pub repository: String,
    pub tag: Option<String>,
    /// `sha256:…`
    pub digest: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid image reference {reference:?}: {reason}")]
pub struct ImageRefError {
    pub reference: String,
    pub reason: &'static str,
}

impl ImageRef {
    pub fn parse(reference: &str) -> Result<Self, ImageRefError> {
        let fail = |reason| ImageRefError { reference: reference.chars().take(300).collect(), reason };
        if reference.is_empty() || reference.len() > 4096 {
            return Err(fail("empty or longer than 4096 characters"));
        }
        if reference.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(fail("contains whitespace or control characters"));
        }
        let (name_and_tag, digest) = match reference.split_once('@') {
            Some((n, d)) => {
                let (algo, hex) = d.split_once(':').ok_or_else(|| fail("digest must be ALGORITHM:HEX"))?;
                if algo.is_empty() || hex.len() < 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
                    return Err(fail("digest must be ALGORITHM:HEX with at least 32 hex digits"));
                }
                (n, Some(d.to_ascii_lowercase()))
            }
            None => (reference, None),
        };
        // The tag separator is a ':' after the last '/', so a registry port is not a tag.
        let last_slash = name_and_tag.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name_and_tag[last_slash..].rfind(':') {
            Some(i) => {
                let at = last_slash + i;
                (&name_and_tag[..at], Some(&name_and_tag[at + 1..]))
            }
            None => (name_and_tag, None),
        };
        if let Some(t) = tag {
            let valid = !t.is_empty()
                && t.len() <= 128
                && t.chars().next().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
                && t.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
            if !valid {
                return Err(fail("tag must be 1-128 of [A-Za-z0-9_.-], not starting with . or -"));
            }
        }
        let (registry, repository) = match name.split_once('/') {
            Some((first, rest)) if first.contains('.') || first.contains(':') || first == "localhost" => {
                (Some(first.to_ascii_lowercase()), rest)
            }
            _ => (None, name),
        };
        let repo_ok = !repository.is_empty()
            && repository.len() <= 256
            && repository.split('/').all(|part| {
                !part.is_empty()
                    && part.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
                    && part.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
            });
        if !repo_ok {
            return Err(fail("repository must be lowercase path components of [a-z0-9._-]"));
        }
        if let Some(r) = &registry {
            if r.is_empty() || r.starts_with(':') || r.ends_with(':') {
                return Err(fail("registry host is empty"));
            }
        }
        Ok(ImageRef { registry, repository: repository.to_string(), tag: tag.map(String::from), digest })
    }

    /// Same registry and repository (tags and digests ignored).
    pub fn same_repository(&self, registry: &str, repository: &str) -> bool {
        self.registry.as_deref() == Some(&registry.to_ascii_lowercase()) && self.repository == repository
    }

    /// `registry/repository`
    pub fn name(&self) -> String {
        match &self.registry {
            Some(r) => format!("{r}/{}", self.repository),
            None => self.repository.clone(),
        }
    }

    pub fn with_digest(&self, digest: &str) -> String {
        format!("{}@{digest}", self.name())
    }

    pub fn with_tag(&self, tag: &str) -> String {
        format!("{}:{tag}", self.name())
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// The private ECR registry host of an account and region.
pub fn ecr_registry(account: &str, region: &str) -> String {
    let suffix = if region.starts_with("cn-") { "amazonaws.com.cn" } else { "amazonaws.com" };
    format!("{account}.dkr.ecr.{region}.{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn parses_the_reference_grammar() {
        let cases: &[(&str, Option<&str>, &str, Option<&str>)] = &[
            ("nginx", None, "nginx", None),
            ("srirajan/auth", None, "srirajan/auth", None),
            ("srirajan/auth:v1", None, "srirajan/auth", Some("v1")),
            ("123456789012.dkr.ecr.us-east-1.amazonaws.com/auth:v1", Some("123456789012.dkr.ecr.us-east-1.amazonaws.com"), "auth", Some("v1")),
            ("123456789012.dkr.ecr.us-east-1.amazonaws.com/team/svc/auth", Some("123456789012.dkr.ecr.us-east-1.amazonaws.com"), "team/svc/auth", None),
            ("localhost:5000/auth:v2", Some("localhost:5000"), "auth", Some("v2")),
            ("Registry.Example.com:5000/a/b:1.2.3", Some("registry.example.com:5000"), "a/b", Some("1.2.3")),
            ("localhost/auth", Some("localhost"), "auth", None),
        ];
        for (input, registry, repository, tag) in cases {
            let r = ImageRef::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(r.registry.as_deref(), *registry, "{input}");
            assert_eq!(r.repository, *repository, "{input}");
            assert_eq!(r.tag.as_deref(), *tag, "{input}");
        }
    }

    #[test]
    fn tag_and_digest_together_with_a_port() {
        let s = format!("host:5000/team/auth:v1@{D}");
        let r = ImageRef::parse(&s).unwrap();
        assert_eq!(r.registry.as_deref(), Some("host:5000"));
        assert_eq!(r.repository, "team/auth");
        assert_eq!(r.tag.as_deref(), Some("v1"));
        assert_eq!(r.digest.as_deref(), Some(D));
        assert_eq!(r.to_string(), s);
        assert_eq!(r.with_digest(D), format!("host:5000/team/auth@{D}"));
        assert_eq!(r.with_tag("v2"), "host:5000/team/auth:v2");
    }

    #[test]
    fn repository_match_is_exact_on_registry_and_path() {
        let reg = ecr_registry("123456789012", "us-east-1");
        let r = ImageRef::parse(&format!("{reg}/auth:v1")).unwrap();
        assert!(r.same_repository(&reg, "auth"));
        assert!(!r.same_repository(&reg, "auth2"));
        assert!(!r.same_repository(&ecr_registry("123456789012", "eu-west-1"), "auth"));
        let nested = ImageRef::parse(&format!("{reg}/team/auth@{D}")).unwrap();
        assert!(!nested.same_repository(&reg, "auth"));
        assert!(nested.same_repository(&reg, "team/auth"));
        assert_eq!(ecr_registry("1", "cn-north-1"), "1.dkr.ecr.cn-north-1.amazonaws.com.cn");
    }

    #[test]
    fn rejects_garbage_without_panicking() {
        for bad in ["", " ", "UPPER/case", "a//b", "a:", "a@sha256:xyz", "a:-bad", "a@", "a\u{0}b", &"x".repeat(5000), "host:/a", "/a", "a/"] {
            assert!(ImageRef::parse(bad).is_err(), "{bad:?} should fail");
        }
    }
}
