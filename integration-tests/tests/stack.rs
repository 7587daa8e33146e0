//! The deployed stack has the resources of template.yaml, and they behave as the design needs.
//!
//! Run with `make test`. The HTTP API is left out: community LocalStack reports it created but does
//! not create it (the api function's URL stands in for it locally, and cfn-lint checks it
//! statically). The triggers are the stack's own and enabled: the queues belong to the deployed
//! resize function, so nothing here receives from them (the redrive is proven in chain.rs).

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::{AttributeValue, KeyType, ScalarAttributeType, TimeToLiveStatus};
use aws_sdk_lambda::types::FunctionResponseType;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;
use aws_sdk_sqs::types::QueueAttributeName;
use resizer_app::{SETTINGS, STAGE_ENV};
use resizer_aws::resources;
use resizer_core::job::JobStatus;
use resizer_integration_tests::{Error, Result, TestEnv, unique};

/// Environment variables every function gets (the Rust config reads them), and the stack output
/// each resource-naming one must equal: the resources' list, the settings' list, and the log level.
fn function_env() -> Vec<(&'static str, Option<&'static str>)> {
    resources::ALL
        .iter()
        .filter(|r| r.everywhere)
        .filter_map(|r| Some((r.env?, Some(r.output))))
        .chain(SETTINGS.iter().map(|s| (s.env, None)))
        .chain([(STAGE_ENV, None)])
        .chain([("RUST_LOG", None)])
        .collect()
}

fn now_epoch() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

#[tokio::test]
async fn stack_has_every_output() -> Result<()> {
    let env = TestEnv::load().await?;
    for r in resources::ALL {
        env.stack.output(r.output)?;
    }
    Ok(())
}

#[tokio::test]
async fn buckets_exist_private_and_encrypted() -> Result<()> {
    let env = TestEnv::load().await?;
    for output in ["StagingBucketName", "ResultsBucketName"] {
        let bucket = env.stack.output(output)?;
        env.s3.head_bucket().bucket(bucket).send().await?;

        let block = env
            .s3
            .get_public_access_block()
            .bucket(bucket)
            .send()
            .await?;
        let block = block
            .public_access_block_configuration()
            .ok_or_else(|| Error::msg(format!("{bucket}: no public access block")))?;
        assert_eq!(block.block_public_acls(), Some(true), "{bucket}");
        assert_eq!(block.ignore_public_acls(), Some(true), "{bucket}");
        assert_eq!(block.block_public_policy(), Some(true), "{bucket}");
        assert_eq!(block.restrict_public_buckets(), Some(true), "{bucket}");

        let encryption = env.s3.get_bucket_encryption().bucket(bucket).send().await?;
        let algorithm = encryption
            .server_side_encryption_configuration()
            .and_then(|c| c.rules().first())
            .and_then(|r| r.apply_server_side_encryption_by_default())
            .map(|d| d.sse_algorithm().clone());
        assert_eq!(algorithm, Some(ServerSideEncryption::Aes256), "{bucket}");
        // The lifecycle rules are not checked here: LocalStack's CloudFormation does not apply a
        // bucket's LifecycleConfiguration. cfn-lint checks them in the template.
    }
    Ok(())
}

/// A table of the template: the output naming it, its key schema (all string keys) and TTL attribute.
struct TableSpec {
    output: &'static str,
    keys: &'static [(&'static str, KeyType)],
    ttl: Option<&'static str>,
}

impl TableSpec {
    fn new(
        output: &'static str,
        keys: &'static [(&'static str, KeyType)],
        ttl: Option<&'static str>,
    ) -> Self {
        TableSpec { output, keys, ttl }
    }
}

#[tokio::test]
async fn tables_have_the_template_key_schemas_and_ttl() -> Result<()> {
    let env = TestEnv::load().await?;
    let expected = [
        TableSpec::new(
            "JobsTableName",
            &[("job_id", KeyType::Hash)],
            Some("expires_at"),
        ),
        TableSpec::new("ApiKeysTableName", &[("key_id", KeyType::Hash)], None),
        TableSpec::new(
            "CustomersTableName",
            &[("customer_id", KeyType::Hash)],
            None,
        ),
        TableSpec::new(
            "PresetsTableName",
            &[("customer_id", KeyType::Hash), ("name", KeyType::Range)],
            None,
        ),
        TableSpec::new(
            "UsageTableName",
            &[("pk", KeyType::Hash), ("sk", KeyType::Range)],
            Some("expires_at"),
        ),
        TableSpec::new(
            "UsageRollupsTableName",
            &[("customer_id", KeyType::Hash), ("period", KeyType::Range)],
            None,
        ),
    ];
    for TableSpec { output, keys, ttl } in expected {
        let table_name = env.stack.output(output)?;
        let described = env
            .dynamodb
            .describe_table()
            .table_name(table_name)
            .send()
            .await?;
        let table = described
            .table()
            .ok_or_else(|| Error::msg(format!("{table_name}: no description")))?;

        let schema: Vec<(&str, KeyType)> = table
            .key_schema()
            .iter()
            .map(|k| (k.attribute_name(), k.key_type().clone()))
            .collect();
        assert_eq!(schema, keys.to_vec(), "{table_name}: key schema");

        let types: HashMap<&str, &ScalarAttributeType> = table
            .attribute_definitions()
            .iter()
            .map(|a| (a.attribute_name(), a.attribute_type()))
            .collect();
        for (attribute, _) in keys {
            assert_eq!(
                types.get(attribute),
                Some(&&ScalarAttributeType::S),
                "{table_name}: {attribute} must be a string key"
            );
        }

        let billing = table
            .billing_mode_summary()
            .and_then(|b| b.billing_mode())
            .map(|m| m.as_str().to_owned());
        assert_eq!(
            billing.as_deref(),
            Some("PAY_PER_REQUEST"),
            "{table_name}: on-demand"
        );

        let ttl_described = env
            .dynamodb
            .describe_time_to_live()
            .table_name(table_name)
            .send()
            .await?;
        let description = ttl_described.time_to_live_description();
        match ttl {
            Some(attribute) => {
                assert_eq!(
                    description.and_then(|d| d.time_to_live_status()),
                    Some(&TimeToLiveStatus::Enabled),
                    "{table_name}: TTL"
                );
                assert_eq!(
                    description.and_then(|d| d.attribute_name()),
                    Some(attribute),
                    "{table_name}: TTL attribute"
                );
            }
            None => assert_ne!(
                description.and_then(|d| d.time_to_live_status()),
                Some(&TimeToLiveStatus::Enabled),
                "{table_name}: no TTL expected"
            ),
        }
    }
    Ok(())
}

#[tokio::test]
async fn jobs_queue_redrives_to_the_dlq_and_outlasts_the_resize_timeout() -> Result<()> {
    let env = TestEnv::load().await?;
    let queue = env
        .sqs
        .get_queue_attributes()
        .queue_url(env.stack.output("JobsQueueUrl")?)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await?;
    let attributes = queue.attributes().cloned().unwrap_or_default();
    let get = |name: QueueAttributeName| -> Result<String> {
        attributes
            .get(&name)
            .cloned()
            .ok_or_else(|| Error::msg(format!("jobs queue: no attribute {name}")))
    };
    assert_eq!(
        get(QueueAttributeName::QueueArn)?,
        env.stack.output("JobsQueueArn")?
    );

    let redrive: serde_json::Value =
        serde_json::from_str(&get(QueueAttributeName::RedrivePolicy)?)?;
    assert_eq!(
        redrive["deadLetterTargetArn"].as_str(),
        Some(env.stack.output("JobsDlqArn")?),
        "jobs queue redrives to the jobs DLQ"
    );
    let max_receive = match &redrive["maxReceiveCount"] {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => s.parse().ok(),
        _ => None,
    };
    let configured = env
        .stack
        .parameter("MaxReceiveCount")
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    assert_eq!(max_receive, Some(configured), "maxReceiveCount");

    let resize = env
        .lambda
        .get_function_configuration()
        .function_name(env.stack.output("ResizeFunctionName")?)
        .send()
        .await?;
    let resize_timeout = i64::from(resize.timeout().unwrap_or_default());
    let visibility: i64 = get(QueueAttributeName::VisibilityTimeout)?.parse()?;
    assert!(resize_timeout > 0, "resize timeout");
    assert!(
        visibility >= 6 * resize_timeout,
        "visibility timeout {visibility}s must be at least 6x the resize timeout {resize_timeout}s"
    );

    let dlq = env
        .sqs
        .get_queue_attributes()
        .queue_url(env.stack.output("JobsDlqUrl")?)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await?;
    let dlq_attributes = dlq.attributes().cloned().unwrap_or_default();
    assert_eq!(
        dlq_attributes
            .get(&QueueAttributeName::QueueArn)
            .map(String::as_str),
        Some(env.stack.output("JobsDlqArn")?)
    );
    assert_eq!(
        dlq_attributes
            .get(&QueueAttributeName::MessageRetentionPeriod)
            .map(String::as_str),
        Some("1209600"),
        "the DLQ keeps messages 14 days"
    );
    let dlq_visibility: i64 = dlq_attributes
        .get(&QueueAttributeName::VisibilityTimeout)
        .map(String::as_str)
        .unwrap_or("0")
        .parse()?;
    assert!(
        dlq_visibility >= resize_timeout,
        "resize consumes the DLQ too"
    );
    Ok(())
}

#[tokio::test]
async fn functions_have_the_template_configuration() -> Result<()> {
    let env = TestEnv::load().await?;
    for output in [
        "ApiFunctionName",
        "ResizeFunctionName",
        "AggregateFunctionName",
        "AggregateSliceFunctionName",
        "SweepFunctionName",
    ] {
        let name = env.stack.output(output)?;
        let config = env
            .lambda
            .get_function_configuration()
            .function_name(name)
            .send()
            .await?;
        assert_eq!(
            config.runtime().map(|r| r.as_str()),
            Some("provided.al2023"),
            "{name}"
        );
        assert_eq!(config.handler(), Some("bootstrap"), "{name}");
        assert_eq!(
            config
                .logging_config()
                .and_then(|l| l.log_format())
                .map(|f| f.as_str()),
            Some("JSON"),
            "{name}: JSON logs"
        );
        let variables = config
            .environment()
            .and_then(|e| e.variables())
            .cloned()
            .unwrap_or_default();
        for (variable, output) in function_env() {
            let value = variables
                .get(variable)
                .ok_or_else(|| Error::msg(format!("{name}: no environment variable {variable}")))?;
            if let Some(output) = output {
                assert_eq!(value, env.stack.output(output)?, "{name}: {variable}");
            }
        }
    }
    Ok(())
}

#[tokio::test]
async fn resize_consumes_both_queues_one_message_at_a_time() -> Result<()> {
    let env = TestEnv::load().await?;
    let mappings = env
        .lambda
        .list_event_source_mappings()
        .function_name(env.stack.output("ResizeFunctionName")?)
        .send()
        .await?;
    let sources: BTreeSet<&str> = mappings
        .event_source_mappings()
        .iter()
        .filter_map(|m| m.event_source_arn())
        .collect();
    let expected: BTreeSet<&str> = [
        env.stack.output("JobsQueueArn")?,
        env.stack.output("JobsDlqArn")?,
    ]
    .into();
    assert_eq!(sources, expected, "resize's event sources");

    for mapping in mappings.event_source_mappings() {
        let source = mapping.event_source_arn().unwrap_or("?");
        assert_eq!(mapping.batch_size(), Some(1), "{source}: batch size");
        assert!(
            mapping
                .function_response_types()
                .contains(&FunctionResponseType::ReportBatchItemFailures),
            "{source}: partial batch responses"
        );
        let state = mapping.state().unwrap_or("?");
        assert!(matches!(state, "Enabled" | "Enabling"), "{source}: {state}");
    }
    Ok(())
}

#[tokio::test]
async fn an_object_put_in_staging_reads_back() -> Result<()> {
    let env = TestEnv::load().await?;
    let bucket = env.stack.output("StagingBucketName")?;
    let key = unique("integration-tests/staging");
    let body: Vec<u8> = (0..70_000u32).map(|i| (i * 31 % 251) as u8).collect();

    env.s3
        .put_object()
        .bucket(bucket)
        .key(&key)
        .content_type("application/octet-stream")
        .body(ByteStream::from(body.clone()))
        .send()
        .await?;
    let object = env.s3.get_object().bucket(bucket).key(&key).send().await?;
    let read = object.body.collect().await?.into_bytes();
    env.s3
        .delete_object()
        .bucket(bucket)
        .key(&key)
        .send()
        .await?;

    assert_eq!(read.len(), body.len());
    assert!(
        read.as_ref() == body.as_slice(),
        "the object reads back unchanged"
    );
    Ok(())
}

#[tokio::test]
async fn a_presigned_get_url_downloads_with_a_plain_http_client() -> Result<()> {
    let env = TestEnv::load().await?;
    let bucket = env.stack.output("ResultsBucketName")?;
    // Results live under results/ (the prefix the lifecycle rule expires and the api may presign).
    let key = format!("{}.bin", unique("results/integration-tests/presign"));
    let body = b"presigned result bytes".repeat(100);
    env.s3
        .put_object()
        .bucket(bucket)
        .key(&key)
        .body(ByteStream::from(body.clone()))
        .send()
        .await?;

    let presigned = env
        .s3
        .get_object()
        .bucket(bucket)
        .key(&key)
        .presigned(PresigningConfig::expires_in(Duration::from_secs(300))?)
        .await?;
    let response = reqwest::get(presigned.uri()).await?;
    let status = response.status();
    let downloaded = response.bytes().await?;
    env.s3
        .delete_object()
        .bucket(bucket)
        .key(&key)
        .send()
        .await?;

    assert_eq!(status, reqwest::StatusCode::OK, "GET {}", presigned.uri());
    assert!(
        downloaded.as_ref() == body.as_slice(),
        "the presigned URL serves the object"
    );
    Ok(())
}

#[tokio::test]
async fn the_jobs_table_refuses_a_backward_state_change() -> Result<()> {
    let env = TestEnv::load().await?;
    let table = env.stack.output("JobsTableName")?;
    let job_id = unique("it-job");
    let key = AttributeValue::S(job_id.clone());
    let expires_at = AttributeValue::N((now_epoch() + 3600).to_string());

    // A job that is already done.
    env.dynamodb
        .put_item()
        .table_name(table)
        .item("job_id", key.clone())
        .item("status", AttributeValue::S(JobStatus::Done.as_str().into()))
        .item("expires_at", expires_at)
        .send()
        .await?;

    // A redelivered message tries to claim it again (done -> processing): the state machine's
    // conditional write must refuse.
    let claim = move_status(&env, table, &key, JobStatus::Processing).await;
    let refused = match claim {
        Ok(()) => false,
        Err(err) => err
            .into_service_error()
            .is_conditional_check_failed_exception(),
    };
    assert!(refused, "done -> processing must fail its condition check");

    let item = env
        .dynamodb
        .get_item()
        .table_name(table)
        .key("job_id", key.clone())
        .consistent_read(true)
        .send()
        .await?;
    let status = item
        .item()
        .and_then(|i| i.get("status"))
        .and_then(|s| s.as_s().ok())
        .cloned();
    assert_eq!(status.as_deref(), Some("done"), "the job stays done");

    // A forward change of a job that allows it goes through (queued -> processing -> done).
    let fresh_id = unique("it-job");
    let fresh = AttributeValue::S(fresh_id);
    env.dynamodb
        .put_item()
        .table_name(table)
        .item("job_id", fresh.clone())
        .item(
            "status",
            AttributeValue::S(JobStatus::Queued.as_str().into()),
        )
        .item(
            "expires_at",
            AttributeValue::N((now_epoch() + 3600).to_string()),
        )
        .condition_expression("attribute_not_exists(job_id)")
        .send()
        .await?;
    move_status(&env, table, &fresh, JobStatus::Processing).await?;
    move_status(&env, table, &fresh, JobStatus::Done).await?;

    for k in [key, fresh] {
        env.dynamodb
            .delete_item()
            .table_name(table)
            .key("job_id", k)
            .send()
            .await?;
    }
    Ok(())
}

/// Move a job to `to` with the condition that the domain's state machine allows it from the
/// current status (`JobStatus::allowed_from`).
async fn move_status(
    env: &TestEnv,
    table: &str,
    key: &AttributeValue,
    to: JobStatus,
) -> std::result::Result<
    (),
    aws_sdk_dynamodb::error::SdkError<aws_sdk_dynamodb::operation::update_item::UpdateItemError>,
> {
    let from = to.allowed_from();
    let placeholders: Vec<String> = (0..from.len()).map(|i| format!(":from{i}")).collect();
    let mut update = env
        .dynamodb
        .update_item()
        .table_name(table)
        .key("job_id", key.clone())
        .update_expression("SET #status = :to")
        .condition_expression(format!(
            "attribute_exists(job_id) AND #status IN ({})",
            placeholders.join(", ")
        ))
        .expression_attribute_names("#status", "status")
        .expression_attribute_values(":to", AttributeValue::S(to.as_str().into()));
    for (placeholder, status) in placeholders.iter().zip(from) {
        update = update
            .expression_attribute_values(placeholder, AttributeValue::S(status.as_str().into()));
    }
    update.send().await.map(|_| ())
}
