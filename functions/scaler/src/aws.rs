//! The AWS calls the scaler makes, one function per operation, errors classified with
//! `Error::aws`. SDK types stop here: each call answers with the plain observed data that
//! `decide.rs` and `capacity.rs` decide on.

use autopilot::aws_sdk_autoscaling as asg;
use autopilot::aws_sdk_cloudwatch as cw;
use autopilot::events::{AlarmStateValue, ReasonData};
use autopilot::tags::{self, Tags};
use autopilot::Error;
use aws_sdk_ecs as ecs;

use crate::capacity::{AsgProvider, ContainerSize, Instance, ObservedCluster, ObservedGroup, TaskDefSizes};
use crate::decide::{AlarmView, ObservedDeployment, ObservedService};

pub struct Aws {
    pub ecs: ecs::Client,
    pub cw: cw::Client,
    pub asg: asg::Client,
}

/// One page of DescribeAlarms.
pub struct AlarmPage {
    pub alarms: Vec<AlarmView>,
    pub next_token: Option<String>,
}

impl Aws {
    pub fn new(sdk: &autopilot::aws_config::SdkConfig) -> Self {
        Aws { ecs: ecs::Client::new(sdk), cw: cw::Client::new(sdk), asg: asg::Client::new(sdk) }
    }

    // ------------------------------------------------------------------ CloudWatch

    pub async fn list_tags_for_resource(&self, arn: &str) -> Result<Tags, Error> {
        let out = self.cw.list_tags_for_resource().resource_arn(arn).send().await.map_err(|e| Error::aws("cloudwatch", "ListTagsForResource", e))?;
        Ok(out.tags().iter().filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or_default().to_string()))).collect())
    }

    /// One page of the metric alarms in ALARM (alarms without a name are left out). Their tags
    /// are not read here (`tags: None`).
    pub async fn describe_alarms_in_alarm(&self, token: Option<String>) -> Result<AlarmPage, Error> {
        let out = self
            .cw
            .describe_alarms()
            .state_value(cw::types::StateValue::Alarm)
            .alarm_types(cw::types::AlarmType::MetricAlarm)
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| Error::aws("cloudwatch", "DescribeAlarms", e))?;
        Ok(AlarmPage { alarms: out.metric_alarms().iter().filter_map(alarm_view).collect(), next_token: out.next_token().map(String::from) })
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

    /// The Auto Scaling group providers among `names`.
    pub async fn describe_capacity_providers(&self, names: &[String]) -> Result<Vec<AsgProvider>, Error> {
        let out = self
            .ecs
            .describe_capacity_providers()
            .set_capacity_providers(Some(names.to_vec()))
            .send()
            .await
            .map_err(|e| Error::aws("ecs", "DescribeCapacityProviders", e))?;
        Ok(out
            .capacity_providers()
            .iter()
            .filter_map(|cp| cp.auto_scaling_group_provider())
            .map(|p| AsgProvider {
                group_arn: p.auto_scaling_group_arn().to_string(),
                managed_scaling: p.managed_scaling().and_then(|m| m.status()) == Some(&ecs::types::ManagedScalingStatus::Enabled),
            })
            .collect())
    }

    pub async fn list_services(&self, cluster: &str) -> Result<Vec<String>, Error> {
        autopilot::aws::ecs::service_arns(&self.ecs, cluster).await
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
            members: g.instances().iter().filter_map(|i| Some((i.instance_id()?.to_string(), i.protected_from_scale_in().unwrap_or(false)))).collect(),
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
/// epoch milliseconds, the threshold the reasonData's, else the alarm's own.
fn alarm_view(a: &cw::types::MetricAlarm) -> Option<AlarmView> {
    let name = a.alarm_name()?;
    let rd: Option<ReasonData> = a.state_reason_data().and_then(|s| serde_json::from_str(s).ok());
    Some(AlarmView {
        name: name.to_string(),
        arn: a.alarm_arn().map(String::from),
        state: AlarmStateValue::Alarm,
        timestamp: a.state_transitioned_timestamp().or(a.state_updated_timestamp()).and_then(|t| t.to_millis().ok()).map(|ms| ms.to_string()).unwrap_or_default(),
        datapoints: rd.as_ref().map(|r| r.datapoints()).unwrap_or_default(),
        threshold: rd.as_ref().and_then(|r| r.threshold).or(a.threshold()),
        tags: None,
    })
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
        // moto's eternal PRIMARY IN_PROGRESS with the service running what it wants: no rollout.
        assert!(!rollout_in_progress(&svc(vec![dep("PRIMARY", R::InProgress)], 4, 4)));
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
        let a = cw::types::MetricAlarm::builder()
            .alarm_name("random-cpu-high")
            .threshold(60.0)
            .state_reason_data(r#"{"recentDatapoints":[85.0,90.0],"threshold":70.0}"#)
            .state_updated_timestamp(aws_smithy_types::DateTime::from_millis(1764081312748))
            .build();
        let v = alarm_view(&a).unwrap();
        assert_eq!((v.timestamp.as_str(), v.datapoints.as_slice(), v.threshold), ("1764081312748", &[85.0, 90.0][..], Some(70.0)));
        let v = alarm_view(&cw::types::MetricAlarm::builder().alarm_name("x").threshold(60.0).build()).unwrap();
        assert_eq!((v.timestamp.as_str(), v.datapoints.len(), v.threshold), ("", 0, Some(60.0)));
        assert!(alarm_view(&cw::types::MetricAlarm::builder().build()).is_none());
    }
}
