//! `GET /api/audit/export?from=&to=&format=ndjson|csv|fhir`: auditors only,
//! streamed with constant memory through a bounded channel; and
//! `GET /api/audit/exports/{requestId}/manifest`: an export's signed
//! manifest (how a CSV export's is fetched); and
//! `GET /api/audit/my-access-report`: a patient's report of who accessed
//! their records.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use utoipa::IntoParams;
use validator::Validate;

use crate::audit::export::Format;
use crate::domain::time::Instant;
use crate::error::ApiError;
use crate::identity::{Principal, Role};
use crate::query::params::params;
use crate::service::Services;
use crate::service::export::Exporter;

/// The export's window and format.
#[derive(Debug, Deserialize, IntoParams, Validate)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ExportParams {
    /// Date or RFC 3339 time (inclusive).
    #[param(value_type = Option<Instant>)]
    pub from: Option<Instant>,
    /// Date or RFC 3339 time (exclusive).
    #[param(value_type = Option<Instant>)]
    pub to: Option<Instant>,
    /// ndjson (default), csv or fhir (FHIR R4 AuditEvent NDJSON).
    pub format: Option<Format>,
}

params!(ExportParams, ReportParams, DisclosureParams);

/// The accounting's patient, window and format.
#[derive(Debug, Deserialize, IntoParams, Validate)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DisclosureParams {
    /// The patient's namespaced user id (`users:5`).
    #[validate(length(min = 1, max = 200, message = "must name the patient (users:5)"))]
    pub patient: String,
    /// Date or RFC 3339 time (inclusive); six years before `to` unless given.
    #[param(value_type = Option<Instant>)]
    pub from: Option<Instant>,
    /// Date or RFC 3339 time (exclusive); now unless given.
    #[param(value_type = Option<Instant>)]
    pub to: Option<Instant>,
    /// json (default), csv, or fhir (each disclosure a FHIR R4 AuditEvent, NDJSON).
    pub format: Option<crate::service::report::AccountingFormat>,
}

/// The access report's answer: JSON (default) or CSV.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReportFormat {
    Json,
    Csv,
}

/// The access report's window, page and format.
#[derive(Debug, Deserialize, IntoParams, Validate)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ReportParams {
    /// Date or RFC 3339 time (inclusive); six years before `to` unless given.
    #[param(value_type = Option<Instant>)]
    pub from: Option<Instant>,
    /// Date or RFC 3339 time (exclusive); now unless given.
    #[param(value_type = Option<Instant>)]
    pub to: Option<Instant>,
    /// json (default) or csv.
    pub format: Option<ReportFormat>,
    /// Also list your own accesses (default: only others').
    pub include_own: Option<bool>,
    /// The `nextAfter` of the previous page.
    #[param(minimum = 0)]
    #[validate(range(min = 0, message = "must be a position (0 or more)"))]
    pub after: Option<i64>,
    /// Entries per page, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    #[validate(range(min = 1, max = 1000, message = "must be from 1 to 1000"))]
    pub limit: Option<u32>,
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

#[utoipa::path(get, path = "/api/audit/export", tag = "audit", params(ExportParams), responses(
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
    // The role first: anyone else's attempt is refused (and recorded) as
    // such, whatever its parameters.
    require_auditor(&who)?;
    let ex = exporter(ex)?;
    let ExportParams { from, to, format } = crate::query::parse_params(req.query_string())?;
    let (from, to) = (from.map(|t| t.0), to.map(|t| t.0));
    let format = format.unwrap_or(Format::Ndjson);
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

#[utoipa::path(get, path = "/api/audit/my-access-report", tag = "audit", params(ReportParams), responses(
    (status = 200, description = "Who accessed your submissions and consents: when, who, what, why, and whether in an emergency (CSV with format=csv)", body = crate::service::report::AccessReport),
    (status = 400, description = "Bad time, page or format", body = crate::error::ErrorBody),
    (status = 401, description = "Not logged in", body = crate::error::ErrorBody),
))]
pub async fn my_access_report(
    svc: web::Data<Services>,
    who: Principal,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let ReportParams {
        from,
        to,
        format,
        include_own,
        after,
        limit,
    } = crate::query::parse_params(req.query_string())?;
    let report = crate::service::report::my_access_report(
        &svc,
        &who,
        crate::service::report::ReportQuery {
            from: from.map(|t| t.0),
            to: to.map(|t| t.0),
            include_own: include_own.unwrap_or(false),
            after: after.unwrap_or(0),
            limit: limit.unwrap_or(0),
        },
    )
    .await?;
    Ok(match format.unwrap_or(ReportFormat::Json) {
        ReportFormat::Json => crate::routes::respond::ok(&report),
        ReportFormat::Csv => HttpResponse::Ok()
            .content_type("text/csv; charset=utf-8")
            .body(crate::service::report::csv(&report)),
    })
}

#[utoipa::path(get, path = "/api/audit/disclosures", tag = "audit", params(DisclosureParams), responses(
    (status = 200, description = "The accounting of disclosures of one patient's records: every access by anyone else, by recipient and purpose (first, last, how many, which fields); CSV with format=csv; every disclosure as a FHIR R4 AuditEvent (NDJSON, sealed entries) with format=fhir. Signed when this gateway seals (as an export is): FHIR ends with a Provenance that signs it, JSON and CSV have their manifest at /api/audit/exports/{requestId}/manifest; `phi-gateway audit verify-export` checks either offline", body = crate::service::report::Accounting),
    (status = 400, description = "No patient, or a bad time or format", body = crate::error::ErrorBody),
    (status = 401, description = "Not logged in", body = crate::error::ErrorBody),
    (status = 403, description = "Not an auditor", body = crate::error::ErrorBody),
))]
pub async fn disclosures(
    svc: web::Data<Services>,
    ex: Option<web::Data<Exporter>>,
    who: Principal,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    // The role first: anyone else's attempt is refused (and recorded) as
    // such, whatever its parameters.
    require_auditor(&who)?;
    let DisclosureParams {
        patient,
        from,
        to,
        format,
    } = crate::query::parse_params(req.query_string())?;
    use crate::service::report::{self, AccountingBody, AccountingFormat};
    let (from, to) = (from.map(|t| t.0), to.map(|t| t.0));
    let format = format.unwrap_or(AccountingFormat::Json);
    let signer = ex.as_ref().map(|e| &e.sealer);
    let a = report::accounting(&svc.pool, &who, &patient, from, to, format, signer).await?;
    Ok(match a.body {
        AccountingBody::Fhir(lines) => HttpResponse::Ok()
            .content_type(Format::Fhir.content_type())
            .body(lines),
        AccountingBody::Csv(text) => HttpResponse::Ok()
            .content_type("text/csv; charset=utf-8")
            .body(text),
        AccountingBody::Json(a) => crate::routes::respond::ok(&a),
    })
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
