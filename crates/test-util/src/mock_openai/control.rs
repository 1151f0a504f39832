//! A client for the control API of a mock running as a separate process (`amas-mock-openai`).

use super::{Behaviour, ControlRequest, RecordedRequest};

/// Drives a standalone mock at `http://127.0.0.1:<port>`.
#[derive(Clone, Debug)]
pub struct MockControl {
    origin: String,
    client: reqwest::Client,
}

impl MockControl {
    /// `origin`: scheme, host and port, e.g. `http://127.0.0.1:9000` (a trailing `/v1` is ignored).
    #[must_use]
    pub fn new(origin: &str) -> Self {
        let origin = origin
            .trim_end_matches('/')
            .trim_end_matches("/v1")
            .to_owned();
        Self {
            origin,
            client: reqwest::Client::new(),
        }
    }

    /// Queues `behaviours` for `model` and optionally sets its default.
    ///
    /// # Errors
    /// Transport errors and non-success answers.
    pub async fn configure(
        &self,
        model: &str,
        behaviours: Vec<Behaviour>,
        default: Option<Behaviour>,
    ) -> Result<(), reqwest::Error> {
        let body = ControlRequest {
            model: model.to_owned(),
            behaviours,
            default,
        };
        self.client
            .post(format!("{}/_control/behaviour", self.origin))
            .json(&body)
            .send()
            .await?
            .error_for_status()?;
        Ok(())
    }

    /// # Errors
    /// Transport errors and non-success answers.
    pub async fn requests(&self) -> Result<Vec<RecordedRequest>, reqwest::Error> {
        self.client
            .get(format!("{}/_control/requests", self.origin))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await
    }

    /// # Errors
    /// Transport errors and non-success answers.
    pub async fn request_count(&self, model: &str) -> Result<usize, reqwest::Error> {
        Ok(self
            .requests()
            .await?
            .iter()
            .filter(|r| r.model == model)
            .count())
    }

    /// # Errors
    /// Transport errors and non-success answers.
    pub async fn release_hangs(&self) -> Result<(), reqwest::Error> {
        self.client
            .post(format!("{}/_control/release", self.origin))
            .send()
            .await?
            .error_for_status()?;
        Ok(())
    }
}
