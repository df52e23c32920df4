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

    /// A repository of this private ECR registry, whichever of its hosts the reference uses
    /// ([`EcrRegistry::is_host`]).
    pub fn in_ecr(&self, registry: &EcrRegistry, repository: &str) -> bool {
        self.registry.as_deref().is_some_and(|h| registry.is_host(h)) && self.repository == repository
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

/// Manifest media types of images a container runtime runs: Docker schema 2 (and its manifest
/// list), OCI image manifests and indexes (the allow-list of the OCI image-spec's media types;
/// Docker schema 1 is left out: current runtimes no longer pull it).
pub const RUNNABLE_MANIFESTS: &[&str] = &[
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
];

/// Config media types of container images (ECR reports the manifest's config or artifact type
/// as `artifact-media-type` / `artifactMediaType`); anything else is an OCI artifact (a
/// signature, an attestation, an SBOM, a Helm chart) that no task can run.
pub const RUNNABLE_CONFIGS: &[&str] = &["application/vnd.docker.container.image.v1+json", "application/vnd.oci.image.config.v1+json"];

/// Why an image ECR reports is not one a task can run, or `None` when it is: its tag is one
/// signing tools write (cosign's `sha256-<hex>.sig`, `.att`, `.sbom`, and the OCI referrers tag
/// `sha256-<hex>`), or its media types are not an image's. Absent media types (the ECR user
/// guide's push sample has none) say nothing either way: the deployer also checks what
/// DescribeImages reports.
///
/// cosign's classic signatures and buildx's attestation manifests use the OCI image config media
/// type, so media types alone cannot tell them from images: the tag does for cosign, and buildx
/// pushes its attestations untagged (untagged pushes never deploy).
pub fn not_runnable(tag: Option<&str>, manifest_media_type: Option<&str>, artifact_media_type: Option<&str>) -> Option<String> {
    if let Some(t) = tag.filter(|t| is_signature_tag(t)) {
        return Some(format!("tag {t} is a signature, attestation or SBOM of another image (cosign / OCI referrers tag scheme)"));
    }
    let media = |m: Option<&str>| m.map(str::trim).filter(|m| !m.is_empty()).map(|m| m.split(';').next().unwrap_or(m).trim().to_ascii_lowercase());
    if let Some(m) = media(manifest_media_type).filter(|m| !RUNNABLE_MANIFESTS.contains(&m.as_str())) {
        return Some(format!("manifest media type {m} is not a container image's"));
    }
    if let Some(a) = media(artifact_media_type).filter(|a| !RUNNABLE_CONFIGS.contains(&a.as_str())) {
        return Some(format!("artifact media type {a} is not a container image's"));
    }
    None
}

/// `sha256-<64 hex>` optionally followed by `.<suffix>`: the tags cosign (`.sig`, `.att`, `.sbom`)
/// and the OCI distribution-spec's referrers tag schema (`<alg>-<digest cut to 64>`) give to
/// artifacts about another image.
pub fn is_signature_tag(tag: &str) -> bool {
    let Some(rest) = ["sha256-", "sha384-", "sha512-"].iter().find_map(|p| tag.strip_prefix(p)) else { return false };
    let (hex, suffix) = rest.split_once('.').map_or((rest, None), |(h, s)| (h, Some(s)));
    hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) && suffix.is_none_or(|s| !s.is_empty())
}

/// A repository name ECR accepts: 2 to 256 characters, `/`-separated components of lowercase
/// letters and digits joined by `.`, `_`, `__` or runs of `-` (the `RepositoryName` shape of ECR's
/// API model: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`).
pub fn is_ecr_repository_name(name: &str) -> bool {
    fn component(c: &str) -> bool {
        let b = c.as_bytes();
        let word = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
        let (mut i, mut last_word) = (0, false);
        while i < b.len() {
            if word(b[i]) {
                last_word = true;
                i += 1;
                continue;
            }
            // A separator needs a word before it and after it: `.`, `_`, `__` or `-+`.
            if !last_word {
                return false;
            }
            let sep = match b[i] {
                b'.' => 1,
                b'_' => if b.get(i + 1) == Some(&b'_') { 2 } else { 1 },
                b'-' => b[i..].iter().take_while(|&&x| x == b'-').count(),
                _ => return false,
            };
            i += sep;
            last_word = false;
        }
        last_word
    }
    (2..=256).contains(&name.len()) && name.split('/').all(component)
}

/// A 12-digit AWS account id (ECR's `RegistryId`).
pub fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// The private ECR registry host of an account and region, in its first documented form
/// (`<account>.dkr.ecr.<region>.<partition's DNS suffix>`): what messages show. Which hosts name
/// the same registry is [`EcrRegistry::is_host`]'s question.
pub fn ecr_registry(account: &str, region: &str) -> String {
    format!("{account}.dkr.ecr.{region}.{}", partition_of(region).suffixes[0])
}

/// One AWS partition as far as ECR registry hosts go: its regions' prefix and the domains its
/// registry hosts end with (the first is the partition's DNS suffix).
struct Partition {
    /// `None`: the commercial partition, every region no other prefix claims.
    region_prefix: Option<&'static str>,
    suffixes: &'static [&'static str],
}

/// The partitions of botocore's `endpoints.json` (`regionRegex`, `dnsSuffix`), with the
/// dual-stack registry domains of AWS's ECR credential helper (awslabs/amazon-ecr-credential-helper,
/// `ecr-login/api/client.go`): `on.aws` for the commercial and GovCloud partitions (ECR endpoints
/// page of the General Reference: `dkr-ecr.<region>.on.aws`), `on.amazonwebservices.com.cn` for
/// China.
const PARTITIONS: &[Partition] = &[
    Partition { region_prefix: Some("cn-"), suffixes: &["amazonaws.com.cn", "on.amazonwebservices.com.cn"] },
    Partition { region_prefix: Some("us-gov-"), suffixes: &["amazonaws.com", "on.aws"] },
    Partition { region_prefix: Some("us-isob-"), suffixes: &["sc2s.sgov.gov"] },
    Partition { region_prefix: Some("us-isof-"), suffixes: &["csp.hci.ic.gov"] },
    Partition { region_prefix: Some("us-iso-"), suffixes: &["c2s.ic.gov"] },
    Partition { region_prefix: Some("eu-isoe-"), suffixes: &["cloud.adc-e.uk"] },
    Partition { region_prefix: Some("eusc-"), suffixes: &["amazonaws.eu"] },
    Partition { region_prefix: None, suffixes: &["amazonaws.com", "on.aws"] },
];

fn partition_of(region: &str) -> &'static Partition {
    PARTITIONS.iter().find(|p| p.region_prefix.is_none_or(|prefix| region.starts_with(prefix))).expect("the last partition takes every region")
}

/// The registry (account, region) a host names, when it is a private ECR registry host in any of
/// the forms ECR answers to, else `None`:
/// `<account>.dkr.ecr.<region>.<suffix>` (IPv4), `<account>.dkr.ecr-fips.<region>.<suffix>` (FIPS),
/// `<account>.dkr-ecr.<region>.on.aws` (dual-stack), `<account>.dkr-ecr-fips.<region>.on.aws`
/// (dual-stack FIPS), in every partition (China, GovCloud, the ISO partitions, the European
/// Sovereign Cloud). Sources: the Amazon ECR endpoints page of the AWS General Reference
/// (https://docs.aws.amazon.com/general/latest/gr/ecr.html) for the commercial forms; AWS's ECR
/// credential helper, which accepts `dkr.ecr` and `dkr-ecr` (each optionally `-fips`) before any
/// partition's registry domain, for the others (China dual-stack is spelled both ways there).
/// The domain must be the region's own partition's, so a look-alike (`….amazonaws.com.evil.example`)
/// or a host with a port is not ECR. Hosts are compared lower-cased, as [`ImageRef`] keeps them.
pub fn ecr_host(host: &str) -> Option<(&str, &str)> {
    let (account, rest) = host.split_once('.')?;
    if !is_account_id(account) {
        return None;
    }
    let rest = ["dkr.ecr-fips.", "dkr.ecr.", "dkr-ecr-fips.", "dkr-ecr."].iter().find_map(|s| rest.strip_prefix(s))?;
    let (region, domain) = rest.split_once('.')?;
    // A region is lowercase words joined by single hyphens, ending in a number (`us-east-1`).
    let region_ok = region.split('-').count() >= 3
        && region.split('-').all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()))
        && region.rsplit('-').next().is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()));
    (region_ok && partition_of(region).suffixes.contains(&domain)).then_some((account, region))
}

/// A private ECR registry: one account's registry in one region, whichever host names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcrRegistry {
    pub account: String,
    pub region: String,
}

impl EcrRegistry {
    pub fn new(account: impl Into<String>, region: impl Into<String>) -> Self {
        EcrRegistry { account: account.into(), region: region.into() }
    }

    /// The host messages name ([`ecr_registry`]).
    pub fn host(&self) -> String {
        ecr_registry(&self.account, &self.region)
    }

    /// Whether `host` is this registry in any of its forms (IPv4, FIPS, dual-stack: [`ecr_host`]).
    pub fn is_host(&self, host: &str) -> bool {
        ecr_host(&host.to_ascii_lowercase()).is_some_and(|(account, region)| account == self.account && region == self.region)
    }
}

impl fmt::Display for EcrRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.host())
    }
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

    /// Every form of a private ECR registry host names the push's registry (same account, same
    /// region), and nothing else does: the table of the AWS General Reference's ECR endpoints
    /// page (IPv4, FIPS, dual-stack, dual-stack FIPS) and of AWS's ECR credential helper (China,
    /// GovCloud, ISO partitions, European Sovereign Cloud), against look-alikes.
    #[test]
    fn every_ecr_host_form_is_the_same_registry_and_look_alikes_are_not() {
        let a = "123456789012";
        let same: &[(&str, &str)] = &[
            ("us-east-1", "123456789012.dkr.ecr.us-east-1.amazonaws.com"),
            ("us-east-2", "123456789012.dkr.ecr-fips.us-east-2.amazonaws.com"),
            ("us-east-2", "123456789012.dkr-ecr.us-east-2.on.aws"),
            ("us-east-2", "123456789012.dkr-ecr-fips.us-east-2.on.aws"),
            ("eu-west-1", "123456789012.DKR.ECR.EU-WEST-1.AMAZONAWS.COM"),
            ("cn-north-1", "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn"),
            ("cn-north-1", "123456789012.dkr.ecr.cn-north-1.on.amazonwebservices.com.cn"),
            ("cn-northwest-1", "123456789012.dkr-ecr.cn-northwest-1.on.amazonwebservices.com.cn"),
            ("us-gov-west-1", "123456789012.dkr.ecr.us-gov-west-1.amazonaws.com"),
            ("us-gov-west-1", "123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com"),
            ("us-gov-east-1", "123456789012.dkr-ecr.us-gov-east-1.on.aws"),
            ("us-gov-east-1", "123456789012.dkr-ecr-fips.us-gov-east-1.on.aws"),
            ("us-iso-east-1", "123456789012.dkr.ecr.us-iso-east-1.c2s.ic.gov"),
            ("us-isob-east-1", "123456789012.dkr.ecr.us-isob-east-1.sc2s.sgov.gov"),
            ("eu-isoe-west-1", "123456789012.dkr.ecr.eu-isoe-west-1.cloud.adc-e.uk"),
            ("us-isof-east-1", "123456789012.dkr.ecr.us-isof-east-1.csp.hci.ic.gov"),
            ("eusc-de-east-1", "123456789012.dkr.ecr.eusc-de-east-1.amazonaws.eu"),
        ];
        for (region, host) in same {
            assert!(EcrRegistry::new(a, *region).is_host(host), "{host} is {a} in {region}");
            let image = ImageRef::parse(&format!("{host}/team/auth:v1")).unwrap();
            assert!(image.in_ecr(&EcrRegistry::new(a, *region), "team/auth"), "{host}");
            assert!(!image.in_ecr(&EcrRegistry::new(a, *region), "auth"), "{host}: another repository");
        }
        let reg = EcrRegistry::new(a, "us-east-1");
        let not: &[&str] = &[
            "123456789012.dkr.ecr.us-east-1.amazonaws.com.evil.example",
            "123456789012.dkr.ecr.us-east-1.amazonaws.com.cn",
            "123456789012.dkr.ecr.us-east-1.on.aws.evil.example",
            "123456789012.dkr.ecr.us-east-1.amazonaws.co",
            "evil.example.123456789012.dkr.ecr.us-east-1.amazonaws.com",
            "x123456789012.dkr.ecr.us-east-1.amazonaws.com",
            "210987654321.dkr.ecr.us-east-1.amazonaws.com",
            "123456789012.dkr.ecr.us-west-2.amazonaws.com",
            "123456789012.dkr.ecr.us-east-1.amazonaws.com:443",
            "123456789012.dkr.ecr.us-east-1.amazonaws.com:5000",
            "123456789012.ecr.us-east-1.amazonaws.com",
            "123456789012.dkr.ecr-fips.us-east-1.api.aws",
            "api.ecr.us-east-1.amazonaws.com",
            "dkr.ecr.us-east-1.amazonaws.com",
            "123456789012.dkr.ecr..amazonaws.com",
            "123456789012.dkr.ecr.us-east-x.amazonaws.com",
            "123456789012.dkr.ecr.us-east-1.c2s.ic.gov",
            "public.ecr.aws",
            "123456789012",
            "",
        ];
        for host in not {
            assert!(!reg.is_host(host), "{host:?} is not 123456789012's registry in us-east-1");
        }
        assert!(!EcrRegistry::new(a, "cn-north-1").is_host("123456789012.dkr-ecr.cn-north-1.on.aws.com.cn"), "the credential helper's own look-alike");
        assert!(!EcrRegistry::new(a, "cn-north-1").is_host("123456789012.dkr.ecr.cn-north-1.amazonaws.com"), "China's registries are under .com.cn");
        assert_eq!(ecr_host("123456789012.dkr-ecr-fips.us-east-2.on.aws"), Some(("123456789012", "us-east-2")));
        assert_eq!(reg.to_string(), "123456789012.dkr.ecr.us-east-1.amazonaws.com");
        assert_eq!(ecr_registry(a, "us-iso-east-1"), "123456789012.dkr.ecr.us-iso-east-1.c2s.ic.gov");
        assert_eq!(ecr_registry(a, "us-gov-west-1"), "123456789012.dkr.ecr.us-gov-west-1.amazonaws.com");
    }

    #[test]
    fn ecr_repository_names_as_the_model_has_them() {
        for ok in ["auth", "ab", "team/svc/auth", "a.b", "a_b", "a__b", "a---b", "docker-hub/library/alpine", &"a".repeat(256)] {
            assert!(is_ecr_repository_name(ok), "{ok:?}");
        }
        for bad in ["a", "", "AUTH", "auth:v2", "a/", "/a", "a//b", "a..b", "a___b", "-a", "a-", "a._b", "host:5000/auth", &"a".repeat(257), "au\u{0}th"] {
            assert!(!is_ecr_repository_name(bad), "{bad:?}");
        }
        assert!(is_account_id("123456789012") && !is_account_id("12345678901") && !is_account_id("12345678901x"));
    }

    #[test]
    fn only_container_images_are_runnable() {
        let hex = "a".repeat(64);
        let docker = Some("application/vnd.docker.distribution.manifest.v2+json");
        let oci = Some("application/vnd.oci.image.manifest.v1+json");
        let index = Some("application/vnd.oci.image.index.v1+json");
        let config = Some("application/vnd.oci.image.config.v1+json");
        let runnable: &[(Option<&str>, Option<&str>, Option<&str>)] = &[
            (Some("v2"), docker, Some("application/vnd.docker.container.image.v1+json")),
            (Some("v2"), oci, config),
            (Some("v2"), index, None),
            (Some("v2"), Some("application/vnd.docker.distribution.manifest.list.v2+json"), None),
            (Some("latest"), None, None),
            (Some("v2"), Some("Application/VND.OCI.Image.Manifest.v1+json; charset=utf-8"), config),
            (Some("sha256-short.sig"), docker, None),
        ];
        for (tag, manifest, artifact) in runnable {
            assert_eq!(not_runnable(*tag, *manifest, *artifact), None, "{tag:?} {manifest:?} {artifact:?}");
        }
        let sig = format!("sha256-{hex}.sig");
        let att = format!("sha256-{hex}.att");
        let sbom = format!("sha256-{hex}.sbom");
        let referrers = format!("sha256-{hex}");
        let referrers512 = format!("sha512-{hex}");
        let artifacts: &[(Option<&str>, Option<&str>, Option<&str>, &str)] = &[
            // cosign's classic signatures use an OCI image config: only the tag gives them away.
            (Some(&sig), oci, config, "signature"),
            (Some(&att), oci, config, "signature"),
            (Some(&sbom), oci, None, "signature"),
            (Some(&referrers), index, None, "signature"),
            (Some(&referrers512), index, None, "signature"),
            (Some("v2"), Some("application/vnd.docker.distribution.manifest.v1+prettyjws"), None, "manifest media type"),
            (Some("v2"), oci, Some("text/sbom+json"), "artifact media type"),
            (Some("v2"), Some("application/vnd.cncf.oras.artifact.manifest.v1+json"), None, "manifest media type"),
            (Some("v2"), oci, Some("application/vnd.dev.sigstore.bundle.v0.3+json"), "artifact media type"),
            (Some("v2"), oci, Some("application/vnd.cncf.notary.signature"), "artifact media type"),
            (Some("chart-1.0"), oci, Some("application/vnd.cncf.helm.config.v1+json"), "artifact media type"),
            (Some("v2"), oci, Some("application/spdx+json"), "artifact media type"),
            (Some("v2"), oci, Some("application/vnd.oci.empty.v1+json"), "artifact media type"),
            (Some("v2"), Some("application/vnd.in-toto+json"), None, "manifest media type"),
        ];
        for (tag, manifest, artifact, why) in artifacts {
            let reason = not_runnable(*tag, *manifest, *artifact).unwrap_or_else(|| panic!("{tag:?} {manifest:?} {artifact:?} is runnable"));
            assert!(reason.contains(why), "{reason}");
        }
    }

    #[test]
    fn rejects_garbage_without_panicking() {
        for bad in ["", " ", "UPPER/case", "a//b", "a:", "a@sha256:xyz", "a:-bad", "a@", "a\u{0}b", &"x".repeat(5000), "host:/a", "/a", "a/"] {
            assert!(ImageRef::parse(bad).is_err(), "{bad:?} should fail");
        }
    }
}
