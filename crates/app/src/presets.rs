//! The preset use cases: a customer saves, reads, lists and deletes its named transforms, and a
//! job names one (`preset=<name>`) for its transform.

use resizer_core::preset::{MAX_PRESETS, Preset, PresetName, validate_params};
use resizer_core::transform::TransformSpec;

use crate::{App, AppError, Principal};

impl App {
    /// Saves `params` (a job's transform parameters, as name/value pairs) as the caller's preset
    /// `name`, replacing one of that name. Refused with a job's error when the parameters are not
    /// a valid transform, and when the caller already has [`MAX_PRESETS`] others.
    pub async fn put_preset<'a, I>(
        &self,
        principal: &Principal,
        name: &str,
        params: I,
    ) -> Result<Preset, AppError>
    where
        I: IntoIterator<Item = (&'a str, &'a str)>,
    {
        let name = PresetName::parse(name)?;
        let params = validate_params(params)?;
        let existing = self
            .stores
            .accounts
            .list_presets(&principal.customer_id)
            .await?;
        if existing.len() >= MAX_PRESETS && !existing.iter().any(|p| p.name == name) {
            return Err(AppError::Invalid(format!(
                "you have {} presets, the most allowed; delete one (DELETE /v1/presets/{{name}}) \
                 before saving another",
                existing.len()
            )));
        }
        let now = self.now();
        let preset = Preset {
            customer_id: principal.customer_id.clone(),
            name,
            params,
            created_at: now,
            updated_at: now,
        };
        Ok(self.stores.accounts.put_preset(&preset).await?)
    }

    /// The caller's preset `name`; `NotFound` if it has none of that name (or the name is not a
    /// preset name at all).
    pub async fn preset(&self, principal: &Principal, name: &str) -> Result<Preset, AppError> {
        let name = existing_name(name)?;
        self.stores
            .accounts
            .get_preset(&principal.customer_id, &name)
            .await?
            .ok_or(AppError::NotFound)
    }

    /// The caller's presets, by name.
    pub async fn presets(&self, principal: &Principal) -> Result<Vec<Preset>, AppError> {
        Ok(self
            .stores
            .accounts
            .list_presets(&principal.customer_id)
            .await?)
    }

    /// Deletes the caller's preset `name`; `NotFound` if it has none of that name. Jobs that used
    /// it keep their transform (a job records the parameters it ran with, not the preset).
    pub async fn delete_preset(&self, principal: &Principal, name: &str) -> Result<(), AppError> {
        let name = existing_name(name)?;
        self.stores
            .accounts
            .delete_preset(&principal.customer_id, &name)
            .await
            .map_err(|e| {
                if e.is_not_found() {
                    AppError::NotFound
                } else {
                    e.into()
                }
            })
    }

    /// A job's transform: its own parameters, over those of the caller's preset `preset` when it
    /// names one (read strongly consistent, so a preset saved a moment ago applies). An unknown
    /// preset is a 400 (the request is wrong, not a missing resource).
    pub async fn transform<'a, I>(
        &self,
        principal: &Principal,
        preset: Option<&str>,
        own: I,
    ) -> Result<TransformSpec, AppError>
    where
        I: IntoIterator<Item = (&'a str, &'a str)>,
    {
        let Some(name) = preset else {
            return Ok(TransformSpec::from_pairs(own)?);
        };
        let name = PresetName::parse(name)?;
        let preset = self
            .stores
            .accounts
            .get_preset(&principal.customer_id, &name)
            .await?
            .ok_or_else(|| {
                AppError::Invalid(format!(
                    "preset {:?} is not one of your presets (GET /v1/presets lists them)",
                    name.as_str()
                ))
            })?;
        Ok(preset.apply(own)?)
    }
}

/// The name of a preset to read or delete: one that is not a preset name names no preset.
fn existing_name(name: &str) -> Result<PresetName, AppError> {
    PresetName::parse(name).map_err(|_| AppError::NotFound)
}

#[cfg(test)]
mod tests {
    use resizer_core::transform::Format;

    use crate::memory::Memory;
    use crate::{AppError, Settings};

    fn principal(customer_id: &str) -> crate::Principal {
        crate::Principal {
            customer_id: customer_id.into(),
            key_id: "key".into(),
            monthly_job_quota: None,
            month_jobs: 0,
            max_open_jobs: None,
        }
    }

    async fn setup() -> (Memory, crate::App, crate::Principal) {
        let mem = Memory::new();
        let app = mem.app(Settings::default());
        (mem, app, principal("cus_presets"))
    }

    #[tokio::test]
    async fn a_saved_preset_is_a_jobs_transform_and_can_be_replaced() {
        let (_mem, app, who) = setup().await;
        let saved = app
            .put_preset(&who, "thumb", [("width", "200"), ("format", "webp")])
            .await
            .unwrap();
        assert_eq!(saved.created_at, saved.updated_at, "new");

        let spec = app.transform(&who, Some("thumb"), []).await.unwrap();
        assert_eq!(
            (spec.width(), spec.format()),
            (Some(200), Some(Format::Webp))
        );
        let spec = app
            .transform(&who, Some("thumb"), [("format", "png")])
            .await
            .unwrap();
        assert_eq!(
            spec.format(),
            Some(Format::Png),
            "the job's own parameter wins"
        );

        let again = app
            .put_preset(&who, "thumb", [("width", "300")])
            .await
            .unwrap();
        assert_eq!(
            again.created_at, saved.created_at,
            "replaced, created_at kept"
        );
        let spec = app.transform(&who, Some("thumb"), []).await.unwrap();
        assert_eq!((spec.width(), spec.format()), (Some(300), None));
        assert_eq!(app.presets(&who).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn presets_are_the_callers_own() {
        let (_mem, app, who) = setup().await;
        let other = principal("cus_other");
        app.put_preset(&who, "thumb", [("width", "200")])
            .await
            .unwrap();
        assert_eq!(app.preset(&other, "thumb").await, Err(AppError::NotFound));
        assert_eq!(
            app.delete_preset(&other, "thumb").await,
            Err(AppError::NotFound)
        );
        let e = app.transform(&other, Some("thumb"), []).await.unwrap_err();
        assert!(
            matches!(&e, AppError::Invalid(m) if m.contains("not one of your presets")),
            "{e:?}"
        );
        assert!(app.presets(&other).await.unwrap().is_empty());

        app.delete_preset(&who, "thumb").await.unwrap();
        assert_eq!(app.preset(&who, "thumb").await, Err(AppError::NotFound));
        assert_eq!(
            app.delete_preset(&who, "thumb").await,
            Err(AppError::NotFound)
        );
    }

    #[tokio::test]
    async fn saving_refuses_what_a_job_would_and_more_than_the_limit() {
        let (_mem, app, who) = setup().await;
        let e = app
            .put_preset(&who, "bad", [("width", "9000")])
            .await
            .unwrap_err();
        let job = app
            .transform(&who, None, [("width", "9000")])
            .await
            .unwrap_err();
        assert_eq!(e, job, "the same error as a job's");
        let e = app
            .put_preset(&who, "a b", [("width", "9")])
            .await
            .unwrap_err();
        assert!(matches!(e, AppError::Invalid(_)), "{e:?}");

        for i in 0..resizer_core::preset::MAX_PRESETS {
            app.put_preset(&who, &format!("p{i}"), [("width", "9")])
                .await
                .unwrap();
        }
        let e = app
            .put_preset(&who, "one-more", [("width", "9")])
            .await
            .unwrap_err();
        assert!(
            matches!(&e, AppError::Invalid(m) if m.contains("100 presets")),
            "{e:?}"
        );
        app.put_preset(&who, "p0", [("width", "10")])
            .await
            .expect("replacing one is not one more");
    }
}
