//! IAM, checked statically: each function's `Policies` in `template.yaml` grant exactly what its
//! code calls, as `resizer_aws::iam` lists it. A missing grant (an AccessDenied in production,
//! invisible locally, where IAM is not enforced) and an unused one both fail, naming the function,
//! the action and the resource.
//!
//! Grants are compared as (action, resource) pairs, where the resource is the template's logical
//! id and, for a bucket's objects, the key pattern: `s3:GetObject` on `StagingBucket/uploads/*` is
//! neither `s3:GetObject` on `StagingBucket/*` nor on `ResultsBucket/results/*`.

use std::collections::{BTreeMap, BTreeSet};

use resizer_aws::iam::{self, FUNCTIONS, Function};
use serde_yaml::{Mapping, Value};

const TEMPLATE: &str = include_str!("../../../template.yaml");

/// A granted (action, resource), owned: what a policy statement says.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Granted {
    action: String,
    logical_id: String,
    objects: Option<String>,
}

impl Granted {
    fn resource(&self) -> String {
        match &self.objects {
            Some(p) => format!("{}/{p}", self.logical_id),
            None => self.logical_id.clone(),
        }
    }
}

impl From<&iam::Grant> for Granted {
    fn from(g: &iam::Grant) -> Self {
        Self {
            action: g.action.to_owned(),
            logical_id: g.resource.logical_id.to_owned(),
            objects: g.resource.objects.map(str::to_owned),
        }
    }
}

fn tag_or_fn<'a>(v: &'a Value, name: &str) -> Option<&'a Value> {
    match v {
        Value::Tagged(t) if t.tag == name => Some(&t.value),
        Value::Mapping(m) if m.len() == 1 => m.get(format!("Fn::{name}")),
        _ => None,
    }
}

/// A policy's resource expression as (logical id, key pattern): `!GetAtt X.Arn` (or
/// `Fn::GetAtt: [X, Arn]`) is X itself; `!Sub "${X.Arn}/<pattern>"` is X's objects matching
/// `<pattern>`. Anything else (a literal ARN, `*`, a `!Ref`) is refused: the check could not say
/// what it grants.
fn resolve(v: &Value) -> Result<(String, Option<String>), String> {
    if let Some(arg) = tag_or_fn(v, "GetAtt") {
        let (id, attr) = match arg {
            Value::String(s) => s.split_once('.').map(|(a, b)| (a.to_owned(), b.to_owned())),
            Value::Sequence(s) => match s.as_slice() {
                [Value::String(a), Value::String(b)] => Some((a.clone(), b.clone())),
                _ => None,
            },
            _ => None,
        }
        .ok_or_else(|| format!("unreadable GetAtt {arg:?}"))?;
        if attr != "Arn" {
            return Err(format!("GetAtt {id}.{attr} is not an ARN"));
        }
        return Ok((id, None));
    }
    if let Some(arg) = tag_or_fn(v, "Sub") {
        let Value::String(s) = arg else {
            return Err(format!("a Sub with variables: {arg:?}"));
        };
        let rest = s
            .strip_prefix("${")
            .ok_or_else(|| format!("Sub {s:?} does not start with ${{<resource>.Arn}}"))?;
        let (var, tail) = rest
            .split_once('}')
            .ok_or_else(|| format!("unreadable Sub {s:?}"))?;
        let id = var
            .strip_suffix(".Arn")
            .ok_or_else(|| format!("Sub {s:?} does not start with ${{<resource>.Arn}}"))?;
        if tail.contains("${") {
            return Err(format!("Sub {s:?} has variables after the ARN"));
        }
        return match tail {
            "" => Ok((id.to_owned(), None)),
            t => match t.strip_prefix('/') {
                Some(p) if !p.is_empty() => Ok((id.to_owned(), Some(p.to_owned()))),
                _ => Err(format!("Sub {s:?}: expected ${{{id}.Arn}}/<key pattern>")),
            },
        };
    }
    Err(format!(
        "resource {v:?}: only !GetAtt <resource>.Arn and !Sub \"${{<bucket>.Arn}}/<key pattern>\" \
         are understood"
    ))
}

fn one_or_many(v: &Value) -> Vec<&Value> {
    match v {
        Value::Sequence(s) => s.iter().collect(),
        other => vec![other],
    }
}

/// Every (action, resource) a function's `Policies` grant, with the statement that grants it;
/// what cannot be read is an error.
fn granted(policies: &Value) -> Result<BTreeMap<Granted, String>, Vec<String>> {
    let mut out = BTreeMap::new();
    let mut errors = Vec::new();
    for (i, policy) in one_or_many(policies).into_iter().enumerate() {
        let Some(statements) = policy.as_mapping().and_then(|m| m.get("Statement")) else {
            errors.push(format!(
                "policy #{i} is not an inline policy document ({policy:?}): a managed policy or \
                 a SAM policy template grants what the check cannot see"
            ));
            continue;
        };
        for (j, st) in one_or_many(statements).into_iter().enumerate() {
            let Some(st) = st.as_mapping() else {
                errors.push(format!("policy #{i} statement #{j} is not a mapping"));
                continue;
            };
            let sid = st
                .get("Sid")
                .and_then(Value::as_str)
                .map_or_else(|| format!("#{j}"), str::to_owned);
            for key in st.keys() {
                let key = key.as_str().unwrap_or_default();
                if !matches!(key, "Sid" | "Effect" | "Action" | "Resource") {
                    errors.push(format!(
                        "statement {sid}: {key} is not understood by the check"
                    ));
                }
            }
            if st.get("Effect").and_then(Value::as_str) != Some("Allow") {
                errors.push(format!("statement {sid}: only Effect: Allow is understood"));
            }
            let actions: Vec<&str> = st
                .get("Action")
                .map(one_or_many)
                .unwrap_or_default()
                .into_iter()
                .filter_map(|a| {
                    let s = a.as_str();
                    if s.is_none() {
                        errors.push(format!("statement {sid}: action {a:?} is not a string"));
                    }
                    s
                })
                .collect();
            if actions.is_empty() {
                errors.push(format!("statement {sid}: no Action"));
            }
            let resources = st.get("Resource").map(one_or_many).unwrap_or_default();
            if resources.is_empty() {
                errors.push(format!("statement {sid}: no Resource"));
            }
            for r in resources {
                match resolve(r) {
                    Ok((logical_id, objects)) => {
                        for action in &actions {
                            out.insert(
                                Granted {
                                    action: (*action).to_owned(),
                                    logical_id: logical_id.clone(),
                                    objects: objects.clone(),
                                },
                                sid.clone(),
                            );
                        }
                    }
                    Err(e) => errors.push(format!("statement {sid}: {e}")),
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// Whether the key pattern `granted` covers all of `needed` (both `None`: the resource itself).
fn covers(granted: &Option<String>, needed: &Option<String>) -> bool {
    match (granted, needed) {
        (None, None) => true,
        (Some(g), Some(n)) => iam::key_matches(g, n.trim_end_matches('*')),
        _ => false,
    }
}

/// The function's grants in the template against what its code needs, both ways.
fn compare(f: &Function, granted: &BTreeMap<Granted, String>) -> Vec<String> {
    let id = f.logical_id;
    let needed: BTreeMap<Granted, Vec<String>> = f
        .grants()
        .into_iter()
        .map(|(g, ops)| (Granted::from(&g), ops))
        .collect();
    let mut problems = Vec::new();
    for (need, ops) in &needed {
        if granted.contains_key(need) {
            continue;
        }
        let broader: Vec<String> = granted
            .keys()
            .filter(|g| {
                g.action == need.action
                    && g.logical_id == need.logical_id
                    && covers(&g.objects, &need.objects)
            })
            .map(Granted::resource)
            .collect();
        let hint = if broader.is_empty() {
            String::new()
        } else {
            format!(
                " (granted only more broadly, on {}: narrow it)",
                broader.join(", ")
            )
        };
        problems.push(format!(
            "{id} lacks {} on {}, needed by {}{hint}",
            need.action,
            need.resource(),
            ops.join(", ")
        ));
    }
    for (g, sid) in granted {
        if !needed.contains_key(g) {
            problems.push(format!(
                "{id} grants {} on {} (statement {sid}), which none of its calls needs",
                g.action,
                g.resource()
            ));
        }
    }
    problems
}

fn resources(template: &Value) -> &Mapping {
    template
        .get("Resources")
        .and_then(Value::as_mapping)
        .expect("template.yaml has Resources")
}

/// Every problem with the template's function policies.
fn check(template: &Value) -> Vec<String> {
    let resources = resources(template);
    let mut problems = Vec::new();

    let functions: BTreeSet<&str> = resources
        .iter()
        .filter(|(_, r)| {
            matches!(
                r.get("Type").and_then(Value::as_str),
                Some("AWS::Serverless::Function" | "AWS::Lambda::Function")
            )
        })
        .filter_map(|(k, _)| k.as_str())
        .collect();
    let listed: BTreeSet<&str> = FUNCTIONS.iter().map(|f| f.logical_id).collect();
    for f in functions.difference(&listed) {
        problems.push(format!(
            "{f} is a function of the template but not of iam::FUNCTIONS"
        ));
    }
    for f in listed.difference(&functions) {
        problems.push(format!(
            "{f} is in iam::FUNCTIONS but not a function of the template"
        ));
    }
    if let Some(g) = template.get("Globals").and_then(|g| g.get("Function"))
        && (g.get("Policies").is_some() || g.get("Role").is_some())
    {
        problems.push("Globals.Function sets Policies or Role: grant per function".into());
    }
    // Resource types, so that a grant cannot name the wrong kind of thing.
    for f in FUNCTIONS {
        for g in f.grants().keys() {
            let r = g.resource;
            let ty = resources
                .get(r.logical_id)
                .and_then(|v| v.get("Type"))
                .and_then(Value::as_str);
            let expected = match g.action.split_once(':').map(|(s, _)| s) {
                Some("dynamodb") => "AWS::DynamoDB::Table",
                Some("s3") => "AWS::S3::Bucket",
                Some("sqs") => "AWS::SQS::Queue",
                Some("lambda") => "AWS::Serverless::Function",
                other => panic!("{}: no resource type known for {other:?}", g.action),
            };
            assert_eq!(ty, Some(expected), "{}: {g}", f.logical_id);
        }
    }

    for f in FUNCTIONS {
        let Some(props) = resources
            .get(f.logical_id)
            .and_then(|r| r.get("Properties"))
        else {
            continue;
        };
        if props.get("Role").is_some() {
            problems.push(format!(
                "{}: a Role replaces Policies; the check reads Policies",
                f.logical_id
            ));
        }
        let policies = props.get("Policies").cloned().unwrap_or(Value::Null);
        if policies.is_null() {
            problems.push(format!("{}: no Policies", f.logical_id));
            continue;
        }
        match granted(&policies) {
            Ok(g) => problems.extend(compare(f, &g)),
            Err(es) => problems.extend(es.into_iter().map(|e| format!("{}: {e}", f.logical_id))),
        }
    }
    problems
}

fn template() -> Value {
    serde_yaml::from_str(TEMPLATE).expect("template.yaml is YAML")
}

#[test]
fn every_function_policy_grants_exactly_what_its_code_calls() {
    let problems = check(&template());
    assert!(
        problems.is_empty(),
        "template.yaml's function policies differ from what the code calls \
         (crates/aws/src/iam.rs):\n  {}\n",
        problems.join("\n  ")
    );
}

/// Prints, per function, what it calls and what that needs (`--nocapture` to read it).
#[test]
fn list_what_each_function_calls() {
    for f in FUNCTIONS {
        println!("{} ({}):", f.logical_id, f.use_cases.join(", "));
        for op in f.operations() {
            let grants: Vec<String> = op.grants.iter().map(ToString::to_string).collect();
            println!("  {:<32} {}", op.name(), grants.join(", "));
        }
    }
}

// ---- the check itself -------------------------------------------------------------------------

fn yaml(s: &str) -> Value {
    serde_yaml::from_str(s).unwrap()
}

#[test]
fn resource_expressions_resolve_to_logical_ids_and_key_patterns() {
    let ok = |s: &str| resolve(&yaml(s)).unwrap();
    let none = None::<String>;
    assert_eq!(
        ok("!GetAtt JobsTable.Arn"),
        ("JobsTable".into(), none.clone())
    );
    assert_eq!(
        ok("!GetAtt [JobsQueue, Arn]"),
        ("JobsQueue".into(), none.clone())
    );
    assert_eq!(
        ok("Fn::GetAtt: [StagingBucket, Arn]"),
        ("StagingBucket".into(), none.clone())
    );
    assert_eq!(
        ok("!Sub \"${ResultsBucket.Arn}/results/*\""),
        ("ResultsBucket".into(), Some("results/*".into()))
    );
    assert_eq!(
        ok("Fn::Sub: \"${StagingBucket.Arn}/*\""),
        ("StagingBucket".into(), Some("*".into()))
    );
    for bad in [
        "\"*\"",
        "arn:aws:s3:::bucket/*",
        "!Ref JobsQueue",
        "!GetAtt JobsQueue.QueueName",
        "!Sub \"arn:${AWS::Partition}:s3:::${StagingBucket}/*\"",
        "!Sub \"${StagingBucket.Arn}/${Prefix}*\"",
        "!Sub \"${StagingBucket.Arn}/\"",
    ] {
        assert!(resolve(&yaml(bad)).is_err(), "{bad} was accepted");
    }
}

#[test]
fn statements_with_one_or_many_actions_and_resources_are_read_and_the_rest_refused() {
    let policies = yaml(
        r#"
- Version: "2012-10-17"
  Statement:
    - Sid: A
      Effect: Allow
      Action: [s3:GetObject, s3:PutObject]
      Resource: !Sub "${StagingBucket.Arn}/uploads/*"
    - Sid: B
      Effect: Allow
      Action: dynamodb:GetItem
      Resource:
        - !GetAtt ApiKeysTable.Arn
        - !GetAtt CustomersTable.Arn
"#,
    );
    let g = granted(&policies).unwrap();
    let got: Vec<String> = g
        .keys()
        .map(|g| format!("{} {}", g.action, g.resource()))
        .collect();
    assert_eq!(
        got,
        [
            "dynamodb:GetItem ApiKeysTable",
            "dynamodb:GetItem CustomersTable",
            "s3:GetObject StagingBucket/uploads/*",
            "s3:PutObject StagingBucket/uploads/*",
        ]
    );
    let refused = yaml(
        r#"
- AWSLambdaBasicExecutionRole
- DynamoDBCrudPolicy: {TableName: !Ref JobsTable}
- Statement:
    - Sid: C
      Effect: Allow
      Action: s3:GetObject
      Resource: !GetAtt StagingBucket.Arn
      Condition: {StringLike: {"s3:prefix": "x/*"}}
    - Sid: D
      Effect: Deny
      Action: s3:DeleteObject
      Resource: !GetAtt StagingBucket.Arn
"#,
    );
    let errors = granted(&refused).unwrap_err().join("\n");
    assert!(
        errors.contains("policy #0 is not an inline policy document"),
        "{errors}"
    );
    assert!(
        errors.contains("policy #1 is not an inline policy document"),
        "{errors}"
    );
    assert!(
        errors.contains("statement C: Condition is not understood"),
        "{errors}"
    );
    assert!(
        errors.contains("statement D: only Effect: Allow"),
        "{errors}"
    );
}

#[test]
fn a_missing_grant_an_unused_one_and_a_broader_one_are_named() {
    let f = iam::AGGREGATE_SLICE;
    let mut granted: BTreeMap<Granted, String> = f
        .grants()
        .keys()
        .map(|g| (Granted::from(g), "Exact".to_owned()))
        .collect();
    assert!(compare(&f, &granted).is_empty());
    let archive = Granted::from(&iam::Grant {
        action: "s3:PutObject",
        resource: iam::USAGE_ARCHIVE,
    });
    granted.remove(&archive);
    granted.insert(
        Granted {
            objects: Some("*".into()),
            ..archive
        },
        "Broad".into(),
    );
    granted.insert(
        Granted {
            action: "dynamodb:DeleteItem".into(),
            logical_id: "UsageTable".into(),
            objects: None,
        },
        "Extra".into(),
    );
    granted.remove(&Granted {
        action: "dynamodb:Query".into(),
        logical_id: "UsageTable".into(),
        objects: None,
    });
    let problems = compare(&f, &granted);
    assert_eq!(
        problems,
        [
            "AggregateSliceFunction lacks dynamodb:Query on UsageTable, needed by usage.page",
            "AggregateSliceFunction lacks s3:PutObject on UsageArchiveBucket/usage/*, needed by \
             archive.put usage/* (granted only more broadly, on UsageArchiveBucket/*: narrow it)",
            "AggregateSliceFunction grants dynamodb:DeleteItem on UsageTable (statement Extra), \
             which none of its calls needs",
            "AggregateSliceFunction grants s3:PutObject on UsageArchiveBucket/* (statement Broad), \
             which none of its calls needs",
        ]
    );
}
