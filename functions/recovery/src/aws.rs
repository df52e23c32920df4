//! The AWS calls recovery makes, one function per operation: SDK types become the plain observed
//! structs of plan.rs, errors are classified with `Error::aws`. (ELB's health reading is elb.rs.)

use std::collections::BTreeSet;

use autopilot::aws_sdk_ecs as ecs;
use autopilot::aws_sdk_elasticloadbalancingv2 as elbv2;
use autopilot::events::Sensitive;
use autopilot::tags::ecs_tags;
use autopilot::Error;

use crate::elb::{self, TargetGroupHealth};
use crate::plan::ObservedService;
use crate::restart::{ObservedTask, Rerun};

pub struct Aws {
    pub ecs: ecs::Client,
    pub elb: elbv2::Client,
}

/// What a stopped task ran with that its re-run is given again, as DescribeTasks reported it. No
/// decision reads it: it goes back to RunTask as it came. (What RunTask was given and DescribeTasks
/// cannot show is in docs/functions.md; what it shows and RunTask cannot take back is
/// `restart::not_carried`.)
#[derive(Debug, Clone, Default)]
pub struct Relaunch {
    pub group: Option<String>,
    pub started_by: Option<String>,
    /// The version the task ran on (`1.4.0` when it was run with `LATEST`): the re-run keeps it.
    pub platform_version: Option<String>,
    pub enable_execute_command: bool,
    /// The capacity provider the task ran on: the only part of a capacity provider strategy
    /// DescribeTasks reports ("The capacity provider that's associated with the task").
    pub capacity_provider: Option<String>,
    pub launch_type: Option<ecs::types::LaunchType>,
    /// The task's overrides (containers', and the task's cpu, memory, ephemeralStorage,
    /// taskRoleArn, executionRoleArn). Container overrides hold environment values: carried,
    /// never printed.
    pub overrides: Sensitive<Option<ecs::types::TaskOverride>>,
}

/// What ECS answered a RunTask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunTaskAnswer {
    /// The task ECS started for this clientToken (now, or on an earlier request with it).
    Started(String),
    /// ECS answered and started nothing: its `failures` (`RESOURCE:MEMORY: …`), maybe none.
    NotPlaced(Vec<String>),
}

impl Aws {
    pub fn new(env: &autopilot::runtime::Env) -> Self {
        Aws { ecs: autopilot::clients::ecs(env), elb: autopilot::clients::elbv2(env) }
    }

    /// DescribeTasks of one task, with its tags: what the re-run decisions see, and what a re-run
    /// is given again. `None` when ECS no longer describes it.
    pub async fn describe_task(&self, cluster: &str, task_arn: &str) -> Result<Option<(ObservedTask, Relaunch)>, Error> {
        let described = self
            .ecs
            .describe_tasks()
            .cluster(cluster)
            .tasks(task_arn)
            .include(ecs::types::TaskField::Tags)
            .send()
            .await
            .map_err(|e| Error::aws("ecs", "DescribeTasks", e))?;
        let Some(task) = described.tasks().iter().find(|x| x.task_arn() == Some(task_arn)) else { return Ok(None) };
        let enis = || task.attachments().iter().filter(|a| a.r#type() == Some("ElasticNetworkInterface"));
        let detail = |a: &ecs::types::Attachment, name: &str| a.details().iter().find(|d| d.name() == Some(name)).and_then(|d| d.value()).map(str::to_string);
        let observed = ObservedTask {
            tags: ecs_tags(task.tags()),
            task_definition: task.task_definition_arn().map(str::to_string),
            launch_type: task.launch_type().map(|l| l.as_str().to_string()),
            eni: enis().next().is_some(),
            eni_subnets: enis().flat_map(|a| a.details().iter().filter(|d| d.name() == Some("subnetId")).filter_map(|d| d.value().map(str::to_string))).collect(),
            // Amazon EBS volumes configured at launch: DescribeTasks shows an attachment with
            // "roleArn, deleteOnTermination, volumeName, volumeId" (ECS `Attachment.details`).
            ebs_volumes: task
                .attachments()
                .iter()
                .filter(|a| a.r#type() == Some("AmazonElasticBlockStorage"))
                .map(|a| detail(a, "volumeName").unwrap_or_else(|| "unnamed".into()))
                .collect(),
        };
        let relaunch = Relaunch {
            group: task.group().map(str::to_string),
            started_by: task.started_by().map(str::to_string),
            platform_version: task.platform_version().map(str::to_string),
            enable_execute_command: task.enable_execute_command(),
            capacity_provider: task.capacity_provider_name().map(str::to_string),
            launch_type: task.launch_type().cloned(),
            overrides: Sensitive(task.overrides().cloned()),
        };
        Ok(Some((observed, relaunch)))
    }

    /// The names of the containers a task definition marks essential (DescribeTaskDefinition
    /// `containerDefinitions[].essential`: "If this parameter is omitted, a container is assumed
    /// to be essential", ECS API reference). `None` when ECS does not describe it (ClientException
    /// "Unable to describe task definition.").
    pub async fn essential_containers(&self, task_definition: &str) -> Result<Option<BTreeSet<String>>, Error> {
        let described = match self.ecs.describe_task_definition().task_definition(task_definition).send().await {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|e| e.is_client_exception()) => return Ok(None),
            Err(e) => return Err(Error::aws("ecs", "DescribeTaskDefinition", e)),
        };
        let Some(td) = described.task_definition() else { return Ok(None) };
        // Only the names and flags leave this function: the definition's environment values never do.
        Ok(Some(td.container_definitions().iter().filter(|c| c.essential().unwrap_or(true)).filter_map(|c| c.name().map(str::to_string)).collect()))
    }

    /// RunTask: one task as the stopped one ran (`relaunch`), as the re-run plan says.
    ///
    /// A ConflictException names the tasks already started with this clientToken under other
    /// parameters (its `resourceIds`, ECS RunTask API reference): that task is the re-run.
    pub async fn run_task(&self, cluster: &str, relaunch: &Relaunch, rerun: &Rerun) -> Result<RunTaskAnswer, Error> {
        let mut req = self
            .ecs
            .run_task()
            .cluster(cluster)
            .task_definition(&rerun.task_definition)
            .count(1)
            .client_token(&rerun.client_token)
            .set_overrides(relaunch.overrides.0.clone())
            .set_group(relaunch.group.clone())
            .set_started_by(relaunch.started_by.clone())
            .set_platform_version(relaunch.platform_version.clone())
            .set_tags(Some(rerun.tags.iter().map(|(k, v)| ecs::types::Tag::builder().key(k).value(v).build()).collect()));
        if relaunch.enable_execute_command {
            req = req.enable_execute_command(true);
        }
        if rerun.enable_ecs_managed_tags {
            req = req.enable_ecs_managed_tags(true);
        }
        // "If a capacityProviderStrategy is specified, the launchType parameter must be omitted"
        // (RunTask API reference).
        req = match (&relaunch.capacity_provider, &relaunch.launch_type) {
            (Some(cp), _) => req.capacity_provider_strategy(ecs::types::CapacityProviderStrategyItem::builder().capacity_provider(cp).weight(1).build().map_err(|e| Error::Refused(e.to_string()))?),
            (None, Some(lt)) => req.launch_type(lt.clone()),
            (None, None) => req,
        };
        if let Some(net) = &rerun.network {
            let vpc = ecs::types::AwsVpcConfiguration::builder()
                .set_subnets(Some(net.subnets.clone()))
                .set_security_groups(Some(net.security_groups.clone()))
                .assign_public_ip(if net.assign_public_ip { ecs::types::AssignPublicIp::Enabled } else { ecs::types::AssignPublicIp::Disabled })
                .build()
                .map_err(|e| Error::Refused(e.to_string()))?;
            req = req.network_configuration(ecs::types::NetworkConfiguration::builder().awsvpc_configuration(vpc).build());
        }
        let out = match req.send().await {
            Ok(out) => out,
            Err(e) => {
                if let Some(ecs::operation::run_task::RunTaskError::ConflictException(c)) = e.as_service_error() {
                    if let Some(arn) = c.resource_ids().first() {
                        return Ok(RunTaskAnswer::Started(arn.clone()));
                    }
                }
                return Err(Error::aws("ecs", "RunTask", e));
            }
        };
        if let Some(arn) = out.tasks().first().and_then(|t| t.task_arn()) {
            return Ok(RunTaskAnswer::Started(arn.to_string()));
        }
        Ok(RunTaskAnswer::NotPlaced(
            out.failures()
                .iter()
                .map(|f| match (f.reason().unwrap_or("?"), f.detail().filter(|d| !d.is_empty())) {
                    (reason, Some(detail)) => format!("{reason}: {detail}"),
                    (reason, None) => reason.to_string(),
                })
                .collect(),
        ))
    }

    /// DescribeServices of one service, with its tags. `None` when ECS does not find it.
    pub async fn describe_service(&self, cluster: &str, service: &str) -> Result<Option<ObservedService>, Error> {
        let described = autopilot::aws::ecs::service(&self.ecs, cluster, service).await?;
        Ok(described.first().map(|svc| ObservedService {
            task_definition: svc.task_definition().map(str::to_string),
            controller: svc.deployment_controller().map(|c| c.r#type().as_str().to_string()),
            tags: ecs_tags(svc.tags()),
            strategy: svc.deployment_configuration().and_then(|c| c.strategy()).map(|s| s.as_str().to_string()),
            rolling_out: svc
                .deployments()
                .iter()
                .any(|d| d.status() == Some("PRIMARY") && d.rollout_state().is_some_and(|r| r.as_str() == "IN_PROGRESS")),
        }))
    }

    /// ECS's own rollback of the service's deployment in progress: the newest IN_PROGRESS record
    /// (ListServiceDeployments), stopped with stopType ROLLBACK (StopServiceDeployment). `Ok(None)`
    /// when ECS lists no deployment in progress (it ended meanwhile).
    pub async fn roll_back_deployment_in_progress(&self, cluster: &str, service: &str) -> Result<Option<String>, Error> {
        use autopilot::aws_sdk_ecs::types::{ServiceDeploymentStatus, StopServiceDeploymentStopType};
        let listed = self
            .ecs
            .list_service_deployments()
            .cluster(cluster)
            .service(service)
            .status(ServiceDeploymentStatus::InProgress)
            .send()
            .await
            .map_err(|e| Error::aws("ecs", "ListServiceDeployments", e))?;
        let newest = listed.service_deployments().iter().max_by_key(|d| d.created_at().and_then(|t| t.to_millis().ok()).unwrap_or(0)).and_then(|d| d.service_deployment_arn());
        let Some(arn) = newest else { return Ok(None) };
        self.ecs
            .stop_service_deployment()
            .service_deployment_arn(arn)
            .stop_type(StopServiceDeploymentStopType::Rollback)
            .send()
            .await
            .map_err(|e| Error::aws("ecs", "StopServiceDeployment", e))?;
        Ok(Some(arn.to_string()))
    }

    /// UpdateService with the task definition only: desiredCount belongs to the scaler.
    pub async fn update_service_task_definition(&self, cluster: &str, service: &str, task_definition: &str) -> Result<(), Error> {
        self.ecs.update_service().cluster(cluster).service(service).task_definition(task_definition).send().await.map_err(|e| Error::aws("ecs", "UpdateService", e))?;
        Ok(())
    }

    /// DescribeTargetHealth and DescribeTargetGroups of one target group (elb.rs).
    pub async fn target_group_health(&self, target_group_arn: &str) -> Result<TargetGroupHealth, Error> {
        elb::target_group_health(&self.elb, target_group_arn).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_mocks::mock;

    use crate::mock::{ecs_client, elb_client};

    const TASK: &str = "arn:aws:ecs:us-east-1:123456789012:task/stage01/0123abcd";

    #[tokio::test]
    async fn observed_task_and_service_are_plain_data() {
        let tasks = mock!(ecs::Client::describe_tasks).then_output(|| {
            let eni = |subnet: &str| ecs::types::Attachment::builder().r#type("ElasticNetworkInterface").details(ecs::types::KeyValuePair::builder().name("subnetId").value(subnet).build()).build();
            let task = ecs::types::Task::builder()
                .task_arn(TASK)
                .task_definition_arn("arn:aws:ecs:us-east-1:123456789012:task-definition/job:3")
                .launch_type(ecs::types::LaunchType::Fargate)
                .capacity_provider_name("FARGATE_SPOT")
                .attachments(eni("subnet-1"))
                .attachments(ecs::types::Attachment::builder().r#type("Other").details(ecs::types::KeyValuePair::builder().name("subnetId").value("subnet-x").build()).build())
                .attachments(eni("subnet-2"))
                .tags(ecs::types::Tag::builder().key("autopilot:restart").value("on-failure").build())
                .overrides(ecs::types::TaskOverride::builder().container_overrides(ecs::types::ContainerOverride::builder().name("job").environment(ecs::types::KeyValuePair::builder().name("P").value("s3cr3t").build()).build()).build());
            ecs::operation::describe_tasks::DescribeTasksOutput::builder().tasks(ecs::types::Task::builder().task_arn("arn:other").build()).tasks(task.build()).build()
        });
        let services = mock!(ecs::Client::describe_services).then_output(|| {
            let svc = ecs::types::Service::builder()
                .task_definition("arn:aws:ecs:us-east-1:123456789012:task-definition/random:2")
                .deployment_controller(ecs::types::DeploymentController::builder().r#type(ecs::types::DeploymentControllerType::CodeDeploy).build().unwrap())
                .tags(ecs::types::Tag::builder().key("autopilot:rollback").value("on").build());
            ecs::operation::describe_services::DescribeServicesOutput::builder().services(svc.build()).build()
        });
        let aws = Aws { ecs: ecs_client(&[&tasks, &services]), elb: elb_client(&[]) };

        let (task, relaunch) = aws.describe_task("stage01", TASK).await.unwrap().expect("described");
        assert_eq!(
            task,
            ObservedTask {
                tags: [("autopilot:restart".to_string(), "on-failure".to_string())].into_iter().collect(),
                task_definition: Some("arn:aws:ecs:us-east-1:123456789012:task-definition/job:3".into()),
                launch_type: Some("FARGATE".into()),
                eni: true,
                eni_subnets: vec!["subnet-1".into(), "subnet-2".into()],
                ebs_volumes: vec![],
            }
        );
        assert_eq!((relaunch.capacity_provider.as_deref(), relaunch.launch_type.as_ref()), (Some("FARGATE_SPOT"), Some(&ecs::types::LaunchType::Fargate)));
        assert!(relaunch.overrides.0.is_some() && !format!("{relaunch:?}").contains("s3cr3t"), "overrides are carried, never printed");
        assert_eq!(aws.describe_task("stage01", "arn:aws:ecs:us-east-1:123456789012:task/stage01/gone").await.unwrap().map(|t| t.0), None, "another task's answer is not this one's");

        let svc = aws.describe_service("stage01", "random").await.unwrap().expect("found");
        assert_eq!(svc.controller.as_deref(), Some("CODE_DEPLOY"));
        assert_eq!(svc.task_definition.as_deref(), Some("arn:aws:ecs:us-east-1:123456789012:task-definition/random:2"));
        assert_eq!(svc.tags.get("autopilot:rollback").map(String::as_str), Some("on"));
    }
}
