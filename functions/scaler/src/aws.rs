//! The AWS calls the scaler makes, one function per operation, errors classified with
//! `Error::aws`. SDK types stop here: each call answers with the plain observed data that
//! `decide.rs` and `capacity.rs` decide on.

use autopilot::aws_sdk_autoscaling as asg;
use autopilot::aws_sdk_cloudwatch as cw;
use autopilot::events::AlarmStateValue;
use autopilot::tags::{self, Tags};
use autopilot::Error;
use aws_sdk_ecs as ecs;

use crate::capacity::{ContainerSize, GroupMember, Instance, ObservedCluster, ObservedGroup, Provider, ProviderKind, TaskDefSizes};
use crate::decide::{self, AlarmView, Direction, ObservedDeployment, ObservedService, TaskProtection};

pub struct Aws {
    pub ecs: ecs::Client,
    pub cw: cw::Client,
    pub asg: asg::Client,
    /// Alarm ARN → its tags and when they were read (issue 17, item 5): see [`Aws::alarm_tags_cached`].
    tag_cache: autopilot::cache::Expiring<Tags>,
}

/// How long the re-evaluation trusts an alarm's tags read before: a tag change on an alarm that
/// stays in ALARM is seen within this time (a transition reads them at once).
pub const TAG_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(300);

/// One page of DescribeAlarms.
pub struct AlarmPage {
    pub alarms: Vec<DescribedAlarm>,
    pub next_token: Option<String>,
}

/// An alarm in ALARM and how to measure it now.
pub struct DescribedAlarm {
    /// Its tags are not read here (`tags: None`); `datapoints` are empty until measured.
    pub view: AlarmView,
    /// `None` for a composite alarm (no metric), or a metric alarm this code cannot query.
    pub metric: Option<MetricQuery>,
}

/// The GetMetricData queries that read a metric alarm's metric as the alarm reads it: its
/// metric, statistic (or extended statistic), period, dimensions and unit, or its `Metrics`
/// (metric math, Metrics Insights) as they are.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricQuery {
    pub queries: Vec<cw::types::MetricDataQuery>,
    /// The query whose values the alarm compares with its threshold.
    pub result_id: String,
    pub period: i64,
    pub evaluation_periods: i64,
}

/// The id of the query built for a single-metric alarm ("The first character must be a
/// lowercase letter", MetricDataQuery.Id).
const QUERY_ID: &str = "autopilot";

impl Aws {
    pub fn new(env: &autopilot::runtime::Env) -> Self {
        Self::of(autopilot::clients::ecs(env), autopilot::clients::cloudwatch(env), autopilot::clients::autoscaling(env))
    }

    pub fn of(ecs: ecs::Client, cw: cw::Client, asg: asg::Client) -> Self {
        Aws { ecs, cw, asg, tag_cache: autopilot::cache::Expiring::new(TAG_CACHE_TTL) }
    }

    /// An alarm's tags for the re-evaluation schedule: read at most once per [`TAG_CACHE_TTL`]
    /// per alarm and container, instead of one ListTagsForResource per alarm in ALARM every
    /// minute (CloudWatch's ListTagsForResource is not free of quota: "CloudWatch service quotas").
    /// A transition reads them fresh ([`Aws::list_tags_for_resource`]), which refreshes this.
    pub async fn alarm_tags_cached(&self, arn: &str) -> Result<Tags, Error> {
        match self.tag_cache.get(arn) {
            Some(tags) => Ok(tags),
            None => self.list_tags_for_resource(arn).await,
        }
    }

    // ------------------------------------------------------------------ CloudWatch

    pub async fn list_tags_for_resource(&self, arn: &str) -> Result<Tags, Error> {
        let out = self.cw.list_tags_for_resource().resource_arn(arn).send().await.map_err(|e| Error::aws("cloudwatch", "ListTagsForResource", e))?;
        let tags: Tags = out.tags().iter().filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or_default().to_string()))).collect();
        self.tag_cache.put(arn, tags.clone());
        Ok(tags)
    }

    /// One page of the alarms in ALARM, metric and composite (alarms without a name are left
    /// out).
    pub async fn describe_alarms_in_alarm(&self, token: Option<String>) -> Result<AlarmPage, Error> {
        let out = self
            .cw
            .describe_alarms()
            .state_value(cw::types::StateValue::Alarm)
            .alarm_types(cw::types::AlarmType::MetricAlarm)
            .alarm_types(cw::types::AlarmType::CompositeAlarm)
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| Error::aws("cloudwatch", "DescribeAlarms", e))?;
        let metric = out.metric_alarms().iter().filter_map(|a| Some(DescribedAlarm { view: alarm_view(a)?, metric: metric_query(a) }));
        let composite = out.composite_alarms().iter().filter_map(|a| Some(DescribedAlarm { view: composite_view(a)?, metric: None }));
        Ok(AlarmPage { alarms: metric.chain(composite).collect(), next_token: out.next_token().map(String::from) })
    }

    /// Which side of its threshold the alarm watches (its ComparisonOperator). An alarm that is
    /// gone, or a composite one, has no single side.
    pub async fn alarm_direction(&self, name: &str) -> Result<Direction, Error> {
        let out = self
            .cw
            .describe_alarms()
            .alarm_names(name)
            .alarm_types(cw::types::AlarmType::MetricAlarm)
            .alarm_types(cw::types::AlarmType::CompositeAlarm)
            .send()
            .await
            .map_err(|e| Error::aws("cloudwatch", "DescribeAlarms", e))?;
        let op = out.metric_alarms().iter().find(|a| a.alarm_name() == Some(name)).and_then(|a| a.comparison_operator());
        Ok(op.map_or(Direction::Either, |op| Direction::from_comparison(op.as_str())))
    }

    /// The alarm's metric now: its newest `evaluation_periods` values over the evaluation
    /// window back from `now` (epoch seconds), newest first. StateReasonData is the last state
    /// update's and may be hours old; this is what Application Auto Scaling would weigh.
    pub async fn current_datapoints(&self, q: &MetricQuery, now: i64) -> Result<Vec<f64>, Error> {
        let (start, end) = decide::evaluation_window(now, q.period, q.evaluation_periods);
        let out = self
            .cw
            .get_metric_data()
            .set_metric_data_queries(Some(q.queries.clone()))
            .start_time(aws_smithy_types::DateTime::from_secs(start))
            .end_time(aws_smithy_types::DateTime::from_secs(end))
            .scan_by(cw::types::ScanBy::TimestampDescending)
            .send()
            .await
            .map_err(|e| Error::aws("cloudwatch", "GetMetricData", e))?;
        let values = out.metric_data_results().iter().find(|r| r.id() == Some(q.result_id.as_str())).map(|r| r.values()).unwrap_or_default();
        Ok(decide::recent(values, q.evaluation_periods as usize))
    }

    // ------------------------------------------------------------------ ECS

    pub async fn cluster_arns(&self) -> Result<Vec<String>, Error> {
        autopilot::aws::ecs::cluster_arns(&self.ecs).await
    }

    /// The first cluster DescribeClusters answers (with its tags).
    pub async fn describe_cluster(&self, cluster: &str) -> Result<Option<ObservedCluster>, Error> {
        let out = self
            .ecs
            .describe_clusters()
            .clusters(cluster)
            .include(ecs::types::ClusterField::Tags)
            .send()
            .await
            .map_err(|e| Error::aws("ecs", "DescribeClusters", e))?;
        Ok(out.clusters().first().map(|c| ObservedCluster {
            tags: c.tags().iter().filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string()))).collect(),
            capacity_providers: c.capacity_providers().to_vec(),
        }))
    }

    /// The capacity providers among `names`, by what backs them (CapacityProvider `type`, or the
    /// provider detail it carries when an older answer has no type).
    pub async fn describe_capacity_providers(&self, names: &[String]) -> Result<Vec<Provider>, Error> {
        let out = self
            .ecs
            .describe_capacity_providers()
            .set_capacity_providers(Some(names.to_vec()))
            .send()
            .await
            .map_err(|e| Error::aws("ecs", "DescribeCapacityProviders", e))?;
        Ok(out.capacity_providers().iter().map(provider).collect())
    }

    /// The tasks ECS wants running for a service (ListTasks `serviceName`, desiredStatus RUNNING).
    pub async fn service_task_arns(&self, cluster: &str, service: &str) -> Result<Vec<String>, Error> {
        let mut arns = Vec::new();
        let mut token = None;
        loop {
            let out = self
                .ecs
                .list_tasks()
                .cluster(cluster)
                .service_name(service)
                .desired_status(ecs::types::DesiredStatus::Running)
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| Error::aws("ecs", "ListTasks", e))?;
            arns.extend(out.task_arns().iter().cloned());
            token = out.next_token().map(String::from);
            if token.is_none() {
                return Ok(arns);
            }
        }
    }

    /// Each task's scale-in protection, 100 tasks a call (GetTaskProtection's limit: "A list of
    /// up to 100 task IDs or full ARN entries").
    pub async fn task_protection(&self, cluster: &str, tasks: &[String]) -> Result<Vec<TaskProtection>, Error> {
        let mut protection = Vec::new();
        for chunk in tasks.chunks(100) {
            let out = self
                .ecs
                .get_task_protection()
                .cluster(cluster)
                .set_tasks(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| Error::aws("ecs", "GetTaskProtection", e))?;
            protection.extend(out.protected_tasks().iter().map(|t| TaskProtection {
                task_arn: t.task_arn().unwrap_or_default().to_string(),
                enabled: t.protection_enabled(),
                expires_at: t.expiration_date().map(|d| d.secs()),
            }));
        }
        Ok(protection)
    }

    pub async fn list_services(&self, cluster: &str) -> Result<Vec<String>, Error> {
        autopilot::aws::ecs::service_arns(&self.ecs, cluster, None).await
    }

    /// One service with its tags; `None` when it does not exist (INACTIVE: deleted).
    pub async fn describe_service(&self, cluster: &str, service: &str) -> Result<Option<ObservedService>, Error> {
        let described = autopilot::aws::ecs::service(&self.ecs, cluster, service).await?;
        Ok(described.iter().find(|s| s.status() != Some("INACTIVE")).map(observed_service))
    }

    /// Up to 10 services (the API's limit), without tags, as DescribeServices lists them.
    pub async fn describe_services(&self, cluster: &str, services: &[String]) -> Result<Vec<ObservedService>, Error> {
        let out = self
            .ecs
            .describe_services()
            .cluster(cluster)
            .set_services(Some(services.to_vec()))
            .send()
            .await
            .map_err(|e| Error::aws("ecs", "DescribeServices", e))?;
        Ok(out.services().iter().map(observed_service).collect())
    }

    /// Set desiredCount; nothing else of the service changes.
    pub async fn update_desired_count(&self, cluster: &str, service: &str, desired: u32) -> Result<(), Error> {
        self.ecs
            .update_service()
            .cluster(cluster)
            .service(service)
            .desired_count(desired as i32)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| Error::aws("ecs", "UpdateService", e))
    }

    /// The sizes a task definition declares; `None` when ECS answers without one.
    pub async fn describe_task_definition(&self, task_definition: &str) -> Result<Option<TaskDefSizes>, Error> {
        let out = self
            .ecs
            .describe_task_definition()
            .task_definition(task_definition)
            .send()
            .await
            .map_err(|e| Error::aws("ecs", "DescribeTaskDefinition", e))?;
        Ok(out.task_definition().map(task_def_sizes))
    }

    pub async fn list_container_instances(&self, cluster: &str) -> Result<Vec<String>, Error> {
        let mut arns = Vec::new();
        let mut token = None;
        loop {
            let out = self
                .ecs
                .list_container_instances()
                .cluster(cluster)
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| Error::aws("ecs", "ListContainerInstances", e))?;
            arns.extend(out.container_instance_arns().iter().cloned());
            token = out.next_token().map(String::from);
            if token.is_none() {
                return Ok(arns);
            }
        }
    }

    /// The instances, 100 at a time (the API's limit).
    pub async fn describe_container_instances(&self, cluster: &str, arns: &[String]) -> Result<Vec<Instance>, Error> {
        let mut instances = Vec::new();
        for chunk in arns.chunks(100) {
            let out = self
                .ecs
                .describe_container_instances()
                .cluster(cluster)
                .set_container_instances(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| Error::aws("ecs", "DescribeContainerInstances", e))?;
            instances.extend(out.container_instances().iter().map(instance));
        }
        Ok(instances)
    }

    /// Set one container instance DRAINING: ECS stops placing tasks on it.
    pub async fn drain_container_instance(&self, cluster: &str, arn: &str) -> Result<(), Error> {
        self.ecs
            .update_container_instances_state()
            .cluster(cluster)
            .container_instances(arn)
            .status(ecs::types::ContainerInstanceStatus::Draining)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| Error::aws("ecs", "UpdateContainerInstancesState", e))
    }

    // ------------------------------------------------------------------ Auto Scaling

    pub async fn describe_auto_scaling_group(&self, name: &str) -> Result<Option<ObservedGroup>, Error> {
        let out = self
            .asg
            .describe_auto_scaling_groups()
            .auto_scaling_group_names(name)
            .send()
            .await
            .map_err(|e| Error::aws("autoscaling", "DescribeAutoScalingGroups", e))?;
        Ok(out.auto_scaling_groups().first().map(|g| ObservedGroup {
            desired: g.desired_capacity().unwrap_or(0) as i64,
            min: g.min_size().unwrap_or(0) as i64,
            max: g.max_size().unwrap_or(0) as i64,
            members: g
                .instances()
                .iter()
                .filter_map(|i| {
                    let member = GroupMember { protected: i.protected_from_scale_in().unwrap_or(false), lifecycle: i.lifecycle_state().map(|l| l.as_str().to_string()).unwrap_or_default() };
                    Some((i.instance_id()?.to_string(), member))
                })
                .collect(),
        }))
    }

    /// Grow the group now: the tasks are waiting, so the group's own cooldown does not apply.
    pub async fn set_desired_capacity(&self, group: &str, desired: i64) -> Result<(), Error> {
        self.asg
            .set_desired_capacity()
            .auto_scaling_group_name(group)
            .desired_capacity(desired as i32)
            .honor_cooldown(false)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| Error::aws("autoscaling", "SetDesiredCapacity", e))
    }

    /// Terminate one instance and lower the group's desired capacity with it, so the group does
    /// not launch a replacement.
    pub async fn terminate_instance_in_auto_scaling_group(&self, ec2_id: &str) -> Result<(), Error> {
        self.asg
            .terminate_instance_in_auto_scaling_group()
            .instance_id(ec2_id)
            .should_decrement_desired_capacity(true)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| Error::aws("autoscaling", "TerminateInstanceInAutoScalingGroup", e))
    }
}

/// An alarm in ALARM as DescribeAlarms reports it: the transition is its state timestamp in
/// epoch milliseconds; the threshold is the alarm's own. No datapoints yet: the re-evaluation
/// measures the metric now (`current_datapoints`), never the reason data of the transition.
fn alarm_view(a: &cw::types::MetricAlarm) -> Option<AlarmView> {
    let name = a.alarm_name()?;
    Some(AlarmView {
        name: name.to_string(),
        arn: a.alarm_arn().map(String::from),
        state: AlarmStateValue::Alarm,
        timestamp: transition_millis(a.state_transitioned_timestamp().or(a.state_updated_timestamp())),
        datapoints: Vec::new(),
        threshold: a.threshold(),
        tags: None,
        direction: Some(a.comparison_operator().map_or(Direction::Either, |op| Direction::from_comparison(op.as_str()))),
    })
}

/// A composite alarm in ALARM: no metric, no threshold, no side; only a bare step applies.
fn composite_view(a: &cw::types::CompositeAlarm) -> Option<AlarmView> {
    Some(AlarmView {
        name: a.alarm_name()?.to_string(),
        arn: a.alarm_arn().map(String::from),
        state: AlarmStateValue::Alarm,
        timestamp: transition_millis(a.state_transitioned_timestamp().or(a.state_updated_timestamp())),
        datapoints: Vec::new(),
        threshold: None,
        tags: None,
        direction: Some(Direction::Either),
    })
}

/// What backs a capacity provider: its `type`, else the provider detail it carries.
fn provider(cp: &ecs::types::CapacityProvider) -> Provider {
    use ecs::types::CapacityProviderType as T;
    let asg = cp.auto_scaling_group_provider().map(|p| ProviderKind::AutoScalingGroup {
        group_arn: p.auto_scaling_group_arn().to_string(),
        managed_scaling: p.managed_scaling().and_then(|m| m.status()) == Some(&ecs::types::ManagedScalingStatus::Enabled),
    });
    let kind = match (cp.r#type(), asg) {
        (Some(T::ManagedInstances), _) => ProviderKind::ManagedInstances,
        (None, _) if cp.managed_instances_provider().is_some() => ProviderKind::ManagedInstances,
        (Some(T::Ec2Autoscaling) | None, Some(asg)) => asg,
        _ => ProviderKind::Other,
    };
    Provider { name: cp.name().unwrap_or_default().to_string(), kind }
}

fn transition_millis(t: Option<&aws_smithy_types::DateTime>) -> String {
    t.and_then(|t| t.to_millis().ok()).map(|ms| ms.to_string()).unwrap_or_default()
}

/// What GetMetricData must be asked to read the alarm's metric as the alarm does; `None` when
/// the alarm has neither a metric nor `Metrics` (a PromQL alarm, say).
fn metric_query(a: &cw::types::MetricAlarm) -> Option<MetricQuery> {
    let evaluation_periods = a.evaluation_periods().unwrap_or(1).max(1) as i64;
    if !a.metrics().is_empty() {
        // "One item in the Metrics array is the math expression that the alarm watches. This
        // expression by designated by having ReturnData set to true" (MetricAlarm.Metrics); an
        // anomaly band's query is the threshold, not the value.
        let watched = |q: &&cw::types::MetricDataQuery| q.return_data() == Some(true) && q.id() != a.threshold_metric_id();
        let result = a.metrics().iter().find(watched).or_else(|| (a.metrics().len() == 1).then(|| &a.metrics()[0]))?;
        let period = a.period().map(i64::from).or_else(|| a.metrics().iter().filter_map(|q| q.period().or(q.metric_stat().and_then(|m| m.period()))).max().map(i64::from))?;
        return Some(MetricQuery { queries: a.metrics().to_vec(), result_id: result.id()?.to_string(), period, evaluation_periods });
    }
    let stat = a.statistic().map(|s| s.as_str().to_string()).or_else(|| a.extended_statistic().map(String::from))?;
    let period = a.period()?;
    let metric = cw::types::Metric::builder()
        .set_namespace(a.namespace().map(String::from))
        .set_metric_name(Some(a.metric_name()?.to_string()))
        .set_dimensions(Some(a.dimensions().to_vec()))
        .build();
    let stat = cw::types::MetricStat::builder().metric(metric).period(period).stat(stat).set_unit(a.unit().cloned()).build();
    let query = cw::types::MetricDataQuery::builder().id(QUERY_ID).metric_stat(stat).return_data(true).build();
    Some(MetricQuery { queries: vec![query], result_id: QUERY_ID.to_string(), period: period as i64, evaluation_periods })
}

fn observed_service(s: &ecs::types::Service) -> ObservedService {
    ObservedService {
        task_definition: s.task_definition().unwrap_or_default().to_string(),
        desired_count: s.desired_count(),
        running_count: s.running_count(),
        pending_count: s.pending_count(),
        tags: tags::ecs_tags(s.tags()),
        deployments: s
            .deployments()
            .iter()
            .map(|d| ObservedDeployment { status: d.status().map(String::from), rollout_state: d.rollout_state().map(|r| r.as_str().to_string()) })
            .collect(),
    }
}

fn task_def_sizes(td: &ecs::types::TaskDefinition) -> TaskDefSizes {
    TaskDefSizes {
        cpu: td.cpu().map(String::from),
        memory: td.memory().map(String::from),
        containers: td
            .container_definitions()
            .iter()
            .map(|c| ContainerSize { cpu: c.cpu(), memory: c.memory(), memory_reservation: c.memory_reservation() })
            .collect(),
    }
}

fn resource(rs: &[ecs::types::Resource], name: &str) -> i64 {
    rs.iter().find(|r| r.name() == Some(name)).map_or(0, |r| r.integer_value() as i64)
}

fn instance(ci: &ecs::types::ContainerInstance) -> Instance {
    Instance {
        arn: ci.container_instance_arn().unwrap_or_default().to_string(),
        ec2_id: ci.ec2_instance_id().map(String::from),
        status: ci.status().unwrap_or_default().to_string(),
        remaining_cpu: resource(ci.remaining_resources(), "CPU"),
        remaining_memory: resource(ci.remaining_resources(), "MEMORY"),
        registered_cpu: resource(ci.registered_resources(), "CPU"),
        registered_memory: resource(ci.registered_resources(), "MEMORY"),
        running_tasks: ci.running_tasks_count() as i64,
        pending_tasks: ci.pending_tasks_count() as i64,
        registered_at: ci.registered_at().map(|t| t.secs()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capacity::{task_size, TaskSize};
    use crate::decide::rollout_in_progress;

    #[test]
    fn task_sizes_from_the_sdk() {
        use ecs::types::{ContainerDefinition, TaskDefinition};
        let c = |cpu, mem: Option<i32>, res: Option<i32>| ContainerDefinition::builder().cpu(cpu).set_memory(mem).set_memory_reservation(res).build();
        let td = TaskDefinition::builder().container_definitions(c(256, Some(512), None)).container_definitions(c(128, None, Some(64))).build();
        assert_eq!(task_size(&task_def_sizes(&td)), TaskSize { cpu: 384, memory: 576 });
        let td = TaskDefinition::builder().cpu("1024").memory("2048").container_definitions(c(0, Some(10), None)).build();
        assert_eq!(task_size(&task_def_sizes(&td)), TaskSize { cpu: 1024, memory: 2048 });
    }

    #[test]
    fn rollout_detection_from_the_sdk() {
        use ecs::types::{Deployment, DeploymentRolloutState as R, Service};
        let dep = |status: &str, state: R| Deployment::builder().status(status).rollout_state(state).build();
        let svc = |deps: Vec<Deployment>, desired: i32, running: i32| {
            observed_service(&Service::builder().set_deployments(Some(deps)).desired_count(desired).running_count(running).build())
        };
        // ECS's PRIMARY IN_PROGRESS with every task running (not yet healthy, or baking): a rollout.
        assert!(rollout_in_progress(&svc(vec![dep("PRIMARY", R::InProgress)], 4, 4)));
        assert!(rollout_in_progress(&svc(vec![dep("PRIMARY", R::InProgress)], 4, 0)));
        assert!(rollout_in_progress(&svc(vec![dep("PRIMARY", R::InProgress), dep("ACTIVE", R::Completed)], 4, 4)));
        assert!(!rollout_in_progress(&svc(vec![dep("PRIMARY", R::Completed)], 4, 2)));
    }

    #[test]
    fn instances_and_alarms_from_the_sdk() {
        use ecs::types::{ContainerInstance, Resource};
        let r = |name: &str, v: i32| Resource::builder().name(name).integer_value(v).build();
        let ci = ContainerInstance::builder()
            .container_instance_arn("arn:ci/a")
            .ec2_instance_id("i-a")
            .status("ACTIVE")
            .remaining_resources(r("CPU", 512))
            .remaining_resources(r("MEMORY", 1024))
            .registered_resources(r("CPU", 4096))
            .registered_resources(r("MEMORY", 7482))
            .running_tasks_count(3)
            .build();
        let i = instance(&ci);
        assert_eq!((i.remaining_cpu, i.remaining_memory, i.registered_cpu, i.registered_memory, i.running_tasks, i.pending_tasks), (512, 1024, 4096, 7482, 3, 0));
        let ci = ContainerInstance::builder().registered_at(aws_smithy_types::DateTime::from_secs(1_764_000_000)).build();
        assert_eq!(instance(&ci).registered_at, Some(1_764_000_000));
        // The reason data of the transition is not what the re-evaluation weighs (it may be
        // hours old): the view carries the alarm's own threshold and no datapoints yet.
        let a = cw::types::MetricAlarm::builder()
            .alarm_name("random-cpu-high")
            .threshold(60.0)
            .comparison_operator(cw::types::ComparisonOperator::LessThanThreshold)
            .state_reason_data(r#"{"recentDatapoints":[85.0,90.0],"threshold":70.0}"#)
            .state_updated_timestamp(aws_smithy_types::DateTime::from_millis(1764081312748))
            .build();
        let v = alarm_view(&a).unwrap();
        assert_eq!((v.timestamp.as_str(), v.datapoints.as_slice(), v.threshold, v.direction), ("1764081312748", &[][..], Some(60.0), Some(Direction::Below)));
        let v = alarm_view(&cw::types::MetricAlarm::builder().alarm_name("x").threshold(60.0).build()).unwrap();
        assert_eq!((v.timestamp.as_str(), v.datapoints.len(), v.threshold, v.direction), ("", 0, Some(60.0), Some(Direction::Either)));
        assert!(alarm_view(&cw::types::MetricAlarm::builder().build()).is_none());
        let c = cw::types::CompositeAlarm::builder()
            .alarm_name("stage01-degraded")
            .alarm_rule("ALARM(random-cpu-high)")
            .state_transitioned_timestamp(aws_smithy_types::DateTime::from_millis(1764081313102))
            .build();
        let v = composite_view(&c).unwrap();
        assert_eq!((v.timestamp.as_str(), v.threshold, v.direction), ("1764081313102", None, Some(Direction::Either)));
    }

    /// GetMetricData reads what the alarm reads (CloudWatch API reference, MetricAlarm and
    /// MetricDataQuery): its metric, statistic or extended statistic, period, dimensions and
    /// unit; or its `Metrics` as they are, the watched one being the ReturnData one that is not
    /// an anomaly band.
    #[test]
    fn metric_queries_follow_the_alarm() {
        use cw::types::{Dimension, Metric, MetricAlarm, MetricDataQuery, MetricStat, StandardUnit, Statistic};
        let dim = |n: &str, v: &str| Dimension::builder().name(n).value(v).build();
        let single = MetricAlarm::builder()
            .alarm_name("random-cpu-high")
            .namespace("AWS/ECS")
            .metric_name("CPUUtilization")
            .dimensions(dim("ClusterName", "stage01"))
            .dimensions(dim("ServiceName", "random"))
            .statistic(Statistic::Average)
            .period(60)
            .evaluation_periods(2)
            .unit(StandardUnit::Percent)
            .build();
        let q = metric_query(&single).unwrap();
        assert_eq!((q.result_id.as_str(), q.period, q.evaluation_periods, q.queries.len()), (QUERY_ID, 60, 2, 1));
        let stat = q.queries[0].metric_stat().unwrap();
        let metric = stat.metric().unwrap();
        assert_eq!((metric.namespace(), metric.metric_name(), metric.dimensions().len()), (Some("AWS/ECS"), Some("CPUUtilization"), 2));
        assert_eq!((stat.period(), stat.stat(), stat.unit()), (Some(60), Some("Average"), Some(&StandardUnit::Percent)));
        assert_eq!(q.queries[0].return_data(), Some(true));
        let p90 = MetricAlarm::builder().metric_name("TargetResponseTime").namespace("AWS/ApplicationELB").extended_statistic("p90").period(300).build();
        let q = metric_query(&p90).unwrap();
        assert_eq!((q.queries[0].metric_stat().unwrap().stat(), q.evaluation_periods), (Some("p90"), 1));
        assert!(metric_query(&MetricAlarm::builder().alarm_name("promql").build()).is_none(), "no metric, no Metrics");

        let stat = |name: &str| MetricStat::builder().metric(Metric::builder().namespace("AWS/ApplicationELB").metric_name(name).build()).period(60).stat("Sum").build();
        let math = MetricAlarm::builder()
            .alarm_name("auth-requests-per-task-high")
            .evaluation_periods(3)
            .metrics(MetricDataQuery::builder().id("m1").metric_stat(stat("RequestCount")).return_data(false).build())
            .metrics(MetricDataQuery::builder().id("m2").metric_stat(stat("HealthyHostCount")).return_data(false).build())
            .metrics(MetricDataQuery::builder().id("e1").expression("m1 / m2").return_data(true).build())
            .build();
        let q = metric_query(&math).unwrap();
        assert_eq!((q.result_id.as_str(), q.period, q.evaluation_periods), ("e1", 60, 3));
        assert_eq!(q.queries, math.metrics().to_vec(), "the alarm's queries, as they are");
        let band = MetricAlarm::builder()
            .alarm_name("anomaly")
            .threshold_metric_id("ad1")
            .metrics(MetricDataQuery::builder().id("m1").metric_stat(stat("RequestCount")).return_data(true).build())
            .metrics(MetricDataQuery::builder().id("ad1").expression("ANOMALY_DETECTION_BAND(m1, 2)").return_data(true).build())
            .build();
        assert_eq!(metric_query(&band).unwrap().result_id, "m1", "the band is the threshold, not the value");
    }
}
