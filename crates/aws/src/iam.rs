//! What each function needs from IAM, derived from what its code calls: the one table of the
//! adapters' operations ([`OPERATIONS`]: a port method on one store, and the AWS actions on the
//! template's resources it needs) and, per function, the operations its use cases call
//! ([`FUNCTIONS`]).
//!
//! Two kinds of tests keep this honest:
//!
//! - each function's `tests/iam.rs` runs the function's own entry point (the router, the SQS
//!   record handler, the schedule handler) on the in-memory adapters through its success,
//!   failure, compensation, dead-letter and aggregation paths, and [`Function::audit`]s the calls
//!   journalled: every call must be in the function's list, and everything listed must have been
//!   called. A new call in the code fails there until it is listed here;
//! - `crates/aws/tests/iam.rs` reads the functions' `Policies` in `template.yaml` and compares them
//!   with [`Function::grants`], both ways: a missing grant and an unused one both fail.
//!
//! Resources are the template's logical ids; a bucket's objects are named with their key pattern,
//! because the code writes disjoint prefixes (staging `inline/` and `uploads/`, results
//! `results/`, the usage archive `usage/`) and each function needs only some of them.
//!
//! Out of scope: what SAM adds on its own (the basic execution role for logs, the SQS event source
//! mappings' poller permissions), and what operators run with their own credentials (`resizer
//! admin`, the queue helpers of [`crate::sqs::SqsQueue`]).

use std::collections::BTreeMap;
use std::fmt;

use resizer_app::memory::Call;

/// A resource of `template.yaml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Resource {
    /// The logical id: `JobsTable`, `StagingBucket`, `JobsQueue`.
    pub logical_id: &'static str,
    /// For a bucket's objects, the key pattern after `<bucket ARN>/` (`inline/*`); for a table's
    /// index, `index/<name>`; `None` for the resource itself (a table, a queue, a bucket for
    /// `s3:ListBucket`).
    pub objects: Option<&'static str>,
}

impl Resource {
    const fn whole(logical_id: &'static str) -> Self {
        Self {
            logical_id,
            objects: None,
        }
    }

    const fn objects(bucket: &'static str, pattern: &'static str) -> Self {
        Self {
            logical_id: bucket,
            objects: Some(pattern),
        }
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.objects {
            Some(p) => write!(f, "{}/{p}", self.logical_id),
            None => f.write_str(self.logical_id),
        }
    }
}

pub const JOBS_TABLE: Resource = Resource::whole("JobsTable");
/// The jobs table's sparse index of unfinished jobs by customer
/// (`dynamo::jobs::OPEN_BY_CUSTOMER_INDEX`).
pub const OPEN_BY_CUSTOMER_INDEX: Resource =
    Resource::objects("JobsTable", "index/open-by-customer");
pub const API_KEYS_TABLE: Resource = Resource::whole("ApiKeysTable");
pub const CUSTOMERS_TABLE: Resource = Resource::whole("CustomersTable");
pub const PRESETS_TABLE: Resource = Resource::whole("PresetsTable");
pub const USAGE_TABLE: Resource = Resource::whole("UsageTable");
pub const USAGE_ROLLUPS_TABLE: Resource = Resource::whole("UsageRollupsTable");
pub const RATE_LIMITS_TABLE: Resource = Resource::whole("RateLimitsTable");
pub const JOBS_QUEUE: Resource = Resource::whole("JobsQueue");
pub const JOBS_DLQ: Resource = Resource::whole("JobsDlq");
/// The staging bucket itself (for `s3:ListBucket`).
pub const STAGING_BUCKET: Resource = Resource::whole("StagingBucket");
/// Inline bodies, staged by the api for one job (`StagingKey::Inline`).
pub const STAGING_INLINE: Resource = Resource::objects("StagingBucket", "inline/*");
/// Presigned uploads (`StagingKey::Upload`), kept for reuse until the lifecycle rule.
pub const STAGING_UPLOADS: Resource = Resource::objects("StagingBucket", "uploads/*");
/// Result images (`Job::result_key`).
pub const RESULT_IMAGES: Resource = Resource::objects("ResultsBucket", "results/*");
/// The usage archive (`HourKey::archive_key`), in a bucket of its own.
pub const USAGE_ARCHIVE: Resource = Resource::objects("UsageArchiveBucket", "usage/*");
/// The function the aggregate function runs an hour's slices in.
pub const AGGREGATE_SLICE_FUNCTION: Resource = Resource::whole("AggregateSliceFunction");

/// One IAM action on one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Grant {
    pub action: &'static str,
    pub resource: Resource,
}

impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} on {}", self.action, self.resource)
    }
}

const fn g(action: &'static str, resource: Resource) -> Grant {
    Grant { action, resource }
}

/// One adapter operation: a port method on one store (for an object store, on one kind of key)
/// and every grant the AWS adapter needs for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Operation {
    /// `<port>.<method>`, as the in-memory adapters journal it ([`Call::op`]).
    pub op: &'static str,
    /// For an object store: the keys it is called with (`inline/*`: a prefix); `None` otherwise.
    pub keys: Option<&'static str>,
    pub grants: &'static [Grant],
    /// Why, where it is not obvious from the API call.
    pub note: &'static str,
}

impl Operation {
    /// `jobs.finish`, `staging.get uploads/*`: how [`Function::calls`] names it.
    pub fn name(&self) -> String {
        match self.keys {
            Some(k) => format!("{} {k}", self.op),
            None => self.op.to_owned(),
        }
    }

    /// Whether a journalled call is this operation.
    pub fn matches(&self, call: &Call) -> bool {
        call.op == self.op
            && match (self.keys, call.key.as_deref()) {
                (None, None) => true,
                (Some(pattern), Some(key)) => key_matches(pattern, key),
                _ => false,
            }
    }
}

/// `pattern` is a key or a prefix ending in `*`.
pub fn key_matches(pattern: &str, key: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => key.starts_with(prefix),
        None => key == pattern,
    }
}

const NONE: &str = "";
/// Why a read of a staged object also needs `s3:ListBucket`.
const LIST_FOR_404: &str = "GetObject (HeadObject is authorised as s3:GetObject); a missing key \
     answers 404, and so StoreError::NotFound, only with s3:ListBucket on the bucket (403 \
     otherwise). The use cases act on NotFound: an upload id that names nothing, a staged image \
     that expired";
const PRESIGN: &str = "signing is local, but S3 authorises the request made with the URL as the \
     signer's: the signer needs the action itself";

/// Every adapter operation (the AWS adapters in `dynamo/`, `s3.rs`, `sqs.rs`, as wired by
/// [`crate::wire::Adapters`]) and what it needs.
pub const OPERATIONS: &[Operation] = &[
    // ---- jobs (dynamo/jobs.rs) -----------------------------------------------------------------
    Operation {
        op: "jobs.put_new",
        keys: None,
        grants: &[g("dynamodb:PutItem", JOBS_TABLE)],
        note: "a conditional PutItem (attribute_not_exists): no other action",
    },
    Operation {
        op: "jobs.get",
        keys: None,
        grants: &[g("dynamodb:GetItem", JOBS_TABLE)],
        note: "strongly consistent: no other action",
    },
    Operation {
        op: "jobs.delete_queued",
        keys: None,
        grants: &[g("dynamodb:DeleteItem", JOBS_TABLE)],
        note: "the api's compensation when the enqueue fails",
    },
    Operation {
        op: "jobs.claim",
        keys: None,
        grants: &[
            g("dynamodb:UpdateItem", JOBS_TABLE),
            g("dynamodb:GetItem", JOBS_TABLE),
        ],
        note: "a conditional UpdateItem with ReturnValues ALL_NEW (no other action); when its \
               condition fails, a GetItem tells a finished job from a missing one",
    },
    Operation {
        op: "jobs.fail_unreadable",
        keys: None,
        grants: &[g("dynamodb:UpdateItem", JOBS_TABLE)],
        note: "a conditional UpdateItem of a job that cannot be read",
    },
    Operation {
        op: "jobs.release",
        keys: None,
        grants: &[g("dynamodb:UpdateItem", JOBS_TABLE)],
        note: "a conditional UpdateItem: the attempt holding the job gives it back",
    },
    Operation {
        op: "jobs.finish",
        keys: None,
        grants: &[
            g("dynamodb:UpdateItem", JOBS_TABLE),
            g("dynamodb:PutItem", USAGE_TABLE),
        ],
        note: "one TransactWriteItems (no IAM action of its own): an Update of the job, whose \
               condition is the Update's own, and a Put of the usage item. No ConditionCheck \
               item, so no dynamodb:ConditionCheckItem",
    },
    Operation {
        op: "jobs.open_before",
        keys: None,
        grants: &[g("dynamodb:Scan", OPEN_BY_CUSTOMER_INDEX)],
        note: "a parallel Scan segment of the open-by-customer index: the index's ARN, not the table's",
    },
    Operation {
        op: "jobs.open_count",
        keys: None,
        grants: &[g("dynamodb:Query", OPEN_BY_CUSTOMER_INDEX)],
        note: "a Query (Select COUNT) of the open-by-customer index: the index's ARN",
    },
    Operation {
        op: "jobs.mark_swept",
        keys: None,
        grants: &[g("dynamodb:UpdateItem", JOBS_TABLE)],
        note: "a conditional UpdateItem: the job is unchanged since it was read",
    },
    // ---- staging bucket (s3.rs) ----------------------------------------------------------------
    Operation {
        op: "staging.put",
        keys: Some("inline/*"),
        grants: &[g("s3:PutObject", STAGING_INLINE)],
        note: NONE,
    },
    Operation {
        op: "staging.head",
        keys: Some("inline/*"),
        grants: &[
            g("s3:GetObject", STAGING_INLINE),
            g("s3:ListBucket", STAGING_BUCKET),
        ],
        note: LIST_FOR_404,
    },
    Operation {
        op: "staging.head",
        keys: Some("uploads/*"),
        grants: &[
            g("s3:GetObject", STAGING_UPLOADS),
            g("s3:ListBucket", STAGING_BUCKET),
        ],
        note: LIST_FOR_404,
    },
    Operation {
        op: "staging.get",
        keys: Some("inline/*"),
        grants: &[
            g("s3:GetObject", STAGING_INLINE),
            g("s3:ListBucket", STAGING_BUCKET),
        ],
        note: LIST_FOR_404,
    },
    Operation {
        op: "staging.get",
        keys: Some("uploads/*"),
        grants: &[
            g("s3:GetObject", STAGING_UPLOADS),
            g("s3:ListBucket", STAGING_BUCKET),
        ],
        note: LIST_FOR_404,
    },
    Operation {
        op: "staging.get_prefix",
        keys: Some("uploads/*"),
        grants: &[
            g("s3:GetObject", STAGING_UPLOADS),
            g("s3:ListBucket", STAGING_BUCKET),
        ],
        note: "a ranged GetObject; see staging.head for ListBucket",
    },
    Operation {
        op: "staging.delete",
        keys: Some("inline/*"),
        grants: &[g("s3:DeleteObject", STAGING_INLINE)],
        note: "inline bodies only: uploads stay for the next job until the lifecycle rule",
    },
    Operation {
        op: "staging.presign_post",
        keys: Some("uploads/*"),
        grants: &[g("s3:PutObject", STAGING_UPLOADS)],
        note: PRESIGN,
    },
    // ---- results bucket (s3.rs) ----------------------------------------------------------------
    Operation {
        op: "results.put",
        keys: Some("results/*"),
        grants: &[g("s3:PutObject", RESULT_IMAGES)],
        note: NONE,
    },
    Operation {
        op: "results.presign_get",
        keys: Some("results/*"),
        grants: &[g("s3:GetObject", RESULT_IMAGES)],
        note: PRESIGN,
    },
    // ---- usage archive: its own bucket (s3.rs, wire.rs) ---------------------------------------
    Operation {
        op: "archive.put",
        keys: Some("usage/*"),
        grants: &[g("s3:PutObject", USAGE_ARCHIVE)],
        note: "an overwrite with the same bytes when an hour is closed again; the bucket is \
               versioned and no function may delete from it",
    },
    // ---- the aggregate-slice function (lambda.rs) ----------------------------------------------
    Operation {
        op: "slices.run",
        keys: None,
        grants: &[g("lambda:InvokeFunction", AGGREGATE_SLICE_FUNCTION)],
        note: "a synchronous Invoke (RequestResponse) per slice of an hour",
    },
    // ---- jobs queue (sqs.rs) -------------------------------------------------------------------
    Operation {
        op: "queue.send",
        keys: None,
        grants: &[g("sqs:SendMessage", JOBS_QUEUE)],
        note: "SQS-managed encryption: no KMS key to grant",
    },
    Operation {
        op: "queue.defer",
        keys: None,
        grants: &[g("sqs:ChangeMessageVisibility", JOBS_QUEUE)],
        note: "the retry backoff of a transient failure",
    },
    Operation {
        op: "dead_letters.defer",
        keys: None,
        grants: &[g("sqs:ChangeMessageVisibility", JOBS_DLQ)],
        note: "the retry backoff of a dead letter that could not be settled",
    },
    // ---- rate limit (dynamo/rate.rs) ----------------------------------------------------------
    Operation {
        op: "rate_counters.admit",
        keys: None,
        grants: &[g("dynamodb:UpdateItem", RATE_LIMITS_TABLE)],
        note: "a conditional UpdateItem (ADD): no other action",
    },
    // ---- api-keys and customers (dynamo/accounts.rs) -------------------------------------------
    Operation {
        op: "accounts.get_key",
        keys: None,
        grants: &[g("dynamodb:GetItem", API_KEYS_TABLE)],
        note: NONE,
    },
    Operation {
        op: "accounts.get_customer",
        keys: None,
        grants: &[g("dynamodb:GetItem", CUSTOMERS_TABLE)],
        note: NONE,
    },
    Operation {
        op: "accounts.put_preset",
        keys: None,
        grants: &[g("dynamodb:UpdateItem", PRESETS_TABLE)],
        note: "SET with if_not_exists(created_at): one call that keeps created_at",
    },
    Operation {
        op: "accounts.get_preset",
        keys: None,
        grants: &[g("dynamodb:GetItem", PRESETS_TABLE)],
        note: NONE,
    },
    Operation {
        op: "accounts.delete_preset",
        keys: None,
        grants: &[g("dynamodb:DeleteItem", PRESETS_TABLE)],
        note: NONE,
    },
    Operation {
        op: "accounts.list_presets",
        keys: None,
        grants: &[g("dynamodb:Query", PRESETS_TABLE)],
        note: NONE,
    },
    // The management plane (`resizer admin`, operators' credentials): no function calls these.
    Operation {
        op: "accounts.put_new_key",
        keys: None,
        grants: &[g("dynamodb:PutItem", API_KEYS_TABLE)],
        note: NONE,
    },
    Operation {
        op: "accounts.revoke_key",
        keys: None,
        grants: &[g("dynamodb:UpdateItem", API_KEYS_TABLE)],
        note: NONE,
    },
    Operation {
        op: "accounts.list_keys",
        keys: None,
        grants: &[g("dynamodb:Scan", API_KEYS_TABLE)],
        note: NONE,
    },
    Operation {
        op: "accounts.put_new_customer",
        keys: None,
        grants: &[g("dynamodb:PutItem", CUSTOMERS_TABLE)],
        note: NONE,
    },
    Operation {
        op: "accounts.list_customers",
        keys: None,
        grants: &[g("dynamodb:Scan", CUSTOMERS_TABLE)],
        note: NONE,
    },
    Operation {
        op: "accounts.set_customer_status",
        keys: None,
        grants: &[g("dynamodb:UpdateItem", CUSTOMERS_TABLE)],
        note: NONE,
    },
    Operation {
        op: "accounts.set_customer_quota",
        keys: None,
        grants: &[g("dynamodb:UpdateItem", CUSTOMERS_TABLE)],
        note: NONE,
    },
    Operation {
        op: "accounts.set_customer_max_open_jobs",
        keys: None,
        grants: &[g("dynamodb:UpdateItem", CUSTOMERS_TABLE)],
        note: NONE,
    },
    // ---- raw usage (dynamo/usage.rs) -----------------------------------------------------------
    Operation {
        op: "usage.put",
        keys: None,
        grants: &[g("dynamodb:PutItem", USAGE_TABLE)],
        note: "on its own; the normal path writes usage inside jobs.finish",
    },
    Operation {
        op: "usage.page",
        keys: None,
        grants: &[g("dynamodb:Query", USAGE_TABLE)],
        note: "the base table, no index; ReturnConsumedCapacity needs no action of its own",
    },
    // ---- rollups and archive markers (dynamo/rollups.rs) ---------------------------------------
    Operation {
        op: "rollups.put",
        keys: None,
        grants: &[g("dynamodb:PutItem", USAGE_ROLLUPS_TABLE)],
        note: NONE,
    },
    Operation {
        op: "rollups.get",
        keys: None,
        grants: &[g("dynamodb:GetItem", USAGE_ROLLUPS_TABLE)],
        note: NONE,
    },
    Operation {
        op: "rollups.between",
        keys: None,
        grants: &[g("dynamodb:Query", USAGE_ROLLUPS_TABLE)],
        note: NONE,
    },
    Operation {
        op: "rollups.within",
        keys: None,
        grants: &[g("dynamodb:Query", USAGE_ROLLUPS_TABLE)],
        note: NONE,
    },
    Operation {
        op: "rollups.sum_children",
        keys: None,
        grants: &[
            g("dynamodb:GetItem", USAGE_ROLLUPS_TABLE),
            g("dynamodb:Query", USAGE_ROLLUPS_TABLE),
            g("dynamodb:PutItem", USAGE_ROLLUPS_TABLE),
        ],
        note: "read the rollup's version, query its children, a conditional PutItem",
    },
    Operation {
        op: "rollups.quota_count",
        keys: None,
        grants: &[g("dynamodb:GetItem", USAGE_ROLLUPS_TABLE)],
        note: NONE,
    },
    Operation {
        op: "rollups.reserve_job",
        keys: None,
        grants: &[g("dynamodb:UpdateItem", USAGE_ROLLUPS_TABLE)],
        note: "a conditional UpdateItem (ADD, ReturnValues UPDATED_NEW)",
    },
    Operation {
        op: "rollups.release_job",
        keys: None,
        grants: &[g("dynamodb:UpdateItem", USAGE_ROLLUPS_TABLE)],
        note: NONE,
    },
    Operation {
        op: "rollups.watermark",
        keys: None,
        grants: &[g("dynamodb:GetItem", USAGE_ROLLUPS_TABLE)],
        note: NONE,
    },
    Operation {
        op: "rollups.move_watermark",
        keys: None,
        grants: &[g("dynamodb:PutItem", USAGE_ROLLUPS_TABLE)],
        note: "a conditional PutItem",
    },
    Operation {
        op: "rollups.closed_hour",
        keys: None,
        grants: &[g("dynamodb:GetItem", USAGE_ROLLUPS_TABLE)],
        note: NONE,
    },
    Operation {
        op: "rollups.put_closed_hour",
        keys: None,
        grants: &[g("dynamodb:PutItem", USAGE_ROLLUPS_TABLE)],
        note: NONE,
    },
];

/// One Lambda function of the template and every operation its code calls. Each function builds
/// an `App` with every port wired, so what it calls is what the use cases it runs call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Function {
    /// The logical id in `template.yaml`.
    pub logical_id: &'static str,
    /// The use cases it runs (the function's `tests/iam.rs` drives them through its handler).
    pub use_cases: &'static [&'static str],
    /// Every operation those use cases call, by [`Operation::name`].
    pub calls: &'static [&'static str],
}

pub const API: Function = Function {
    logical_id: "ApiFunction",
    use_cases: &[
        "authenticate",
        "submit (inline, from an upload, the compensation of a failed enqueue)",
        "wait_for",
        "job",
        "result_url",
        "create_upload",
        "usage",
        "put_preset, preset, presets, delete_preset, transform (a job naming a preset)",
    ],
    calls: &[
        "accounts.get_key",
        "accounts.get_customer",
        "rollups.quota_count",
        "rollups.reserve_job",
        "rollups.release_job",
        "staging.put inline/*",
        "staging.head uploads/*",
        "staging.get_prefix uploads/*",
        "rate_counters.admit",
        "jobs.open_count",
        "jobs.put_new",
        "queue.send",
        "jobs.delete_queued",
        "staging.delete inline/*",
        "jobs.get",
        "results.presign_get results/*",
        "staging.presign_post uploads/*",
        "rollups.between",
        "accounts.list_presets",
        "accounts.put_preset",
        "accounts.get_preset",
        "accounts.delete_preset",
    ],
};

pub const RESIZE: Function = Function {
    logical_id: "ResizeFunction",
    use_cases: &[
        "process (a transient failure releases the job and defers the message)",
        "finish_dead_letter (sends a young job back to the jobs queue)",
    ],
    calls: &[
        "jobs.claim",
        "jobs.release",
        "jobs.fail_unreadable",
        "queue.defer",
        "queue.send",
        "dead_letters.defer",
        "staging.head inline/*",
        "staging.head uploads/*",
        "staging.get inline/*",
        "staging.get uploads/*",
        "results.put results/*",
        "jobs.finish",
        "staging.delete inline/*",
        "jobs.get",
    ],
};

pub const AGGREGATE: Function = Function {
    logical_id: "AggregateFunction",
    use_cases: &[
        "aggregate (the schedule: close the due hours)",
        "close_hour",
    ],
    calls: &[
        "rollups.watermark",
        "rollups.move_watermark",
        "slices.run",
        "rollups.put_closed_hour",
    ],
};

pub const AGGREGATE_SLICE: Function = Function {
    logical_id: "AggregateSliceFunction",
    use_cases: &["aggregate_slice"],
    calls: &[
        "usage.page",
        "archive.put usage/*",
        "rollups.put",
        "rollups.sum_children",
    ],
};

pub const SWEEP: Function = Function {
    logical_id: "SweepFunction",
    use_cases: &["sweep (re-enqueue a stale job, expire one too old)"],
    calls: &[
        "jobs.open_before",
        "jobs.get",
        "jobs.mark_swept",
        "queue.send",
        "jobs.finish",
        "staging.delete inline/*",
    ],
};

/// Every function of the template.
pub const FUNCTIONS: &[Function] = &[API, RESIZE, AGGREGATE, AGGREGATE_SLICE, SWEEP];

/// The operation named `name` ([`Operation::name`]).
pub fn operation(name: &str) -> Option<&'static Operation> {
    OPERATIONS.iter().find(|o| o.name() == name)
}

impl Function {
    /// Its operations, in [`Function::calls`] order. Panics on a name with no operation (a unit
    /// test keeps every name resolvable).
    pub fn operations(&self) -> impl Iterator<Item = &'static Operation> + '_ {
        self.calls.iter().map(|name| {
            operation(name).unwrap_or_else(|| panic!("{}: no operation {name}", self.logical_id))
        })
    }

    /// Every grant it needs, with the names of the operations that need it.
    pub fn grants(&self) -> BTreeMap<Grant, Vec<String>> {
        let mut out: BTreeMap<Grant, Vec<String>> = BTreeMap::new();
        for op in self.operations() {
            for grant in op.grants {
                out.entry(*grant).or_default().push(op.name());
            }
        }
        out
    }

    /// Compares the calls journalled while this function's entry point ran with its list: every
    /// call must be one of [`OPERATIONS`] and on the list, and every listed operation must have
    /// been called. Returns the discrepancies, one line each (none: honest).
    pub fn audit(&self, journal: &[Call]) -> Vec<String> {
        let mut problems = Vec::new();
        let mut seen = vec![false; self.calls.len()];
        for call in journal {
            let what = match &call.key {
                Some(k) => format!("{} on key {k:?}", call.op),
                None => call.op.clone(),
            };
            let ops: Vec<&Operation> = OPERATIONS.iter().filter(|o| o.matches(call)).collect();
            let op = match ops.as_slice() {
                [op] => op,
                [] => {
                    problems.push(format!(
                        "{}: the code calls {what}, which no entry of iam::OPERATIONS describes: \
                         add it (and what it needs in AWS)",
                        self.logical_id
                    ));
                    continue;
                }
                many => {
                    let names: Vec<String> = many.iter().map(|o| o.name()).collect();
                    problems.push(format!(
                        "{}: {what} matches several operations: {names:?}",
                        self.logical_id
                    ));
                    continue;
                }
            };
            let name = op.name();
            match self.calls.iter().position(|c| *c == name) {
                Some(i) => seen[i] = true,
                None => problems.push(format!(
                    "{}: the code calls {what} ({name}), which is not in its list in iam.rs: add \
                     it, and grant {} in template.yaml",
                    self.logical_id,
                    op.grants
                        .iter()
                        .map(Grant::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            }
        }
        for (name, seen) in self.calls.iter().zip(seen) {
            if !seen {
                problems.push(format!(
                    "{}: lists {name}, but no run called it: drive the path that calls it, or \
                     remove it from the list (and its grants from template.yaml)",
                    self.logical_id
                ));
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_names_are_unique_and_every_listed_call_is_one() {
        let mut names: Vec<String> = OPERATIONS.iter().map(Operation::name).collect();
        let n = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), n, "duplicate operation names");
        for f in FUNCTIONS {
            for name in f.calls {
                assert!(
                    operation(name).is_some(),
                    "{}: no operation {name}",
                    f.logical_id
                );
            }
            let mut calls = f.calls.to_vec();
            calls.sort_unstable();
            calls.dedup();
            assert_eq!(calls.len(), f.calls.len(), "{}: listed twice", f.logical_id);
        }
    }

    #[test]
    fn key_patterns_of_one_method_do_not_overlap() {
        for a in OPERATIONS {
            for b in OPERATIONS {
                if a.op == b.op
                    && a.name() != b.name()
                    && let (Some(x), Some(y)) = (a.keys, b.keys)
                {
                    let overlap = key_matches(x, y.trim_end_matches('*'))
                        || key_matches(y, x.trim_end_matches('*'));
                    assert!(!overlap, "{} and {} overlap", a.name(), b.name());
                }
            }
        }
    }

    #[test]
    fn object_grants_name_the_keys_the_operation_is_called_with() {
        for op in OPERATIONS {
            for grant in op.grants {
                // A bucket's objects (not a table's index, `JobsTable/index/open-jobs`).
                if let Some(objects) = grant.resource.objects
                    && !objects.starts_with("index/")
                {
                    assert_eq!(Some(objects), op.keys, "{}: {grant}", op.name());
                }
            }
        }
    }

    #[test]
    fn an_audit_names_unlisted_unknown_and_uncalled_operations() {
        let call = |op: &str, key: Option<&str>| Call {
            op: op.into(),
            key: key.map(Into::into),
        };
        let journal = [
            call("queue.send", None),
            call("jobs.claim", None),
            call("staging.delete", Some("uploads/cus_a/u1")),
        ];
        let problems = API.audit(&journal);
        let text = problems.join("\n");
        assert!(
            text.contains(
                "ApiFunction: the code calls jobs.claim (jobs.claim), which is not in its list"
            ),
            "{text}"
        );
        assert!(
            text.contains("grant dynamodb:UpdateItem on JobsTable, dynamodb:GetItem on JobsTable"),
            "{text}"
        );
        assert!(
            text.contains(
                "the code calls staging.delete on key \"uploads/cus_a/u1\", which no entry"
            ),
            "{text}"
        );
        assert!(
            text.contains("lists jobs.delete_queued, but no run called it"),
            "{text}"
        );
        assert!(!text.contains("queue.send"), "{text}");
    }
}
