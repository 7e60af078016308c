//! `GET /api/audit/export?from=&to=&format=ndjson|csv|fhir`: auditors only,
//! streamed with constant memory through a bounded channel; and
//! `GET /api/audit/exports/{requestId}/manifest`: an export's signed
//! manifest (how a CSV export's is fetched).

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, NaiveDate, Utc};

use crate::audit::export::Format;
use crate::error::ApiError;
use crate::identity::{Principal, Role};
use crate::service::Services;
use crate::service::export::Exporter;

fn time_param(name: &str, v: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(v)
        .map(|d| d.with_timezone(&Utc))
        .or_else(|_| {
            NaiveDate::parse_from_str(v, "%Y-%m-%d")
                .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight").and_utc())
        })
        .map_err(|_| ApiError::invalid(name, "must be a date (YYYY-MM-DD) or an RFC 3339 time"))
}

/// Auditors only (anyone else's attempt goes on the record in `gate`).
fn require_auditor(who: &Principal) -> Result<(), ApiError> {
    Ok(who.require(Role::Auditor)?)
}

fn exporter(ex: Option<web::Data<Exporter>>) -> Result<web::Data<Exporter>, ApiError> {
    ex.ok_or(ApiError::Unavailable {
        what: "the audit export (no sealer or signing key is configured)",
        retry_after_secs: 60,
    })
}

#[utoipa::path(get, path = "/api/audit/export", tag = "audit", params(crate::routes::params::ExportParams), responses(
    (status = 200, description = "Streamed entries in chain order; NDJSON ends with a signed manifest object, FHIR with a signed Provenance, CSV has its manifest at /api/audit/exports/{requestId}/manifest"),
    (status = 400, description = "Bad time or format", body = crate::error::ErrorBody),
    (status = 401, description = "Not logged in", body = crate::error::ErrorBody),
    (status = 403, description = "Not an auditor", body = crate::error::ErrorBody),
    (status = 409, description = "Entries dated in the window are not sealed yet: nothing exported, retry", body = crate::error::ErrorBody),
    (status = 503, description = "No sealer configured", body = crate::error::ErrorBody),
))]
pub async fn export(
    ex: Option<web::Data<Exporter>>,
    who: Principal,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    require_auditor(&who)?;
    let ex = exporter(ex)?;
    let (mut from, mut to, mut format) = (None, None, Format::Ndjson);
    let mut seen: Vec<String> = vec![];
    for (k, v) in form_urlencoded::parse(req.query_string().as_bytes()) {
        if seen.iter().any(|s| *s == k) {
            return Err(ApiError::bad_request(format!(
                "Query parameter '{}' is given more than once.",
                k.chars()
                    .filter(|c| !c.is_control())
                    .take(64)
                    .collect::<String>()
            )));
        }
        seen.push(k.to_string());
        match k.as_ref() {
            "from" => from = Some(time_param("from", &v)?),
            "to" => to = Some(time_param("to", &v)?),
            "format" => {
                format = Format::parse(&v)
                    .ok_or_else(|| ApiError::invalid("format", "must be ndjson, csv or fhir"))?
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "Unknown query parameter '{}'.",
                    other
                        .chars()
                        .filter(|c| !c.is_control())
                        .take(64)
                        .collect::<String>()
                )));
            }
        }
    }
    if let (Some(f), Some(t)) = (from, to)
        && f >= t
    {
        return Err(ApiError::invalid("to", "must be after from"));
    }
    let running = ex
        .start(
            &who,
            format,
            from,
            to,
            std::sync::Arc::new(crate::progress::Quiet),
        )
        .await?;
    let body = futures_util::stream::unfold(running.chunks, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Ok(HttpResponse::Ok()
        .content_type(format.content_type())
        .streaming(body))
}

#[utoipa::path(get, path = "/api/audit/exports/{requestId}/manifest", tag = "audit", params(("requestId" = String, Path, description = "The export's X-Request-Id")), responses(
    (status = 200, description = "The export's signed manifest ({phiGatewayManifest, alg, keyId, signature})"),
    (status = 401, description = "Not logged in", body = crate::error::ErrorBody),
    (status = 403, description = "Not an auditor", body = crate::error::ErrorBody),
    (status = 404, description = "No finished export with that id", body = crate::error::ErrorBody),
))]
pub async fn manifest(
    svc: web::Data<Services>,
    who: Principal,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    require_auditor(&who)?;
    let v = crate::service::export::manifest(&svc.pool, &who, &id).await?;
    Ok(HttpResponse::Ok().json(v))
}
