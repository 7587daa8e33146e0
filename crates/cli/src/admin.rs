//! `resizer admin`: the management plane, straight to DynamoDB.

use clap::{Args, Subcommand};
use resizer_app::App;
use resizer_core::contract::PresetResource;
use resizer_core::key::{ApiKey, Customer, CustomerStatus, KeyRecord, is_customer_id};
use resizer_core::usage::{Totals, UsageRange};
use time::format_description::well_known::Rfc3339;

use crate::{CliError, CliResult, load_app, table};

#[derive(Debug, Args)]
pub struct AdminArgs {
    /// Read table names from this deployed stack's outputs (otherwise from the environment, as
    /// the functions do: JOBS_TABLE, API_KEYS_TABLE, …).
    #[arg(long, env = "RESIZER_STACK", global = true)]
    stack: Option<String>,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Customers: create, list, disable, enable, set-quota.
    #[command(subcommand)]
    Customer(CustomerCommand),
    /// API keys: create, list, revoke.
    #[command(subcommand)]
    Key(KeyCommand),
    /// A customer's presets (named transforms): list, get, put, delete.
    #[command(subcommand)]
    Preset(PresetCommand),
    /// A customer's usage rollups, as a table.
    Usage {
        #[arg(long)]
        customer: String,
        /// Start (RFC 3339 or yyyy-mm-dd, UTC); default: start of this month.
        #[arg(long)]
        from: Option<String>,
        /// End, exclusive; default: end of the current period.
        #[arg(long)]
        to: Option<String>,
        /// hour, day or month.
        #[arg(long, default_value = "day")]
        granularity: String,
    },
}

#[derive(Debug, Subcommand)]
enum CustomerCommand {
    /// Create a customer and print its id.
    Create {
        #[arg(long)]
        name: String,
        /// Monthly job quota (default: unlimited).
        #[arg(long)]
        quota: Option<u64>,
        /// Unfinished jobs it may have at once (default: the stack's CustomerMaxOpenJobs).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        max_open_jobs: Option<u64>,
    },
    /// List customers.
    List,
    /// Disable a customer: its keys get 403 within the auth cache TTL.
    Disable { customer_id: String },
    /// Enable a disabled customer.
    Enable { customer_id: String },
    /// Set the monthly job quota, or remove it with --unlimited.
    SetQuota {
        customer_id: String,
        #[arg(
            long,
            conflicts_with = "unlimited",
            required_unless_present = "unlimited"
        )]
        jobs: Option<u64>,
        #[arg(long)]
        unlimited: bool,
    },
    /// Set how many unfinished jobs the customer may have at once, or go back to the stack's
    /// CustomerMaxOpenJobs with --default.
    SetMaxOpenJobs {
        customer_id: String,
        #[arg(
            long,
            conflicts_with = "default",
            required_unless_present = "default",
            value_parser = clap::value_parser!(u64).range(1..)
        )]
        jobs: Option<u64>,
        #[arg(long)]
        default: bool,
    },
}

#[derive(Debug, Subcommand)]
enum KeyCommand {
    /// Create a key for a customer and print it once: it cannot be shown again.
    Create {
        #[arg(long)]
        customer: String,
    },
    /// List a customer's keys (ids and status, never secrets).
    List {
        #[arg(long)]
        customer: String,
    },
    /// Revoke a key: it is refused within the auth cache TTL.
    Revoke { key_id: String },
}

#[derive(Debug, Subcommand)]
enum PresetCommand {
    /// List a customer's presets.
    List {
        #[arg(long)]
        customer: String,
    },
    /// Show one preset.
    Get {
        #[arg(long)]
        customer: String,
        name: String,
    },
    /// Save a preset from name=value transform parameters (a job's), replacing one of that name:
    /// `put --customer cus_… thumb width=300 fit=cover format=webp`.
    Put {
        #[arg(long)]
        customer: String,
        name: String,
        #[arg(required = true, value_name = "PARAM=VALUE")]
        params: Vec<String>,
    },
    /// Delete a preset (jobs that used it keep their transform).
    Delete {
        #[arg(long)]
        customer: String,
        name: String,
    },
}

pub async fn run(args: AdminArgs) -> CliResult {
    let state = load_app(args.stack.as_deref()).await?;
    match args.command {
        AdminCommand::Customer(c) => customer(&state, c).await,
        AdminCommand::Key(k) => key(&state, k).await,
        AdminCommand::Preset(p) => preset(&state, p).await,
        AdminCommand::Usage {
            customer,
            from,
            to,
            granularity,
        } => usage(&state, &customer, from, to, &granularity).await,
    }
}

fn ts(t: time::OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

async fn require_customer(state: &App, id: &str) -> CliResult<Customer> {
    if !is_customer_id(id) {
        return Err(CliError::new(format!(
            "{id:?} is not a customer id (cus_…)"
        )));
    }
    state
        .stores
        .accounts
        .get_customer(id)
        .await?
        .ok_or_else(|| CliError::new(format!("no customer {id}")))
}

/// Creates a customer (used by `resizer dev` for its demo customer too).
pub async fn create_customer(
    state: &App,
    name: &str,
    quota: Option<u64>,
    max_open_jobs: Option<u64>,
) -> CliResult<Customer> {
    if name.trim().is_empty() {
        return Err(CliError::new("--name must not be empty"));
    }
    let mut c = Customer::new(name.trim(), state.now());
    c.monthly_job_quota = quota;
    c.max_open_jobs = max_open_jobs;
    state.stores.accounts.put_new_customer(&c).await?;
    Ok(c)
}

/// Creates a key for an existing customer; returns the full key (shown once).
pub async fn create_key(state: &App, customer_id: &str) -> CliResult<(KeyRecord, ApiKey)> {
    let c = require_customer(state, customer_id).await?;
    let key = ApiKey::generate();
    let record = KeyRecord::new(&key, &c.customer_id, state.now());
    state.stores.accounts.put_new_key(&record).await?;
    Ok((record, key))
}

async fn customer(state: &App, cmd: CustomerCommand) -> CliResult {
    match cmd {
        CustomerCommand::Create {
            name,
            quota,
            max_open_jobs,
        } => {
            let c = create_customer(state, &name, quota, max_open_jobs).await?;
            println!("{}", c.customer_id);
        }
        CustomerCommand::List => {
            let rows: Vec<Vec<String>> = state
                .stores
                .accounts
                .list_customers()
                .await?
                .into_iter()
                .map(|c| {
                    vec![
                        c.customer_id,
                        c.name,
                        c.status.as_str().into(),
                        c.monthly_job_quota
                            .map_or("unlimited".into(), |q| q.to_string()),
                        c.max_open_jobs.map_or("default".into(), |n| n.to_string()),
                        ts(c.created_at),
                    ]
                })
                .collect();
            print!(
                "{}",
                table::render(
                    &[
                        "customer_id",
                        "name",
                        "status",
                        "monthly_quota",
                        "max_open_jobs",
                        "created_at"
                    ],
                    &rows
                )
            );
        }
        CustomerCommand::Disable { customer_id } => {
            require_customer(state, &customer_id).await?;
            state
                .stores
                .accounts
                .set_customer_status(&customer_id, CustomerStatus::Disabled)
                .await?;
            println!(
                "{customer_id} disabled; its keys are refused within {} s",
                state.settings.auth_cache_ttl.as_secs()
            );
        }
        CustomerCommand::Enable { customer_id } => {
            require_customer(state, &customer_id).await?;
            state
                .stores
                .accounts
                .set_customer_status(&customer_id, CustomerStatus::Active)
                .await?;
            println!("{customer_id} enabled");
        }
        CustomerCommand::SetQuota {
            customer_id,
            jobs,
            unlimited,
        } => {
            require_customer(state, &customer_id).await?;
            let quota = if unlimited { None } else { jobs };
            state
                .stores
                .accounts
                .set_customer_quota(&customer_id, quota)
                .await?;
            match quota {
                Some(q) => println!("{customer_id}: monthly quota {q} jobs"),
                None => println!("{customer_id}: unlimited"),
            }
        }
        CustomerCommand::SetMaxOpenJobs {
            customer_id,
            jobs,
            default,
        } => {
            require_customer(state, &customer_id).await?;
            let limit = if default { None } else { jobs };
            state
                .stores
                .accounts
                .set_customer_max_open_jobs(&customer_id, limit)
                .await?;
            match limit {
                Some(n) => println!(
                    "{customer_id}: at most {n} unfinished jobs at once (within the auth cache TTL, {} s)",
                    state.settings.auth_cache_ttl.as_secs()
                ),
                None => println!(
                    "{customer_id}: the stack's limit of unfinished jobs (CustomerMaxOpenJobs, {} here)",
                    state.settings.customer_max_open_jobs
                ),
            }
        }
    }
    Ok(())
}

async fn key(state: &App, cmd: KeyCommand) -> CliResult {
    match cmd {
        KeyCommand::Create { customer } => {
            let (record, key) = create_key(state, &customer).await?;
            eprintln!(
                "key {} created for {}; store it now, it cannot be shown again:",
                record.key_id, record.customer_id
            );
            println!("{}", key.expose());
        }
        KeyCommand::List { customer } => {
            require_customer(state, &customer).await?;
            let rows: Vec<Vec<String>> = state
                .stores
                .accounts
                .list_keys(&customer)
                .await?
                .into_iter()
                .map(|k| {
                    vec![
                        k.key_id,
                        k.status.as_str().into(),
                        ts(k.created_at),
                        k.revoked_at.map(ts).unwrap_or_default(),
                    ]
                })
                .collect();
            print!(
                "{}",
                table::render(&["key_id", "status", "created_at", "revoked_at"], &rows)
            );
        }
        KeyCommand::Revoke { key_id } => {
            state
                .stores
                .accounts
                .revoke_key(&key_id, state.now())
                .await
                .map_err(|e| {
                    if e.is_not_found() {
                        CliError::new(format!("no key {key_id}"))
                    } else {
                        e.into()
                    }
                })?;
            println!(
                "{key_id} revoked; it is refused within {} s (the auth cache TTL)",
                state.settings.auth_cache_ttl.as_secs()
            );
        }
    }
    Ok(())
}

/// The customer as the preset use cases' caller (the operator acts for it).
async fn acting_for(state: &App, customer_id: &str) -> CliResult<resizer_app::Principal> {
    let c = require_customer(state, customer_id).await?;
    Ok(resizer_app::Principal {
        customer_id: c.customer_id,
        key_id: "resizer-admin".into(),
        monthly_job_quota: c.monthly_job_quota,
        month_jobs: 0,
        max_open_jobs: c.max_open_jobs,
    })
}

/// A use case's `NotFound` as "the customer has no such preset".
fn no_such<'a>(
    customer: &'a str,
    name: &'a str,
) -> impl Fn(resizer_app::AppError) -> CliError + 'a {
    move |e| match e {
        resizer_app::AppError::NotFound => {
            CliError::new(format!("{customer} has no preset {name:?}"))
        }
        e => e.into(),
    }
}

async fn preset(state: &App, cmd: PresetCommand) -> CliResult {
    let show = |p: resizer_core::preset::Preset| {
        let resource = PresetResource::from(p);
        println!(
            "{}",
            serde_json::to_string_pretty(&resource).unwrap_or_default()
        );
    };
    match cmd {
        PresetCommand::List { customer } => {
            let who = acting_for(state, &customer).await?;
            let presets: Vec<PresetResource> = state
                .presets(&who)
                .await?
                .into_iter()
                .map(PresetResource::from)
                .collect();
            print!("{}", table::presets(&presets));
        }
        PresetCommand::Get { customer, name } => {
            let who = acting_for(state, &customer).await?;
            let p = state
                .preset(&who, &name)
                .await
                .map_err(no_such(&customer, &name))?;
            show(p);
        }
        PresetCommand::Put {
            customer,
            name,
            params,
        } => {
            let who = acting_for(state, &customer).await?;
            let pairs = crate::assignments(&params)?;
            let p = state
                .put_preset(
                    &who,
                    &name,
                    pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                )
                .await?;
            show(p);
        }
        PresetCommand::Delete { customer, name } => {
            let who = acting_for(state, &customer).await?;
            state
                .delete_preset(&who, &name)
                .await
                .map_err(no_such(&customer, &name))?;
            println!("{customer}: preset {name} deleted");
        }
    }
    Ok(())
}

async fn usage(
    state: &App,
    customer: &str,
    from: Option<String>,
    to: Option<String>,
    granularity: &str,
) -> CliResult {
    require_customer(state, customer).await?;
    let range = UsageRange::parse(
        from.as_deref(),
        to.as_deref(),
        Some(granularity),
        state.now(),
    )
    .map_err(|e| CliError::new(e.message))?;
    let (lo, hi) = range.sort_key_bounds();
    let rows = state.stores.rollups.between(customer, lo, hi).await?;
    let mut total = Totals::default();
    let mut out: Vec<Vec<String>> = Vec::new();
    for (period, t) in &rows {
        total.merge(t);
        out.push(row(&period.label(), t));
    }
    out.push(row("total", &total));
    let mut headers = vec!["period"];
    headers.extend(Totals::FIELDS);
    print!("{}", table::render(&headers, &out));
    Ok(())
}

fn row(label: &str, t: &Totals) -> Vec<String> {
    std::iter::once(label.to_owned())
        .chain(t.values().iter().map(u64::to_string))
        .collect()
}
