//! The repository index (issue 17, item 1): repository → the opted-in services that run it, so a
//! push describes only the services its repository concerns, and returns without a call to ECS
//! when none does, instead of listing and describing every service of every managed cluster.
//!
//! - Built from a full discovery (`rebuild`): every reconcile tick, and a push that found no
//!   index it could trust. Only entries that changed are written; the marker (`#built`, with the
//!   time and the clusters and registry it covers) is written last, so a reader trusts an index
//!   only once all its entries are in.
//! - Trusted for [`INDEX_TRUSTED_FOR`] after its build (reconcile rebuilds it every 10 minutes by
//!   default), and only for the clusters and registry it was built for.
//! - Refreshed between builds: a push drops the services it found no longer running its
//!   repository (`forget`); a rollout that somebody else started (a new service, a task definition
//!   changed by CI or IaC) adds its service under the repositories its revision runs (`remember`).
//! - What it cannot see until the next build: a service that gains `autopilot:deploy` without a
//!   deployment. Reconcile deploys such a service's newest matching image at that build anyway,
//!   so the index costs latency (one reconcile interval), never a deploy.
//!
//! Items stay small: a repository's entry holds at most [`ENTRY_MAX_BYTES`] of ARNs (an item is at
//! most 400 KB: DynamoDB developer guide, "Service, account, and table quotas"); beyond that the
//! entry says `overflow` and pushes to that repository discover everything, as before.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use autopilot::image::{is_ecr_repository_name, EcrRegistry, ImageRef};
use autopilot::runtime::Env;
use autopilot::state::now_epoch;
use autopilot::Error;
use serde_json::{json, Value};

use crate::deploy::Discovered;
use crate::plan::{eligibility, Eligibility, ObservedTaskDef};

pub const PK_INDEX: &str = "repo-index";
/// The marker's sort key: `#` never starts an ECR repository name (`[a-z0-9]` does), so it never
/// collides with an entry.
pub const SK_BUILT: &str = "#built";
/// How long after its build the index is trusted. Reconcile rebuilds it every tick
/// (`ReconcileSchedule`, 10 minutes by default); past this, reconcile is failing or disabled, and
/// a push discovers everything rather than trust what may have changed.
pub const INDEX_TRUSTED_FOR: Duration = Duration::from_secs(3600);
/// Entries outlive a stopped reconcile by this much, then expire (nothing grows without bound).
const INDEX_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// A repository's entry holds service ARNs and clusters of at most this many bytes, under
/// DynamoDB's 400 KB item limit with room for the JSON around them (about 1,000 services of the
/// longest names ECS allows, 255 characters for a cluster and for a service).
pub const ENTRY_MAX_BYTES: usize = 300_000;

/// One repository's entry: service ARN → its cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entry {
    pub services: BTreeMap<String, String>,
    /// More services run the repository than an entry holds: discover everything.
    pub overflow: bool,
}

impl Entry {
    pub fn to_value(&self) -> Value {
        if self.overflow {
            return json!({"overflow": true, "services": {}});
        }
        json!({"services": self.services})
    }

    pub fn from_value(v: &Value) -> Entry {
        let overflow = v.get("overflow").and_then(Value::as_bool).unwrap_or(false);
        let services = v
            .get("services")
            .and_then(Value::as_object)
            .map(|m| m.iter().filter_map(|(arn, c)| c.as_str().map(|c| (arn.clone(), c.to_string()))).collect())
            .unwrap_or_default();
        Entry { services, overflow }
    }

    fn insert(&mut self, arn: &str, cluster: &str) {
        if self.overflow {
            return;
        }
        self.services.insert(arn.to_string(), cluster.to_string());
        if self.services.iter().map(|(a, c)| a.len() + c.len() + 8).sum::<usize>() > ENTRY_MAX_BYTES {
            self.services.clear();
            self.overflow = true;
        }
    }
}

/// The repositories of `registry` that a task definition's containers run.
pub fn repositories_of(td: &ObservedTaskDef, registry: &EcrRegistry) -> BTreeSet<String> {
    td.containers
        .iter()
        .filter_map(|c| ImageRef::parse(&c.image).ok())
        .filter(|r| r.registry.as_deref().is_some_and(|h| registry.is_host(h)) && is_ecr_repository_name(&r.repository))
        .map(|r| r.repository)
        .collect()
}

/// The index a full discovery gives: every eligible service under each repository of `registry`
/// its task definition runs.
pub fn build(disc: &Discovered, registry: &EcrRegistry) -> BTreeMap<String, Entry> {
    let mut index: BTreeMap<String, Entry> = BTreeMap::new();
    for s in &disc.services {
        if !matches!(eligibility(s), Eligibility::Eligible { .. }) {
            continue;
        }
        let Some(td) = disc.task_defs.get(&s.task_definition) else { continue };
        for repo in repositories_of(td, registry) {
            index.entry(repo).or_default().insert(&s.arn, &s.cluster);
        }
    }
    index
}

/// What the marker says the index covers.
pub fn marker(clusters: &[String], registry: &EcrRegistry, now: u64) -> Value {
    json!({"at": now, "clusters": clusters.join(","), "registry": registry.host()})
}

/// What the index says about a repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// No index to trust: discover everything (and rebuild it). Why, for the log.
    Stale(String),
    /// No managed, opted-in service runs the repository (as of `age_secs` ago).
    Unused { age_secs: u64 },
    /// These services (cluster, service ARN) run it.
    Services(Vec<(String, String)>),
}

/// Decide from the marker and the repository's entry (pure).
pub fn lookup(built: Option<&Value>, entry: Option<&Value>, clusters: &[String], registry: &EcrRegistry, now: u64) -> Lookup {
    let Some(built) = built else { return Lookup::Stale("no repository index yet".into()) };
    let at = built.get("at").and_then(Value::as_u64).unwrap_or(0);
    let age = now.saturating_sub(at);
    if age > INDEX_TRUSTED_FOR.as_secs() {
        return Lookup::Stale(format!("the repository index is {age}s old (trusted for {}s)", INDEX_TRUSTED_FOR.as_secs()));
    }
    if built.get("clusters").and_then(Value::as_str) != Some(clusters.join(",").as_str()) || built.get("registry").and_then(Value::as_str) != Some(registry.host().as_str()) {
        return Lookup::Stale("the repository index was built for other clusters or another registry".into());
    }
    let entry = entry.map(Entry::from_value).unwrap_or_default();
    if entry.overflow {
        return Lookup::Stale("more services run the repository than its index entry holds".into());
    }
    if entry.services.is_empty() {
        return Lookup::Unused { age_secs: age };
    }
    Lookup::Services(entry.services.into_iter().map(|(arn, cluster)| (cluster, arn)).collect())
}

/// The marker and `repository`'s entry, in one read. A failed read is a stale index: the full
/// discovery it falls back to is what every push did before the index.
pub async fn find(env: &Env, registry: &EcrRegistry, repository: &str) -> Lookup {
    let keys: BTreeSet<(String, String)> = [(PK_INDEX.to_string(), SK_BUILT.to_string()), (PK_INDEX.to_string(), repository.to_string())].into();
    match env.state.get_many(&keys).await {
        Ok(found) => {
            let get = |sk: &str| found.get(&(PK_INDEX.to_string(), sk.to_string())).map(|r| &r.data);
            lookup(get(SK_BUILT), get(repository), &env.config.clusters, registry, now_epoch())
        }
        Err(e) => Lookup::Stale(format!("cannot read the repository index: {e}")),
    }
}

/// Write the index a full discovery gives: the entries that changed, the ones no longer used
/// deleted, then the marker. Returns how many entries were written or deleted.
pub async fn rebuild(env: &Env, disc: &Discovered, registry: &EcrRegistry) -> Result<usize, Error> {
    let current = env.state.query(PK_INDEX).await?;
    let wanted = build(disc, registry);
    // Entries are rewritten when they change; one that never does would expire under a live
    // index, so an entry past half its TTL is rewritten too.
    let now = now_epoch();
    let writes: BTreeMap<(String, String), Value> = wanted
        .iter()
        .filter(|(repo, entry)| {
            current.get(repo.as_str()).is_none_or(|r| Entry::from_value(&r.data) != **entry || r.expires_at < now + INDEX_TTL.as_secs() / 2)
        })
        .map(|(repo, entry)| ((PK_INDEX.to_string(), repo.clone()), entry.to_value()))
        .collect();
    let gone: Vec<&String> = current.keys().filter(|sk| sk.as_str() != SK_BUILT && !wanted.contains_key(sk.as_str())).collect();
    let count = writes.len() + gone.len();
    if !writes.is_empty() {
        env.state.put_many(&writes, INDEX_TTL).await?;
    }
    for sk in gone {
        env.state.delete(PK_INDEX, sk).await?;
    }
    env.state.put(PK_INDEX, SK_BUILT, &marker(&env.config.clusters, registry, now), INDEX_TTL).await?;
    tracing::info!(repositories = wanted.len(), written = count, "repository index rebuilt");
    Ok(count)
}

/// A push's refresh: `arns` were in `repository`'s entry but no longer run it (or are gone, or
/// no longer opted in). Best effort: a lost refresh costs one DescribeServices at the next push.
pub async fn forget(env: &Env, repository: &str, arns: &BTreeSet<String>) {
    if arns.is_empty() {
        return;
    }
    let result = async {
        let Some(record) = env.state.get(PK_INDEX, repository).await? else { return Ok(()) };
        let mut entry = Entry::from_value(&record.data);
        entry.services.retain(|arn, _| !arns.contains(arn));
        if entry.services.is_empty() && !entry.overflow {
            env.state.delete(PK_INDEX, repository).await
        } else {
            env.state.put(PK_INDEX, repository, &entry.to_value(), INDEX_TTL).await
        }
    }
    .await;
    match result {
        Ok(()) => tracing::info!(repository, services = arns.len(), "repository index: services that no longer run it dropped"),
        Err(e) => tracing::warn!(repository, error = %e, "could not refresh the repository index"),
    }
}

/// A rollout's refresh: the service now runs `repositories`; add it where it is missing. Only
/// into an index that exists (the next build makes a new one whole). Best effort: a lost refresh
/// is repaired by the next build.
pub async fn remember(env: &Env, repositories: &BTreeSet<String>, arn: &str, cluster: &str) {
    if repositories.is_empty() {
        return;
    }
    let result = async {
        let mut keys: BTreeSet<(String, String)> = repositories.iter().map(|r| (PK_INDEX.to_string(), r.clone())).collect();
        keys.insert((PK_INDEX.to_string(), SK_BUILT.to_string()));
        let found = env.state.get_many(&keys).await?;
        if !found.contains_key(&(PK_INDEX.to_string(), SK_BUILT.to_string())) {
            return Ok(0);
        }
        let mut writes = BTreeMap::new();
        for repo in repositories {
            let key = (PK_INDEX.to_string(), repo.clone());
            let mut entry = found.get(&key).map(|r| Entry::from_value(&r.data)).unwrap_or_default();
            if entry.overflow || entry.services.get(arn).is_some_and(|c| c == cluster) {
                continue;
            }
            entry.insert(arn, cluster);
            writes.insert(key, entry.to_value());
        }
        let count = writes.len();
        if !writes.is_empty() {
            env.state.put_many(&writes, INDEX_TTL).await?;
        }
        Ok::<usize, Error>(count)
    }
    .await;
    match result {
        Ok(0) => {}
        Ok(n) => tracing::info!(service = arn, repositories = n, "repository index: service added"),
        Err(e) => tracing::warn!(service = arn, error = %e, "could not add the service to the repository index"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> EcrRegistry {
        EcrRegistry::new("123456789012", "us-east-1")
    }

    fn clusters() -> Vec<String> {
        vec!["stage01".to_string()]
    }

    fn entry(services: &[(&str, &str)]) -> Value {
        json!({"services": services.iter().map(|(a, c)| (a.to_string(), json!(c))).collect::<serde_json::Map<_, _>>()})
    }

    /// The push's choice, as a table: discover everything unless a whole, recent index for these
    /// clusters and this registry says which services run the repository.
    #[test]
    fn a_push_trusts_only_a_recent_whole_index_of_its_own_clusters() {
        let now = 10_000;
        let fresh = marker(&clusters(), &registry(), now - 600);
        let old = marker(&clusters(), &registry(), now - INDEX_TRUSTED_FOR.as_secs() - 1);
        let other_clusters = marker(&["prod".to_string()], &registry(), now - 60);
        let other_registry = marker(&clusters(), &EcrRegistry::new("210987654321", "us-east-1"), now - 60);
        let used = entry(&[("arn:aws:ecs:us-east-1:123456789012:service/stage01/auth", "arn:aws:ecs:us-east-1:123456789012:cluster/stage01")]);
        let overflow = json!({"overflow": true, "services": {}});
        let cases: Vec<(&str, Option<&Value>, Option<&Value>, fn(&Lookup) -> bool)> = vec![
            ("no index", None, Some(&used), |l| matches!(l, Lookup::Stale(_))),
            ("too old", Some(&old), Some(&used), |l| matches!(l, Lookup::Stale(_))),
            ("other clusters", Some(&other_clusters), Some(&used), |l| matches!(l, Lookup::Stale(_))),
            ("other registry", Some(&other_registry), Some(&used), |l| matches!(l, Lookup::Stale(_))),
            ("overflow", Some(&fresh), Some(&overflow), |l| matches!(l, Lookup::Stale(_))),
            ("unused", Some(&fresh), None, |l| *l == Lookup::Unused { age_secs: 600 }),
            ("used", Some(&fresh), Some(&used), |l| matches!(l, Lookup::Services(s) if s.len() == 1 && s[0].1.ends_with("/auth"))),
        ];
        for (name, built, e, expected) in cases {
            let got = lookup(built, e, &clusters(), &registry(), now);
            assert!(expected(&got), "{name}: {got:?}");
        }
    }

    /// Issue 17, item 8: no item grows without bound. The longest names ECS allows (255
    /// characters for a cluster, 255 for a service) fill an entry at ~400 services; one more
    /// turns it into `overflow`, and the item stays under DynamoDB's 400 KB.
    #[test]
    fn an_entry_never_grows_past_its_bound() {
        let mut e = Entry::default();
        let cluster = format!("arn:aws:ecs:us-east-1:123456789012:cluster/{}", "c".repeat(255));
        let mut i = 0;
        while !e.overflow {
            let before = e.to_value().to_string().len();
            assert!(before < 400 * 1024, "{before} bytes");
            e.insert(&format!("arn:aws:ecs:us-east-1:123456789012:service/{}/{:0>255}", "c".repeat(255), i), &cluster);
            i += 1;
        }
        assert!(i > 300, "{i} services fit");
        assert!(e.services.is_empty());
        assert_eq!(Entry::from_value(&e.to_value()), e);
        // Once overflowing, it stays so (pushes discover everything) until a build says otherwise.
        e.insert("arn:aws:ecs:us-east-1:123456789012:service/c/s", "c");
        assert!(e.overflow && e.services.is_empty());
    }
}
