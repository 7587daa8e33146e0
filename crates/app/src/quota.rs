//! Monthly job quotas, enforced without the aggregator: each accepted job of a customer with a
//! quota is counted by one conditional write before the job is created, so concurrent submissions
//! can never take a customer past its quota, however far behind the usage rollups are.

use resizer_core::usage::{Granularity, Period};

use crate::{App, AppError, Principal};

/// A job counted against its customer's quota, to be given back if the job is not created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reservation {
    month: Period,
}

impl App {
    /// Counts one job against the caller's quota for the current month (UTC); `None` for a
    /// customer without a quota. `QuotaExceeded` when the quota is used up.
    pub(crate) async fn reserve_quota(
        &self,
        principal: &Principal,
    ) -> Result<Option<Reservation>, AppError> {
        let Some(quota) = principal.monthly_job_quota else {
            return Ok(None);
        };
        if quota == 0 {
            return Err(principal.quota_exceeded());
        }
        let now = self.now();
        let month = Granularity::Month.period_of(now);
        match self
            .stores
            .rollups
            .reserve_job(&principal.customer_id, month, quota, now)
            .await?
        {
            Some(_) => Ok(Some(Reservation { month })),
            None => Err(Principal {
                month_jobs: quota.max(principal.month_jobs),
                ..principal.clone()
            }
            .quota_exceeded()),
        }
    }

    /// Gives a reservation back (its job was not created). Best effort: a failure here leaves
    /// the customer one job short of its quota, and is logged.
    pub(crate) async fn release_quota(&self, principal: &Principal, r: Option<Reservation>) {
        let Some(r) = r else { return };
        if let Err(e) = self
            .stores
            .rollups
            .release_job(&principal.customer_id, r.month, self.now())
            .await
        {
            tracing::warn!(error = %e, customer_id = %principal.customer_id, "could not give back a quota reservation");
        }
    }
}
