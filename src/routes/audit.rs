//! `GET /api/audit/export?from=&to=&format=ndjson|csv|fhir`: auditors only,
//! streamed with constant memory through a bounded channel.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, NaiveDate, Utc};

use crate::audit::export::{self, Format};
use crate::audit::{self, Action, Entry};
use crate::auth::{Principal, Role};
use crate::error::ApiError;
use crate::service::Services;

fn time_param(name: &str, v: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(v)
        .map(|d| d.with_timezone(&Utc))
        .or_else(|_| {
            NaiveDate::parse_from_str(v, "%Y-%m-%d")
                .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight").and_utc())
        })
        .map_err(|_| ApiError::invalid(name, "must be a date (YYYY-MM-DD) or an RFC 3339 time"))
}

#[utoipa::path(get, path = "/api/audit/export", tag = "audit", params(crate::openapi::ExportParams), responses(
    (status = 200, description = "Streamed entries in chain order, ending with a `#manifest {..}` line"),
    (status = 400, description = "Bad time or format", body = crate::openapi::ErrorBody),
    (status = 401, description = "Not logged in", body = crate::openapi::ErrorBody),
    (status = 403, description = "Not an auditor", body = crate::openapi::ErrorBody),
))]
pub async fn export(
    svc: web::Data<Services>,
    who: Principal,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    who.require_user()?;
    if !who.has(Role::Auditor) {
        audit::record_alone(
            &svc.pool,
            &who,
            Entry::new(Action::AccessDenied, "audit_log", "export").outcome(audit::Outcome::Denied),
        )
        .await;
        return Err(ApiError::Forbidden);
    }
    let (mut from, mut to, mut format) = (None, None, Format::Ndjson);
    for (k, v) in form_urlencoded::parse(req.query_string().as_bytes()) {
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
                    other.chars().take(64).collect::<String>()
                )));
            }
        }
    }
    if let (Some(f), Some(t)) = (from, to)
        && f >= t
    {
        return Err(ApiError::invalid("to", "must be after from"));
    }
    // The export is itself audited before a byte leaves; if that fails, so does the export.
    let mut conn = svc.pool.acquire().await?;
    let entry = Entry::new(Action::Export, "audit_log", "export").reason(Some(format!(
        "format={} from={from:?} to={to:?}",
        format_name(format)
    )));
    audit::record(&mut conn, &who, &[entry]).await?;
    drop(conn);

    let (tx, rx) = tokio::sync::mpsc::channel(8);
    let pool = svc.pool.clone();
    let keyring = svc.keyring.clone();
    tokio::spawn(async move {
        if let Err(e) = export::stream(&pool, &keyring, format, from, to, tx.clone(), None).await {
            tracing::error!(error = %e, "audit export failed mid-stream");
            let _ = tx.send(Err(std::io::Error::other("export failed"))).await;
        }
    });
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Ok(HttpResponse::Ok()
        .content_type(format.content_type())
        .streaming(body))
}

fn format_name(f: Format) -> &'static str {
    match f {
        Format::Ndjson => "ndjson",
        Format::Csv => "csv",
        Format::Fhir => "fhir",
    }
}
